"""The HTTP API: one NinjaAPI mounted at /api/v1/, with token auth that checks roles."""

from ninja import NinjaAPI

from reviews.api import router as reviews_router

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
