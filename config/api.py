"""The HTTP API: one NinjaAPI mounted at /api/v1/, with token auth that checks roles."""

from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import ValidationError

from kpis.api import router as kpis_router
from retraining.api import router as exports_router
from reviews.api import router as reviews_router
from reviews.api_admin import router as admin_router
from reviews.api_queue import router as queue_router

api = NinjaAPI(
    title="Coachdesk API",
    version="1",
    description=(
        "Ingest agent interactions and feedback, work the review queue, read KPIs and download "
        "retraining batches. Authenticate with `Authorization: Bearer <token>` "
        "(create one with `manage.py createtoken USERNAME`)."
    ),
    urls_namespace="api-v1",
)

api.add_router("", reviews_router)
api.add_router("", queue_router)
api.add_router("", admin_router)
api.add_router("", exports_router)
api.add_router("", kpis_router)


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError):
    """Malformed bodies are 400 with the field errors (DESIGN.md), not ninja's default 422."""
    errors = {}
    for error in exc.errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        errors[".".join(loc) or "body"] = error.get("msg", "invalid")
    return api.create_response(request, {"detail": "invalid request", "errors": errors}, status=400)
