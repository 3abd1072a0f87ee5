"""Ingest: the one path by which interactions and feedback enter Coachdesk.

Every entry point (the import commands, the HTTP API, the demo seeder, the benchmarks)
calls `interactions_ingest` / `feedback_ingest`. Records are validated one by one; good
records are written in batches, each batch in one transaction together with its routing
(ReviewItems), so an interaction is never stored without the review it needs.

Idempotency: (agent, external_id) is unique. A repeat inside the input is dropped before
writing. On PostgreSQL a batch is COPied straight into its tables; a batch that meets a
stored key is rolled back and merged with `ON CONFLICT DO NOTHING` instead, which drops the
repeats (ingest.batches.BatchWriter). That is also what makes two concurrent imports of the
same file safe: the second waits on the first's row locks, then stores nothing. Rows are
written in key order so two importers never wait on each other in a cycle (no deadlock).

A load that changed the tables substantially ends with ANALYZE (ingest.analyze).
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from agents.models import Agent, FeedbackEvent, Interaction
from ingest.analyze import loaded_tables_analyze
from ingest.batches import (
    AgentPolicies,
    BatchWriter,
    ErrorSink,
    IngestResult,
    PreparedBatch,
    chunks,
    prepare_stream,
    scoped,
    tally,
    validated,
)
from ingest.genai import span_agents, span_record
from ingest.otlp import Span
from ingest.pipeline import IngestAborted, WriterThreads, produce
from ingest.readers import ProgressTracker, RecordError, iter_records
from ingest.validation import validate_feedback
from reviews.deadlines import item_due
from reviews.models import ReviewItem
from reviews.routing import deadline_rules


def interactions_ingest(
    *,
    records: Iterable[tuple[int, Any]],
    actor_id: int | None = None,
    source: str = "api",
    batch_size: int | None = None,
    on_error: ErrorSink | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
    agent_scope: frozenset[str] | None = None,
) -> IngestResult:
    """Validates, stores and routes interactions.

    `records` yields (position, decoded JSON value or RecordError); positions are echoed in
    errors. Errors go to `on_error` as they happen (streaming callers) or into
    `result.errors`. Each batch commits on its own: a failure later in a long import keeps
    the batches before it, and re-running the import is safe (idempotent). With
    `agent_scope` (an API token's agents), records for other agents are refused per record.
    A load that changed the tables substantially ANALYZEs them before returning
    (ingest.analyze: `result.analyzed`).
    """
    result = IngestResult()
    sink = on_error or result.errors.append
    size = batch_size or settings.INGEST_BATCH_SIZE
    copy_text = connection.vendor == "postgresql"
    writer = BatchWriter(result, sink, actor_id=actor_id, source=source)
    for prepared in prepare_stream(
        records, AgentPolicies(actor_id), size, copy_text=copy_text, agent_scope=agent_scope
    ):
        writer.commit(prepared)
        if on_batch:
            on_batch(result)
    _analyze_loaded(result, Interaction)
    return result


def _analyze_loaded(result: IngestResult, model: type[Interaction | FeedbackEvent]) -> None:
    """After the last commit: fresh planner statistics for the tables a big load wrote (the
    `model`'s rows it created and the review items it routed)."""
    result.analyzed = loaded_tables_analyze(
        written={model._meta.db_table: result.created, ReviewItem._meta.db_table: result.routed}
    )


def interactions_ingest_file(
    *,
    stream: BinaryIO,
    actor_id: int | None = None,
    source: str = "cli",
    batch_size: int | None = None,
    on_error: ErrorSink | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
    progress: ProgressTracker | None = None,
    parallel: bool | None = None,
) -> IngestResult:
    """`interactions_ingest` for a file, pipelined on PostgreSQL (ingest.pipeline).

    A forked child reads, parses, validates and routes the file and formats each batch as
    COPY text; this process only hands those batches to writer threads, which stream them
    into the database and commit, two transactions at a time. Parsing and writing overlap,
    and the queues between them hold a few batches at most, so memory stays flat in file
    size. Same results, same errors in the same order as the in-process path
    (`parallel=False`), and the same ANALYZE after a big load; batches may commit out of
    order, so when the import stops on an error, batches after the failed one may be stored
    too (re-running the import is safe).
    """
    size = batch_size or settings.INGEST_BATCH_SIZE
    if parallel is None:
        parallel = (
            connection.vendor == "postgresql" and "fork" in multiprocessing.get_all_start_methods()
        )
    if not parallel:
        return interactions_ingest(
            records=iter_records(stream, progress),
            actor_id=actor_id,
            source=source,
            batch_size=size,
            on_error=on_error,
            on_batch=on_batch,
        )
    result = IngestResult()
    writer = BatchWriter(result, on_error or result.errors.append, actor_id=actor_id, source=source)
    context = multiprocessing.get_context("fork")
    # Two batches ahead are enough to keep the writers busy; a deeper queue would only hold
    # more of them in the child's memory whenever the database is the slower side.
    channel = context.Queue(maxsize=2)
    connections.close_all()  # the child must not share this process's connection
    # multiprocessing closes standard input in its children: hand the child its own
    # descriptor of the stream (a duplicate) when it has one.
    try:
        source_fd: int | None = os.dup(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        source_fd = None
    child = context.Process(
        target=produce, args=(stream, source_fd, channel, actor_id, size), daemon=True
    )
    # Nothing inherited may be finalised by the child's garbage collector (an object holding
    # a database socket it shares with this process would close it for both).
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    writers = WriterThreads(writer)
    try:
        try:
            while (message := _receive(channel, child)) is not None:
                if progress:
                    progress.bytes_read = message.bytes_read
                writer.take_errors(message)
                writers.submit(message)
                if on_batch:
                    on_batch(result)
        finally:
            writers.join()
        writers.raise_failure()
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=10)
        if source_fd is not None:
            os.close(source_fd)
    if on_batch:
        on_batch(result)
    _analyze_loaded(result, Interaction)
    return result


def _receive(channel, child) -> PreparedBatch | None:
    """The child's next batch, or None at the end; IngestAborted when it failed or died."""
    while True:
        try:
            message = channel.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                raise IngestAborted(
                    f"the reading process died (exit code {child.exitcode})"
                ) from None
            continue
        if isinstance(message, str):
            raise IngestAborted(message)
        return message


# --- Feedback ---------------------------------------------------------------------------------

_RESOLVING = {FeedbackEvent.Kind.RESOLVED: "resolved", FeedbackEvent.Kind.ESCALATED: "escalated"}


def feedback_ingest(
    *,
    records: Iterable[tuple[int, Any]],
    actor_id: int | None = None,
    source: str = "api",
    batch_size: int | None = None,
    on_error: ErrorSink | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
    agent_scope: frozenset[str] | None = None,
) -> IngestResult:
    """Stores feedback events on known interactions and routes negative ones to review.

    An event names its interaction by (agent, external_id); an unknown one is rejected. The
    same event sent twice is a duplicate (see FeedbackEvent.dedupe_key). `resolved` and
    `escalated` events also set the interaction's outcome flags; `thumbs_down` and
    `escalated` queue the interaction for review (reason `feedback`) unless it already is.
    With `agent_scope` (an API token's agents), events for other agents are refused.
    """
    result = IngestResult()
    sink = on_error or result.errors.append
    size = batch_size or settings.INGEST_BATCH_SIZE
    for batch in chunks(
        validated(records, scoped(validate_feedback, agent_scope), result, sink), size
    ):
        with transaction.atomic():
            created, dupes, routed = _write_feedback(batch, result, sink)
            tally(result, "feedback", created, dupes, routed, actor_id=actor_id, source=source)
        if on_batch:
            on_batch(result)
    _analyze_loaded(result, FeedbackEvent)
    return result


def _write_feedback(
    batch: list[dict], result: IngestResult, sink: ErrorSink
) -> tuple[int, int, int]:
    agents = {a.slug: a for a in Agent.objects.filter(slug__in={r["agent"] for r in batch})}
    wanted: dict[int, set[str]] = {}
    for rec in batch:
        if rec["agent"] in agents:
            wanted.setdefault(agents[rec["agent"]].pk, set()).add(rec["external_id"])
    interactions: dict[tuple[int, str], int] = {}
    for agent_id, external_ids in wanted.items():
        for pk, external_id in Interaction.objects.filter(
            agent_id=agent_id, external_id__in=external_ids
        ).values_list("pk", "external_id"):
            interactions[(agent_id, external_id)] = pk

    now = timezone.now()
    events: dict[str, FeedbackEvent] = {}
    dupes = 0
    for rec in batch:
        agent = agents.get(rec["agent"])
        if agent is None:
            result.rejected += 1
            sink(RecordError(rec["_position"], "agent", f"unknown agent {rec['agent']!r}"))
            continue
        interaction_id = interactions.get((agent.pk, rec["external_id"]))
        if interaction_id is None:
            result.rejected += 1
            sink(
                RecordError(
                    rec["_position"],
                    "external_id",
                    f"no interaction {rec['external_id'][:80]!r} for agent {rec['agent']!r}",
                )
            )
            continue
        if rec["dedupe_key"] in events:
            dupes += 1
            continue
        events[rec["dedupe_key"]] = FeedbackEvent(
            interaction_id=interaction_id,
            agent_id=agent.pk,
            kind=rec["kind"],
            item_ref=rec["item_ref"],
            value=rec["value"],
            created_at=rec["created_at"] or now,
            dedupe_key=rec["dedupe_key"],
        )
    if not events:
        return 0, dupes, 0
    # Stored events are duplicates; the lock-free check is safe because the insert below
    # ignores conflicts, so a concurrent import of the same events only shifts the counts.
    stored = set(
        FeedbackEvent.objects.filter(dedupe_key__in=list(events)).values_list(
            "dedupe_key", flat=True
        )
    )
    new = [event for key, event in sorted(events.items()) if key not in stored]
    FeedbackEvent.objects.bulk_create(new, ignore_conflicts=True, batch_size=2000)
    dupes += len(events) - len(new)

    for kind, flag in _RESOLVING.items():
        ids = {e.interaction_id for e in new if e.kind == kind}
        if ids:
            Interaction.objects.filter(pk__in=ids).update(**{flag: True})
    negative = {e.interaction_id: e.kind for e in new if e.kind in FeedbackEvent.NEGATIVE}
    routed = _route_on_feedback(negative) if negative else 0
    return len(new), dupes, routed


def _route_on_feedback(kinds: dict[int, str]) -> int:
    """Queues interactions that got negative feedback and are not in a queue yet."""
    fresh = (
        Interaction.objects.filter(pk__in=kinds, review_item__isnull=True)
        .select_related("agent")
        .only(
            "pk",
            "agent_id",
            "domain",
            "confidence",
            "created_at",
            "agent__domain",
            "agent__required_reviews",
        )
    )
    queued = list(fresh)
    now = timezone.now()
    # Review deadlines: one query per agent among them, none per item.
    rules = {agent_id: deadline_rules(agent_id) for agent_id in {i.agent_id for i in queued}}
    items = []
    for i in queued:
        domain = i.domain or i.agent.domain
        near_at, due_at = item_due(rules[i.agent_id], domain, now)
        items.append(
            ReviewItem(
                interaction_id=i.pk,
                agent_id=i.agent_id,
                domain=domain,
                confidence=i.confidence,
                source_created_at=i.created_at,
                reason=ReviewItem.Reason.FEEDBACK,
                reason_detail=f"{kinds[i.pk]} feedback",
                required_reviews=i.agent.required_reviews,
                sla_near_at=near_at,
                due_at=due_at,
            )
        )
    ReviewItem.objects.bulk_create(items, ignore_conflicts=True)
    return len(items)


# --- OpenTelemetry traces -------------------------------------------------------------------


@dataclass
class TraceResult:
    """What became of an OTLP export's spans: interactions created or already stored, spans
    ignored (not GenAI) or skipped (GenAI but not an answer: tool steps, embeddings), and the
    rejected ones as (trace id:span id, why)."""

    created: int = 0
    duplicates: int = 0
    ignored: int = 0
    skipped: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


def traces_ingest(
    *,
    spans: list[Span],
    actor_id: int | None = None,
    agent_scope: frozenset[str] | None = None,
) -> TraceResult:
    """GenAI answer spans become interactions through `interactions_ingest` (so routing,
    audit sampling and KPIs treat them like any other), keyed by trace and span id."""
    slugs = span_agents(spans)
    thresholds = dict(
        Agent.objects.filter(slug__in=slugs).values_list("slug", "confidence_threshold")
    )
    default_threshold = Agent._meta.get_field("confidence_threshold").get_default()
    out = TraceResult()
    records = []
    for position, span in enumerate(spans):
        mapped = span_record(span, thresholds, default_threshold)
        if mapped.record is not None:
            records.append((position, mapped.record))
        elif mapped.ignored:
            out.ignored += 1
        elif mapped.skipped:
            out.skipped += 1
        else:
            out.rejected.append((span.key, mapped.rejected))
    result = interactions_ingest(
        records=records, actor_id=actor_id, source="otlp", agent_scope=agent_scope
    )
    out.created, out.duplicates = result.created, result.duplicates
    out.rejected += [(spans[e.position].key, f"{e.field}: {e.message}") for e in result.errors]
    return out
