"""The HTTP API: one NinjaAPI mounted at /api/v1/, with token auth that checks roles.

Every error answers `{"detail": ..., "errors"?: {...}}` (core.limits.ErrorOut), and every
operation declares the error statuses it can answer, so the OpenAPI schema is the contract.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from ninja import NinjaAPI, Swagger
from ninja.errors import HttpError, Throttled, ValidationError

from console.api import router as admin_router
from core.limits import JsonRejected, LimitedJsonParser, retry_after_seconds
from evals.api import router as evals_router
from evals.queue_api import router as comparisons_router
from ingest.api import router as ingest_router
from kpis.api import router as kpis_router
from retraining.api import router as exports_router
from reviews.api import router as queue_router

api = NinjaAPI(
    title="Coachdesk API",
    version="1",
    description=(
        "Ingest agent interactions and feedback, work the review queue, read KPIs and download "
        "retraining batches. Authenticate with `Authorization: Bearer <token>` "
        "(create one with `manage.py createtoken USERNAME`). Errors are "
        '`{"detail": "...", "errors": {"field": "message"}}` (`errors` only for field errors); '
        "a body over its size limit is 413, too many ingest requests for one token 429 with "
        "`Retry-After`."
    ),
    urls_namespace="api-v1",
    parser=LimitedJsonParser(),
    # No deep links: Swagger puts them inside each operation's button (a link nested in a
    # button, which keyboards and screen readers cannot use). templates/ninja/swagger.html.
    docs=Swagger(settings={"deepLinking": False}),
)

api.add_router("", ingest_router)
api.add_router("", queue_router)
api.add_router("", admin_router)
api.add_router("", exports_router)
api.add_router("", kpis_router)
api.add_router("", evals_router)
api.add_router("", comparisons_router)


def _loc(error: dict) -> str:
    parts = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError):
    """Malformed bodies are 400 with the field errors (DESIGN.md), not ninja's default 422."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        errors.setdefault(_loc(error), str(error.get("msg", "invalid")))
    return api.create_response(request, {"detail": "invalid request", "errors": errors}, status=400)


@api.exception_handler(Throttled)
def throttled(request: HttpRequest, exc: Throttled):
    limit = getattr(request, "rate_limit", None)
    per = f" (the limit is {limit:,} requests per minute per token)" if limit else ""
    detail = f"too many requests{per}; retry in {retry_after_seconds(exc.wait)} s"
    return api.create_response(request, {"detail": detail}, status=429)


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError):
    """ninja turns any failure of the body parser into a bare "Cannot parse request body":
    say what was wrong instead (and a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413)."""
    cause = exc.__cause__
    if isinstance(cause, JsonRejected):
        return api.create_response(request, {"detail": str(cause)}, status=400)
    if isinstance(cause, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return api.create_response(
            request, {"detail": f"the body is larger than {limit:,} bytes"}, status=413
        )
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)
