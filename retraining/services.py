"""Writes of the retraining app: requesting, building, retrying and labelling export batches.

`ExportBatch.status` changes here and only here (a test enforces it): `TRANSITIONS` lists
the allowed moves of `BATCH_STATES`, which `core.transitions.transition` applies with a
compare-and-swap UPDATE (zero rows → `Conflict`) and the audit event in the same transaction.

A build holds a lease (`lease_token`, renewed in `heartbeat_at` by a heartbeat thread).
Whoever holds it may finish the batch; a build whose heartbeat stopped (its worker was
killed) is taken over by the next task or the sweep, and a stale builder that wakes up finds
its lease gone and throws its work away. The file is written locally and reaches storage
only when it is complete; the batch points at it only once it is `ready`. The data work
itself (selection, streaming, writers, storage) is in retraining/build.py.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from agents.models import Agent, FeedbackEvent
from core.audit import audit_record
from core.outbox import outbox_enqueue
from core.transitions import StateMachine, transition
from retraining import build, selectors
from retraining.errors import Conflict, ExportError, InvalidRequest, LeaseLost
from retraining.models import BatchPair, ExportBatch, TrainingPair
from reviews.models import ErrorCategory

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["Conflict", "ExportError", "InvalidRequest", "LeaseLost"]

logger = logging.getLogger(__name__)

Status = ExportBatch.Status
Dataset = ExportBatch.Dataset
Format = ExportBatch.Format

# (from, to) → the action recorded in the audit log.
TRANSITIONS: dict[tuple[str, str], str] = {
    (Status.QUEUED, Status.BUILDING): "batch.started",
    (Status.BUILDING, Status.BUILDING): "batch.taken_over",  # the previous builder died
    (Status.BUILDING, Status.READY): "batch.ready",
    (Status.BUILDING, Status.FAILED): "batch.failed",
    (Status.BUILDING, Status.QUEUED): "batch.requeued",  # transient error or dead worker
    (Status.FAILED, Status.QUEUED): "batch.retried",
}
# Errors worth retrying: the database or the network went away for a moment.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)
FILTER_KEYS: dict[str, set[str]] = {
    Dataset.PAIRS: {
        "date_from",
        "date_to",
        "sources",
        "error_categories",
        "agent_versions",
        "min_reviews",
        "new_only",
        "system_prompt",
    },
    Dataset.FEEDBACK: {"date_from", "date_to", "kinds"},
}
DEFAULT_FEEDBACK_KINDS = [FeedbackEvent.Kind.CLICKED, FeedbackEvent.Kind.SKIPPED]


# --- the state machine -------------------------------------------------------------------------


BATCH_STATES = StateMachine(
    model=ExportBatch,
    target_type="export_batch",
    moves=TRANSITIONS,
    conflict=Conflict,
    conflict_message="This batch changed in the meantime.",
)


def _transition(
    batch: ExportBatch,
    to: str,
    *,
    actor=None,
    guard: dict[str, Any] | None = None,
    note: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Moves `batch` from the status it had when read to `to` (`core.transitions`): a
    compare-and-swap UPDATE guarded by that status and `guard` (e.g. the lease token), the
    changes mirrored on the instance, the audit event with `note`. Raises Conflict."""
    transition(BATCH_STATES, batch, to, actor=actor, guard=guard, changes=changes, note=note)


# --- requesting --------------------------------------------------------------------------------


def _day(value: Any, key: str, errors: dict[str, str]) -> str | None:
    if value in (None, ""):
        return None
    try:
        return (value if isinstance(value, date) else date.fromisoformat(str(value))).isoformat()
    except ValueError:
        errors[key] = "must be a date, YYYY-MM-DD"
        return None


def _choices(value: Any, allowed: list[str], key: str, errors: dict[str, str]) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[key] = "must be a list of strings"
        return []
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        errors[key] = f"unknown value(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
    return sorted(set(value))


