"""API of the retraining app: request a batch, follow it, download it (DESIGN.md)."""

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from accounts.models import Role
from accounts.permissions import RoleBearer
from core.db import replica_view
from core.limits import error_responses
from retraining import selectors, services
from retraining.formats import FEEDBACK_WRITERS, PAIR_WRITERS
from retraining.models import ExportBatch
from retraining.views import file_response

router = Router(tags=["exports"])
export_auth = RoleBearer(Role.ML, Role.ADMIN)


class ExportIn(Schema):
    agent: str = Field(description="Agent slug.")
    format: ExportBatch.Format = Field(description="jsonl, openai, preference, csv or parquet.")
    new_only: bool = Field(False, description="Only pairs held by no earlier batch.")
    filters: dict[str, Any] | None = Field(
        None,
        description=(
            "Optional: date_from / date_to (YYYY-MM-DD, decision day, UTC, inclusive), "
            "sources ([approve, correct]), error_categories (slugs; null: no category), "
            "agent_versions, min_reviews, system_prompt (openai), intents, domains (the "
            "interaction's intent / domain, exact match, at most 100 values of at most 100 "
            "characters). For the feedback dataset: date_from, date_to, kinds (default "
            "[clicked, skipped]), intents, domains. For the comparisons dataset: date_from, "
            "date_to (decision day), agent_versions (either side), kinds ([versions, "
            "regression]; default both), intents, domains (the comparison's own). Invalid "
            "filters: 400 with `errors` naming each field."
        ),
    )
    dataset: ExportBatch.Dataset = Field(
        ExportBatch.Dataset.PAIRS,
        description="pairs (default), feedback (csv / parquet) or comparisons (decided "
        "pairwise comparisons, A or B better: preference / csv / parquet).",
    )


class ExportCreated(Schema):
    id: int = Field(description="The batch: the new one, or the identical one that exists.")
    status: str = Field(description="queued for a new batch; the existing batch's status.")
    already_existed: bool = Field(
        description=(
            "true (status 200): an identical batch (same agent, dataset, format, filters, "
            "and no new matching rows since it was requested) is already queued, building "
            "or ready; it is answered instead of building the same file again. "
            "false (status 202): a new batch was queued."
        )
    )


class ExportOut(Schema):
    id: int
    agent: str
    dataset: str
    format: str
    status: str
    progress: int
    failure_reason: str
    attempts: int
    row_count: int
    counts: dict[str, Any]
    sha256: str
    size_bytes: int
    filters: dict[str, Any]
    manifest: dict[str, Any]
    trained_agent_version: str
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    download_url: str | None


class ExportList(Schema):
    batches: list[ExportOut]


class TrainedIn(Schema):
    agent_version: str


def _out(batch: ExportBatch) -> dict[str, Any]:
    ready = batch.status == ExportBatch.Status.READY
    return {
        "id": batch.pk,
        "agent": batch.agent.slug,
        "dataset": batch.dataset,
        "format": batch.format,
        "status": batch.status,
        "progress": batch.progress,
        "failure_reason": batch.failure_reason,
        "attempts": batch.attempts,
        "row_count": batch.row_count,
        "counts": batch.counts,
        "sha256": batch.sha256,
        "size_bytes": batch.file_size,
        "filters": batch.filters,
        "manifest": batch.manifest,
        "trained_agent_version": batch.trained_agent_version,
        "created_by": batch.created_by.get_username() if batch.created_by else None,
        "created_at": batch.created_at,
        "started_at": batch.started_at,
        "finished_at": batch.finished_at,
        "download_url": (
            reverse("api-v1:export_download", kwargs={"batch_id": batch.pk}) if ready else None
        ),
    }


def _get(batch_id: int) -> ExportBatch | None:
    try:
        return selectors.batch_get(batch_id)
    except ExportBatch.DoesNotExist:
        return None


NOT_FOUND = {"detail": "no such batch"}


