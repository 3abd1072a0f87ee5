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

import functools
import logging
import re
import secrets
from collections.abc import Callable
from datetime import date, timedelta
from itertools import islice
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from agents.models import Agent, FeedbackEvent
from core.audit import audit_record
from core.outbox import outbox_enqueue
from core.storage import open_stream
from core.transitions import StateMachine, transition
from retraining import build, selectors
from retraining import sources as registry
from retraining.errors import (
    BatchExists,
    Conflict,
    ExportError,
    InvalidRequest,
    LeaseLost,
    NothingToExport,
    TooManyActive,
)
from retraining.models import BatchPair, ExportBatch, TrainingPair
from reviews.models import ErrorCategory

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = [
    "BatchExists",
    "Conflict",
    "ExportError",
    "InvalidRequest",
    "LeaseLost",
    "NothingToExport",
    "TooManyActive",
]

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
# A batch request has at most MAX_FILTER_KEYS filter keys (a dataset knows at most 10): more,
# with unknown ones among them, is refused before anything else is checked. An error names
# at most UNKNOWN_FILTERS_NAMED unknown keys and counts the rest.
MAX_FILTER_KEYS = 32
UNKNOWN_FILTERS_NAMED = 5

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
        "intents",
        "domains",
    },
    Dataset.FEEDBACK: {"date_from", "date_to", "kinds", "intents", "domains"},
}
# The filters of every dataset; a registered one (retraining/sources.py) adds its own.
COMMON_FILTER_KEYS = {"date_from", "date_to", "intents", "domains"}
# Keys added after batches were already stored, with the value that means "no restriction":
# an older batch without them asked for the same thing as a request with these values.
ADDED_FILTER_DEFAULTS: dict[str, Any] = {"intents": [], "domains": []}
DEFAULT_FEEDBACK_KINDS = [FeedbackEvent.Kind.CLICKED, FeedbackEvent.Kind.SKIPPED]
# The limits of a request, the same for the page (its form fields use them) and the API.
SYSTEM_PROMPT_MAX_CHARS = 20_000
LIST_MAX_ITEMS = 100  # values in one list filter (versions, categories, sources, kinds)
VERSION_MAX_CHARS = 100  # TrainingPair.agent_version's length
TAG_MAX_CHARS = 100  # Interaction.intent's and Interaction.domain's length
MIN_REVIEWS_MAX = 10
EARLIEST_DAY = date(2000, 1, 1)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# Advisory-lock namespaces (PostgreSQL) serialising requests per agent (the identical-batch
# check) and per user (the limits); build.py's selection lock uses 61_006.
_REQUEST_AGENT_LOCK = 61_007
_REQUEST_USER_LOCK = 61_008
ACTIVE = (Status.QUEUED, Status.BUILDING)


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


def _latest_day() -> date:
    """Today where it is latest on earth (UTC+14): a day a user east of UTC already lives in
    is not refused as "in the future", and nothing later can hold any decision yet."""
    return (timezone.now() + timedelta(hours=14)).date()


def _day(value: Any, key: str, errors: dict[str, str]) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        day = value
    elif isinstance(value, str) and _ISO_DAY.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            day = None
    else:
        day = None  # fromisoformat() alone would take "20261120" and "2026-W47-1" too
    if day is None:
        errors[key] = "must be a date, YYYY-MM-DD"
    elif day < EARLIEST_DAY:
        errors[key] = f"must be {EARLIEST_DAY.isoformat()} or later"
    elif day > _latest_day():
        # Far-future days also overflow the day arithmetic of the selection (9999-12-31).
        errors[key] = "must not be in the future"
    else:
        return day.isoformat()
    return None


def _strings(value: Any, key: str, errors: dict[str, str], *, nulls: bool = False) -> list:
    """A bounded list of strings (and None where `nulls`), or [] with an error."""
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, str) or (nulls and v is None) for v in value
    ):
        errors[key] = "must be a list of strings"
        return []
    if len(value) > LIST_MAX_ITEMS:
        errors[key] = f"must hold at most {LIST_MAX_ITEMS} values"
        return []
    return value


def _choices(value: Any, allowed: list[str], key: str, errors: dict[str, str]) -> list[str]:
    value = _strings(value, key, errors)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        errors[key] = f"unknown value(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
    return sorted(set(value))