def filters_clean(
    *, dataset: str, format: str, filters: dict[str, Any] | None, new_only: bool = False
) -> dict[str, Any]:
    """Validates and normalises a batch request's filters (the form's and the API's). The
    result is what the batch stores and its manifest shows: every key present, lists
    sorted. Raises InvalidRequest with a message per field."""
    errors: dict[str, str] = {}
    if dataset not in Dataset.values:
        raise InvalidRequest({"dataset": f"must be one of {', '.join(Dataset.values)}"})
    allowed_formats = (
        [str(f) for f in ExportBatch.FEEDBACK_FORMATS]
        if dataset == Dataset.FEEDBACK
        else Format.values
    )
    if format not in allowed_formats:
        errors["format"] = f"must be one of {', '.join(allowed_formats)}"
    if filters is not None and not isinstance(filters, dict):
        raise InvalidRequest({"filters": "must be an object"})
    filters = dict(filters or {})
    unknown = sorted(set(filters) - FILTER_KEYS[dataset])
    if unknown:
        errors["filters"] = f"unknown filter(s) {', '.join(unknown)}"
    clean: dict[str, Any] = {
        "date_from": _day(filters.get("date_from"), "date_from", errors),
        "date_to": _day(filters.get("date_to"), "date_to", errors),
    }
    if clean["date_from"] and clean["date_to"] and clean["date_from"] > clean["date_to"]:
        errors["date_to"] = "must not be before date_from"
    if dataset == Dataset.FEEDBACK:
        kinds = _choices(filters.get("kinds"), FeedbackEvent.Kind.values, "kinds", errors)
        clean["kinds"] = kinds or sorted(DEFAULT_FEEDBACK_KINDS)
    else:
        sources = _choices(filters.get("sources"), TrainingPair.Source.values, "sources", errors)
        if format == Format.PREFERENCE:
            if sources and TrainingPair.Source.CORRECT not in sources:
                errors["sources"] = "preference batches hold corrections only"
            sources = [TrainingPair.Source.CORRECT]
        clean["sources"] = sources or sorted(TrainingPair.Source.values)
        categories = filters.get("error_categories") or []
        if not isinstance(categories, list) or not all(
            c is None or isinstance(c, str) for c in categories
        ):
            errors["error_categories"] = "must be a list of category slugs (null: no category)"
            categories = []
        known = set(ErrorCategory.objects.values_list("slug", flat=True))
        missing = sorted({c for c in categories if c} - known)
        if missing:
            errors["error_categories"] = f"unknown categories {', '.join(missing)}"
        clean["error_categories"] = sorted(set(categories), key=lambda c: (c is None, c or ""))
        versions = filters.get("agent_versions") or []
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            errors["agent_versions"] = "must be a list of strings"
            versions = []
        clean["agent_versions"] = sorted({v.strip() for v in versions if v.strip()})
        min_reviews = filters.get("min_reviews")
        min_reviews = 1 if min_reviews in (None, "") else min_reviews
        if isinstance(min_reviews, bool) or not isinstance(min_reviews, int) or min_reviews < 1:
            errors["min_reviews"] = "must be a whole number, 1 or more"
            min_reviews = 1
        clean["min_reviews"] = min_reviews
        clean["new_only"] = bool(new_only or filters.get("new_only"))
        prompt = filters.get("system_prompt") or ""
        if not isinstance(prompt, str):
            errors["system_prompt"] = "must be a string"
        elif prompt and format != Format.OPENAI:
            errors["system_prompt"] = "applies to the openai format only"
        else:
            clean["system_prompt"] = prompt.replace("\r\n", "\n")
    if errors:
        raise InvalidRequest(errors)
    return clean


@transaction.atomic
def batch_request(
    *,
    agent: Agent,
    format: str,
    actor: User | None,
    dataset: str = Dataset.PAIRS,
    filters: dict[str, Any] | None = None,
    new_only: bool = False,
    enqueue: bool = True,
) -> ExportBatch:
    """Records a batch request (status `queued`) and enqueues its build once the
    transaction commits. Fixes the data cutoff (the highest pair / event id now) and the
    validation share, so the batch means the same thing whenever it is built. Raises
    InvalidRequest."""
    clean = filters_clean(dataset=dataset, format=format, filters=filters, new_only=new_only)
    cutoff = selectors.feedback_cutoff() if dataset == Dataset.FEEDBACK else selectors.pair_cutoff()
    batch = ExportBatch.objects.create(
        agent=agent,
        dataset=dataset,
        format=format,
        filters=clean,
        validation_share=settings.EXPORT_VALIDATION_SHARE,
        cutoff_id=cutoff,
        created_by=actor,
        heartbeat_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action="batch.requested",
        target_type="export_batch",
        target_id=batch.pk,
        after={"status": batch.status, "agent": agent.slug, "dataset": dataset, "format": format},
    )
    if enqueue:
        _enqueue(batch)
    return batch