@router.post(
    "/exports",
    auth=export_auth,
    response={200: ExportCreated, 202: ExportCreated, **error_responses(400, 401, 403, 413, 429)},
    summary="Request a retraining batch (built in the background)",
    openapi_extra={
        "responses": {
            200: {"description": "An identical batch exists: its id, `already_existed` true."},
            202: {"description": "A new batch is queued: its id, `already_existed` false."},
            400: {
                "description": "Invalid filters (one message per field), or nothing to "
                "export (`errors.selection`: no row matches)."
            },
            429: {
                "description": "The caller already has EXPORT_MAX_ACTIVE_PER_USER batches, "
                "or EXPORT_MAX_ACTIVE_ROWS_PER_USER rows, queued or building."
            },
        }
    },
)
def post_export(request: HttpRequest, body: ExportIn):
    """Queues a batch and answers at once with its id; follow it with `GET /exports/{id}`
    until `status` is `ready` (or `failed`, with `failure_reason`). The page's checks apply:
    the same field limits, no empty selection, an identical batch is answered instead of
    built again, and per-user limits on batches queued or building."""
    agent = selectors.agent_by_slug(body.agent)
    if agent is None:
        return Status(400, {"detail": "invalid request", "errors": {"agent": "unknown agent"}})
    try:
        batch = services.batch_request(
            agent=agent,
            format=body.format,
            dataset=body.dataset,
            filters=body.filters,
            new_only=body.new_only,
            actor=request.user,
            refuse_empty=True,
            reuse_existing=True,
        )
    except services.InvalidRequest as exc:
        return Status(400, {"detail": "invalid request", "errors": exc.errors})
    except services.BatchExists as exc:
        existing = exc.batch
        return Status(200, {"id": existing.pk, "status": existing.status, "already_existed": True})
    except services.TooManyActive as exc:
        return Status(429, {"detail": str(exc)})
    return Status(202, {"id": batch.pk, "status": batch.status, "already_existed": False})


@router.get(
    "/exports",
    auth=export_auth,
    response={200: ExportList, **error_responses(400, 401, 403)},
    summary="Recent batches",
    description="Read from the replica when there is one: a batch just requested may take a "
    "moment to appear; `GET /exports/{id}` always reads the primary.",
)
@replica_view
def list_exports(
    request: HttpRequest,
    agent: str | None = Query(None),
    status: ExportBatch.Status | None = None,
    limit: int = Query(50, ge=1, le=500),
):
    batches = selectors.batches_recent(agent_slug=agent, status=status, limit=limit)
    return {"batches": [_out(b) for b in batches]}


@router.get(
    "/exports/{batch_id}",
    auth=export_auth,
    response={200: ExportOut, **error_responses(400, 401, 403, 404)},
    url_name="export_detail",
    summary="A batch: status, progress, counts, sha256, manifest",
)
def get_export(request: HttpRequest, batch_id: int):
    batch = _get(batch_id)
    return Status(200, _out(batch)) if batch else Status(404, NOT_FOUND)


@router.get(
    "/exports/{batch_id}/download",
    auth=export_auth,
    response={200: None, **error_responses(400, 401, 403, 404, 409)},
    url_name="export_download",
    summary="Download a ready batch's file (streamed)",
    openapi_extra={
        "responses": {
            200: {
                "description": "The file. `X-Content-SHA256` carries its sha256, "
                "`Content-Length` its size.",
                # The writers' media types (jsonl, csv, parquet), so clients can check them.
                "content": {
                    writer.content_type.split(";")[0]: {}
                    for writer in (*PAIR_WRITERS.values(), *FEEDBACK_WRITERS.values())
                },
            }
        }
    },
)
def download_export(request: HttpRequest, batch_id: int):
    batch = _get(batch_id)
    if batch is None:
        return Status(404, NOT_FOUND)
    try:
        return file_response(batch)
    except services.Conflict as exc:
        return Status(409, {"detail": str(exc)})


@router.post(
    "/exports/{batch_id}/trained",
    auth=export_auth,
    response={200: ExportOut, **error_responses(400, 401, 403, 404, 409, 413)},
    summary='Mark a ready batch as "used to train agent version X"',
)
def post_trained(request: HttpRequest, batch_id: int, body: TrainedIn):
    batch = _get(batch_id)
    if batch is None:
        return Status(404, NOT_FOUND)
    try:
        services.batch_mark_trained(
            batch=batch, agent_version=body.agent_version, actor=request.user
        )
    except services.InvalidRequest as exc:
        return Status(400, {"detail": "invalid request", "errors": exc.errors})
    except services.Conflict as exc:
        return Status(409, {"detail": str(exc)})
    return Status(200, _out(batch))