def _tags(value: Any, key: str, errors: dict[str, str]) -> list[str]:
    """A bounded list of intents or domains (`key`), each stripped, not empty and at most
    TAG_MAX_CHARS long (the interaction's column); sorted, without repeats. Matched exactly,
    case included: an empty value would only ever match untagged interactions."""
    values = _strings(value, key, errors)
    stripped = [v.strip() for v in values]
    if any(not v for v in stripped):
        errors[key] = "must not hold empty values"
    elif any(len(v) > TAG_MAX_CHARS for v in stripped):
        errors[key] = f"each must be at most {TAG_MAX_CHARS} characters"
    return sorted(set(stripped))


def _versions(value: Any, key: str, errors: dict[str, str]) -> list[str]:
    """A bounded list of agent versions, stripped, sorted, without repeats or empties."""
    versions = _strings(value, key, errors)
    if any(len(v.strip()) > VERSION_MAX_CHARS for v in versions):
        errors[key] = f"each must be at most {VERSION_MAX_CHARS} characters"
    return sorted({v.strip() for v in versions if v.strip()})


def _unknown_filters(filters: dict[str, Any], known: set[str]) -> str:
    """ "unknown filter(s) a, b, c, d, e and 65531 more" naming at most the first
    UNKNOWN_FILTERS_NAMED unknown keys (in the order given; each cut to 64 characters), or
    "" when every key is known. Looks at no more keys than it names."""
    unknown_count = len(filters) - sum(1 for key in known if key in filters)
    if not unknown_count:
        return ""
    unknown = (str(key)[:64] for key in filters if key not in known)
    named = list(islice(unknown, UNKNOWN_FILTERS_NAMED))
    more = unknown_count - len(named)
    return f"unknown filter(s) {', '.join(named)}" + (f" and {more} more" if more else "")