def _enqueue(batch: ExportBatch) -> None:
    outbox_enqueue("retraining.tasks.build_batch", batch.pk)


@transaction.atomic
def batch_retry(*, batch: ExportBatch, actor: User | None) -> ExportBatch:
    """A failed batch back to `queued`, with a fresh set of attempts, and enqueued again.
    Raises Conflict when it is not failed."""
    batch = ExportBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.status != Status.FAILED:
        raise Conflict("Only a failed batch can be retried.")
    _transition(
        batch,
        Status.QUEUED,
        actor=actor,
        attempts=0,
        progress=0,
        failure_reason="",
        heartbeat_at=timezone.now(),
    )
    _enqueue(batch)
    return batch


@transaction.atomic
def batch_mark_trained(
    *, batch: ExportBatch, agent_version: str, actor: User | None
) -> ExportBatch:
    """Records that `batch` was used to train `agent_version` of its agent (the KPI
    dashboard links that version's KPIs to it); an empty version clears the mark. Only a
    ready batch can be marked. Raises InvalidRequest, Conflict."""
    agent_version = (agent_version or "").strip()
    if len(agent_version) > 100:
        raise InvalidRequest({"agent_version": "must be at most 100 characters"})
    before = batch.trained_agent_version
    updated = ExportBatch.objects.filter(pk=batch.pk, status=Status.READY).update(
        trained_agent_version=agent_version
    )
    if not updated:
        raise Conflict("Only a ready batch can be marked as used for training.")
    batch.trained_agent_version = agent_version
    audit_record(
        actor=actor,
        action="batch.marked_trained",
        target_type="export_batch",
        target_id=batch.pk,
        before={"trained_agent_version": before},
        after={"trained_agent_version": agent_version},
    )
    return batch


# --- building ----------------------------------------------------------------------------------


def batch_build(*, batch_id: int) -> str:
    """Builds batch `batch_id` if it is queued (or building under a lease that expired) and
    returns its status afterwards; anything else is left alone, so running it twice, or on
    two workers at once, builds the batch once.

    Takes the lease with a compare-and-swap. Transient database / network errors release
    the lease (back to `queued`) and are re-raised for the task to retry; any other error
    fails the batch with the reason. After EXPORT_MAX_ATTEMPTS starts the batch fails.
    """
    batch = _lease_take(batch_id)
    if batch is None:
        return (
            ExportBatch.objects.filter(pk=batch_id).values_list("status", flat=True).first() or ""
        )
    if batch.attempts > settings.EXPORT_MAX_ATTEMPTS:
        _fail(
            batch,
            f"Gave up after {settings.EXPORT_MAX_ATTEMPTS} attempts: the build kept stopping "
            "before it finished (a worker killed or out of memory?). Retry when that is fixed.",
        )
        return batch.status
    built: build.Built | None = None
    try:
        built = build.write(batch)
        _finish(batch, built)
    except LeaseLost:
        logger.warning("batch %s: lease lost, this build stops", batch.pk)
        build.discard(built)
    except TRANSIENT_ERRORS:
        build.discard(built)
        _release(batch)
        raise
    except Exception as exc:
        logger.exception("batch %s failed", batch.pk)
        build.discard(built)
        _fail(batch, _reason(exc))
    return batch.status


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _lease_take(batch_id: int) -> ExportBatch | None:
    batch = ExportBatch.objects.select_related("agent").filter(pk=batch_id).first()
    if batch is None:
        return None
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EXPORT_BUILD_LEASE_SECONDS)
    if batch.status == Status.BUILDING and batch.heartbeat_at and batch.heartbeat_at >= stale:
        return None  # someone is building it right now
    if batch.status not in (Status.QUEUED, Status.BUILDING):
        return None
    guard = {"lease_token": batch.lease_token, "attempts": batch.attempts}
    token = secrets.token_hex(16)
    try:
        with transaction.atomic():
            _transition(
                batch,
                Status.BUILDING,
                guard=guard,
                note={"attempt": batch.attempts + 1},
                lease_token=token,
                heartbeat_at=now,
                started_at=now,
                attempts=batch.attempts + 1,
                progress=0,
                failure_reason="",
            )
    except Conflict:
        return None  # another worker took it first
    return batch


def _release(batch: ExportBatch) -> None:
    """Back to `queued` after a transient error (best effort: if the database is gone too,
    the lease simply expires and the sweep or the retried task takes the batch over)."""
    try:
        with transaction.atomic():
            _transition(
                batch, Status.QUEUED, guard={"lease_token": batch.lease_token}, lease_token=""
            )
    except (Conflict, DatabaseError):
        logger.warning("batch %s: could not release the lease", batch.pk)