def filters_clean(
    *, dataset: str, format: str, filters: dict[str, Any] | None, new_only: bool = False
) -> dict[str, Any]:
    """Validates and normalises a batch request's filters (the form's and the API's). The
    result is what the batch stores and its manifest shows: every key present, lists
    sorted. Raises InvalidRequest with a message per field."""
    errors: dict[str, str] = {}
    if dataset not in Dataset.values:
        raise InvalidRequest({"dataset": f"must be one of {', '.join(Dataset.values)}"})
    source = registry.get(dataset)
    if source is None and dataset not in FILTER_KEYS:
        raise InvalidRequest({"dataset": f"{dataset} is not available"})
    if source is not None:
        allowed_formats = [str(f) for f in source.formats]
    elif dataset == Dataset.FEEDBACK:
        allowed_formats = [str(f) for f in ExportBatch.FEEDBACK_FORMATS]
    else:
        allowed_formats = Format.values
    if format not in allowed_formats:
        errors["format"] = f"must be one of {', '.join(allowed_formats)}"
    if filters is not None and not isinstance(filters, dict):
        raise InvalidRequest({"filters": "must be an object"})
    filters = filters or {}
    known_keys = (
        {*COMMON_FILTER_KEYS, *source.filter_keys} if source is not None else FILTER_KEYS[dataset]
    )
    problem = _unknown_filters(filters, known_keys)
    if problem and len(filters) > MAX_FILTER_KEYS:
        # Refused before any other check: the request is not a set of filters a form sends.
        raise InvalidRequest({"filters": f"at most {MAX_FILTER_KEYS} filters; {problem}"})
    if problem:
        errors["filters"] = problem
    clean: dict[str, Any] = {
        "date_from": _day(filters.get("date_from"), "date_from", errors),
        "date_to": _day(filters.get("date_to"), "date_to", errors),
    }
    if clean["date_from"] and clean["date_to"] and clean["date_from"] > clean["date_to"]:
        errors["date_to"] = "must not be before date_from"
    if source is not None:
        for key, values in source.choice_filters.items():
            chosen = _choices(filters.get(key), list(values), key, errors)
            clean[key] = chosen or sorted(values)  # none chosen: every value
        for key in source.version_filters:
            clean[key] = _versions(filters.get(key), key, errors)
    elif dataset == Dataset.FEEDBACK:
        kinds = _choices(filters.get("kinds"), FeedbackEvent.Kind.values, "kinds", errors)
        clean["kinds"] = kinds or sorted(DEFAULT_FEEDBACK_KINDS)
    else:
        sources = _choices(filters.get("sources"), TrainingPair.Source.values, "sources", errors)
        if format == Format.PREFERENCE:
            if sources and TrainingPair.Source.CORRECT not in sources:
                errors["sources"] = "preference batches hold corrections only"
            sources = [TrainingPair.Source.CORRECT]
        clean["sources"] = sources or sorted(TrainingPair.Source.values)
        categories = _strings(
            filters.get("error_categories"), "error_categories", errors, nulls=True
        )
        known = set(ErrorCategory.objects.values_list("slug", flat=True))
        missing = sorted({c for c in categories if c} - known)
        if missing:
            errors["error_categories"] = f"unknown categories {', '.join(missing)}"
        clean["error_categories"] = sorted(set(categories), key=lambda c: (c is None, c or ""))
        clean["agent_versions"] = _versions(filters.get("agent_versions"), "agent_versions", errors)
        min_reviews = filters.get("min_reviews")
        min_reviews = 1 if min_reviews in (None, "") else min_reviews
        if (
            isinstance(min_reviews, bool)
            or not isinstance(min_reviews, int)
            or not 1 <= min_reviews <= MIN_REVIEWS_MAX
        ):
            errors["min_reviews"] = f"must be a whole number from 1 to {MIN_REVIEWS_MAX}"
            min_reviews = 1
        clean["min_reviews"] = min_reviews
        flag = filters.get("new_only")
        if flag is not None and not isinstance(flag, bool):
            errors["new_only"] = "must be true or false"
        clean["new_only"] = bool(new_only or flag)
        prompt = filters.get("system_prompt") or ""
        if not isinstance(prompt, str):
            errors["system_prompt"] = "must be a string"
        elif len(prompt.replace("\r\n", "\n")) > SYSTEM_PROMPT_MAX_CHARS:
            errors["system_prompt"] = f"must be at most {SYSTEM_PROMPT_MAX_CHARS} characters"
        elif prompt and format != Format.OPENAI:
            errors["system_prompt"] = "applies to the openai format only"
        else:
            clean["system_prompt"] = prompt.replace("\r\n", "\n")
    # Both datasets: matched against the interaction of the pair / of the feedback event.
    clean["intents"] = _tags(filters.get("intents"), "intents", errors)
    clean["domains"] = _tags(filters.get("domains"), "domains", errors)
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
    refuse_empty: bool = False,
    reuse_existing: bool = False,
) -> ExportBatch:
    """Records a batch request (status `queued`) and enqueues its build once the
    transaction commits. Fixes the data cutoff (the highest pair / event id now) and the
    validation share, so the batch means the same thing whenever it is built, and records
    the size of the selection then (`counts.estimated_rows`).

    The page, the API and the command ask for `refuse_empty` (a selection with no rows is
    refused: InvalidRequest with a `selection` error); the page and the API also for
    `reuse_existing` (BatchExists carrying an identical batch that is queued, building or
    ready). A requesting user's queued and building batches are limited in number
    (EXPORT_MAX_ACTIVE_PER_USER) and rows (EXPORT_MAX_ACTIVE_ROWS_PER_USER): TooManyActive.
    On PostgreSQL the checks hold advisory locks (the user's, then the agent's) until the
    transaction ends, so two requests at once cannot both pass them.
    Raises InvalidRequest, BatchExists, TooManyActive."""
    clean = filters_clean(dataset=dataset, format=format, filters=filters, new_only=new_only)
    if actor is not None:
        _advisory_lock(_REQUEST_USER_LOCK, actor.pk)
    _advisory_lock(_REQUEST_AGENT_LOCK, agent.pk)
    feedback = dataset == Dataset.FEEDBACK
    source = registry.get(dataset)
    if source is not None:
        cutoff = source.cutoff()
    else:
        cutoff = selectors.feedback_cutoff() if feedback else selectors.pair_cutoff()
    selection = _selection(agent=agent, dataset=dataset, filters=clean, cutoff_id=cutoff)
    if reuse_existing:
        existing = _identical_batch(
            agent=agent, dataset=dataset, format=format, filters=clean, cutoff_id=cutoff
        )
        if existing is not None:
            raise BatchExists(existing)
    estimated = selection.count()
    if refuse_empty and not estimated:
        what = source.what if source else "feedback events" if feedback else "training pairs"
        held = " (every matching pair is already in a batch)" if clean.get("new_only") else ""
        raise InvalidRequest(
            {"selection": f"Nothing to export: no {what} match these filters{held}."}
        )
    if actor is not None:
        _check_active_limits(actor=actor, rows=estimated)
    batch = ExportBatch.objects.create(
        agent=agent,
        dataset=dataset,
        format=format,
        filters=clean,
        validation_share=settings.EXPORT_VALIDATION_SHARE,
        cutoff_id=cutoff,
        counts={"estimated_rows": estimated},
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


def _advisory_lock(namespace: int, key: int) -> None:
    """A transaction-scoped advisory lock (PostgreSQL; SQLite serialises writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, key])


def _selection(*, agent: Agent, dataset: str, filters: dict[str, Any], cutoff_id: int):
    source = registry.get(dataset)
    if source is not None:
        # Rows decided (or otherwise ready) by now; the batch's `created_at`, a moment later
        # in this transaction, is what its build uses.
        return source.matching(
            agent_id=agent.pk, filters=filters, cutoff_id=cutoff_id, requested_at=timezone.now()
        )
    if dataset == Dataset.FEEDBACK:
        return selectors.feedback_matching(agent_id=agent.pk, filters=filters, cutoff_id=cutoff_id)
    return selectors.pairs_matching(agent_id=agent.pk, filters=filters, cutoff_id=cutoff_id)


def _identical_batch(
    *, agent: Agent, dataset: str, format: str, filters: dict[str, Any], cutoff_id: int
) -> ExportBatch | None:
    """The newest queued, building or ready batch asking for the same thing (agent,
    dataset, format, normalised filters, validation share) whose selection would not change
    with the current data: no matching row arrived after its own cutoff. A later cutoff
    alone (rows of other agents) does not make a batch different. A ready "only new pairs"
    batch holds its pairs, so asking again means "what is new since": never identical."""
    candidates = ExportBatch.objects.filter(
        agent=agent,
        dataset=dataset,
        format=format,
        validation_share=settings.EXPORT_VALIDATION_SHARE,
        status__in=[*ACTIVE, Status.READY],
    ).order_by("-pk")
    for batch in candidates:
        # Compared in Python: key order and JSON types alike.
        if {**ADDED_FILTER_DEFAULTS, **batch.filters} != filters:
            continue
        if filters.get("new_only") and batch.status == Status.READY:
            continue
        later = _selection(agent=agent, dataset=dataset, filters=filters, cutoff_id=cutoff_id)
        source = registry.get(dataset)
        if source is not None:
            later = source.changed_since(later, batch)
        else:
            later = later.filter(pk__gt=batch.cutoff_id)
        if not later.exists():
            return batch
    return None


def _check_active_limits(*, actor: User, rows: int) -> None:
    """Refuses a request once its user's queued and building batches reach the limits (in
    number, and in rows as estimated at request time; one batch alone may be larger)."""
    active = list(
        ExportBatch.objects.filter(created_by=actor, status__in=ACTIVE).values_list(
            "counts", flat=True
        )
    )
    limit = settings.EXPORT_MAX_ACTIVE_PER_USER
    if len(active) >= limit:
        raise TooManyActive(
            f"You already have {len(active)} batch{'es' if len(active) != 1 else ''} queued "
            f"or building (the limit is {limit}): wait for one to finish."
        )
    held = sum(int((counts or {}).get("estimated_rows") or 0) for counts in active)
    max_rows = settings.EXPORT_MAX_ACTIVE_ROWS_PER_USER
    if active and held + rows > max_rows:
        raise TooManyActive(
            f"Your batches queued or building already hold {held} rows; this one would add "
            f"{rows}, over the limit of {max_rows}: wait for one to finish."
        )


def _enqueue(batch: ExportBatch) -> None:
    outbox_enqueue("retraining.tasks.build_batch", batch.pk)


@transaction.atomic
def batch_retry(*, batch: ExportBatch, actor: User | None) -> ExportBatch:
    """A failed batch back to `queued`, with a fresh set of attempts, and enqueued again;
    it counts against the per-user limits like a new request. Raises Conflict when it is
    not failed, TooManyActive."""
    if actor is not None:
        _advisory_lock(_REQUEST_USER_LOCK, actor.pk)
    batch = ExportBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.status != Status.FAILED:
        raise Conflict("Only a failed batch can be retried.")
    if actor is not None:
        _check_active_limits(actor=actor, rows=int(batch.counts.get("estimated_rows") or 0))
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
    except NothingToExport as exc:
        build.discard(built)
        _fail(batch, str(exc))
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


def batch_file_open(
    *, batch: ExportBatch, manifest: bool = False
) -> tuple[str, Callable[[], IO[bytes]]]:
    """The storage name of a ready batch's file (or manifest), and a function that opens it
    for streaming (core.storage.open_stream). Raises Conflict when the batch is not ready:
    a queued, building or failed batch has nothing to read."""
    if batch.status != Status.READY:
        raise Conflict(f"Batch {batch.pk} is {batch.status}; only a ready batch can be downloaded.")
    name = (batch.manifest_file if manifest else batch.file).name or ""
    return name, functools.partial(open_stream, name)