def _fail(batch: ExportBatch, reason: str) -> None:
    """`failed` with the reason; the batch stops holding its pairs (they count as new)."""
    try:
        with transaction.atomic():
            _transition(
                batch,
                Status.FAILED,
                guard={"lease_token": batch.lease_token},
                note={"reason": reason},
                failure_reason=reason,
                lease_token="",
                finished_at=timezone.now(),
            )
            BatchPair.objects.filter(batch=batch).delete()
    except Conflict:
        logger.warning("batch %s: not failed, the lease was taken over", batch.pk)


def _finish(batch: ExportBatch, built: build.Built) -> None:
    """Stores the file and its manifest, then marks the batch ready if this build still
    holds the lease; raises LeaseLost otherwise (the caller deletes the stored files)."""
    name, manifest_name, manifest = build.store(batch, built)
    try:
        with transaction.atomic():
            _transition(
                batch,
                Status.READY,
                guard={"lease_token": batch.lease_token},
                note={"rows": built.rows, "sha256": built.sha256},
                file=name,
                manifest_file=manifest_name,
                sha256=built.sha256,
                file_size=built.size,
                row_count=built.rows,
                counts=built.counts,
                manifest=manifest,
                progress=100,
                lease_token="",
                heartbeat_at=timezone.now(),
                finished_at=timezone.now(),
            )
    except Conflict:
        raise LeaseLost(f"batch {batch.pk}: the build lease was taken over") from None


# --- the sweep ---------------------------------------------------------------------------------


def batches_sweep() -> dict[str, int]:
    """Periodic: finds builds whose worker died (heartbeat older than the lease) and queued
    batches nobody started (a lost message). A dead build with attempts left goes back to
    `queued`; without, it fails. Both are enqueued again; the task's compare-and-swap makes
    double enqueues harmless. Returns how many of each it handled."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EXPORT_BUILD_LEASE_SECONDS)
    forgotten = now - timedelta(seconds=settings.EXPORT_REQUEUE_SECONDS)
    result = {"requeued": 0, "failed": 0, "reenqueued": 0}
    dead = ExportBatch.objects.filter(status=Status.BUILDING, heartbeat_at__lt=stale)
    for batch in dead.select_related("agent"):
        guard = {"lease_token": batch.lease_token, "heartbeat_at": batch.heartbeat_at}
        try:
            with transaction.atomic():
                if batch.attempts >= settings.EXPORT_MAX_ATTEMPTS:
                    reason = (
                        f"The build stopped: its worker stopped answering (attempt "
                        f"{batch.attempts} of {settings.EXPORT_MAX_ATTEMPTS}). Retry to build "
                        "it again."
                    )
                    _transition(
                        batch,
                        Status.FAILED,
                        guard=guard,
                        note={"reason": reason},
                        failure_reason=reason,
                        lease_token="",
                        finished_at=now,
                    )
                    BatchPair.objects.filter(batch=batch).delete()
                    result["failed"] += 1
                else:
                    _transition(
                        batch,
                        Status.QUEUED,
                        guard=guard,
                        note={"reason": "worker lost"},
                        lease_token="",
                        heartbeat_at=now,
                    )
                    _enqueue(batch)
                    result["requeued"] += 1
        except Conflict:
            continue  # it came back to life, or another sweep got it
    waiting = ExportBatch.objects.filter(status=Status.QUEUED, heartbeat_at__lt=forgotten)
    for pk in waiting.values_list("pk", flat=True):
        with transaction.atomic():
            # Touched first, so the next sweep does not enqueue it again at once.
            if waiting.filter(pk=pk).update(heartbeat_at=now):
                _enqueue(ExportBatch(pk=pk))
                result["reenqueued"] += 1
    build.tmp_files_sweep(stale)
    return result


def batch_file_open(*, batch: ExportBatch, manifest: bool = False) -> File:
    """The stored file (or manifest) of a ready batch, opened for reading. Raises Conflict
    when the batch is not ready: a queued, building or failed batch has nothing to read."""
    if batch.status != Status.READY:
        raise Conflict(f"Batch {batch.pk} is {batch.status}; only a ready batch can be downloaded.")
    stored = batch.manifest_file if manifest else batch.file
    return default_storage.open(stored.name or "", "rb")
