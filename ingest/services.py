"""Ingest: the one path by which interactions and feedback enter Coachdesk.

Every entry point (the import commands, the HTTP API, the demo seeder, the benchmarks)
calls `interactions_ingest` / `feedback_ingest`. Records are validated one by one; good
records are written in batches, each batch in one transaction together with its routing
(ReviewItems), so an interaction is never stored without the review it needs.

Idempotency: (agent, external_id) is unique. A repeat inside the input is dropped before
writing; a repeat of a stored row is dropped by `ON CONFLICT DO NOTHING`, which is also
what makes two concurrent imports of the same file safe: the second waits on the first's
row locks and then inserts nothing. Rows are written in key order so two importers never
wait on each other in a cycle (no deadlock).
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, BinaryIO

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from agents.models import Agent, FeedbackEvent, Interaction
from core.audit import audit_record
from core.outbox import outbox_enqueue
from ingest.readers import ProgressTracker, RecordError, iter_records
from ingest.validation import validate_feedback, validate_interaction
from reviews.models import ReviewItem
from reviews.routing import Policy, route

ErrorSink = Callable[[RecordError], None]


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    routed: int = 0
    errors: list[RecordError] = field(default_factory=list)

    def summary(self) -> str:
        return f"imported {self.created}, duplicates {self.duplicates}, rejected {self.rejected}"


class _Agents:
    """Slug → Policy for one import; unknown agents are created with the default policy."""

    def __init__(self, actor_id: int | None) -> None:
        self._policies: dict[str, Policy] = {}
        self._actor_id = actor_id

    def get(self, slug: str) -> Policy:
        policy = self._policies.get(slug)
        if policy is None:
            agent = Agent.objects.filter(slug=slug).first()
            if agent is None:
                agent = self._create(slug)
            policy = self._policies[slug] = Policy.of(agent)
        return policy

    def _create(self, slug: str) -> Agent:
        try:
            with transaction.atomic():
                agent = Agent.objects.create(slug=slug, name=slug)
                audit_record(
                    actor_id=self._actor_id,
                    action="agent.created",
                    target_type="agent",
                    target_id=agent.pk,
                    after={"slug": slug, "via": "ingest"},
                )
                return agent
        except IntegrityError:  # a concurrent import created it first
            return Agent.objects.get(slug=slug)


def _validated(
    records: Iterable[tuple[int, Any]],
    validate: Callable[[Any], tuple[dict | None, list[tuple[str, str]]]],
    result: IngestResult,
    sink: ErrorSink,
) -> Iterator[dict]:
    for position, value in records:
        if isinstance(value, RecordError):
            result.rejected += 1
            sink(value)
            continue
        clean, errors = validate(value)
        if clean is None:
            result.rejected += 1
            for name, message in errors:
                sink(RecordError(position, name, message))
            continue
        clean["_position"] = position
        yield clean


def _tally(
    result: IngestResult,
    what: str,
    created: int,
    duplicates: int,
    routed: int,
    *,
    actor_id: int | None,
    source: str,
) -> None:
    """Adds one batch to the result, records it in the audit log and, when it routed items
    to agents that auto-assign, queues the assignment through the outbox. Called inside the
    batch's transaction: the log never claims rows that were rolled back, and the follow-up
    is sent after the commit, or later by the outbox sweep when Redis is down."""
    result.created += created
    result.duplicates += duplicates
    result.routed += routed
    audit_record(
        actor_id=actor_id,
        action=f"{what}.ingested",
        target_type="ingest",
        after={"source": source, "created": created, "routed": routed, "duplicates": duplicates},
    )
    if routed and Agent.objects.filter(auto_assign=True).exists():
        outbox_enqueue("console.tasks.items_autoassign")


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while batch := list(islice(rows, size)):
        yield batch


@dataclass
class _Prepared:
    """One batch, validated, de-duplicated and routed, ready to write: `rows` for the portable
    writer or `copy_data` (COPY text) for PostgreSQL, plus the errors found on the way."""

    n_rows: int
    dupes: int
    rejected: int
    errors: list[RecordError]
    now: datetime
    rows: list[tuple] = field(default_factory=list)
    copy_data: bytes = b""
    bytes_read: int = 0


def _prepare_stream(
    records: Iterable[tuple[int, Any]], agents: _Agents, size: int, *, copy_text: bool
) -> Iterator[_Prepared]:
    """Validates, de-duplicates and routes `records` batch by batch. Pure CPU work apart from
    agent lookups, so it can run in another process than the writer (see ingest_file)."""
    counts = IngestResult()  # only its `rejected` is used, as the validation tally
    errors: list[RecordError] = []
    clean = _validated(records, validate_interaction, counts, errors.append)
    rejected_before = 0
    for batch in _batches(clean, size):
        now = timezone.now()
        rows, dupes = _prepare_interactions(batch, agents, now)
        prepared = _Prepared(
            n_rows=len(rows),
            dupes=dupes,
            rejected=counts.rejected - rejected_before,
            errors=errors[:],
            now=now,
        )
        rejected_before = counts.rejected
        errors.clear()
        if copy_text:
            prepared.copy_data = _copy_text(rows)
        else:
            prepared.rows = rows
        yield prepared
    if errors or counts.rejected > rejected_before:  # invalid records after the last batch
        yield _Prepared(0, 0, counts.rejected - rejected_before, errors[:], timezone.now())


def _commit(
    prepared: _Prepared, result: IngestResult, sink: ErrorSink, *, actor_id: int | None, source: str
) -> None:
    """Writes one prepared batch in one transaction: interactions, review items, audit."""
    for error in prepared.errors:
        sink(error)
    result.rejected += prepared.rejected
    if not prepared.n_rows:
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            created, routed = _write_interactions_pg(
                prepared.copy_data or _copy_text(prepared.rows)
            )
        else:
            created, routed = _write_interactions_generic(prepared.rows, prepared.now)
        duplicates = prepared.dupes + prepared.n_rows - created
        _tally(
            result, "interactions", created, duplicates, routed, actor_id=actor_id, source=source
        )


def interactions_ingest(
    *,
    records: Iterable[tuple[int, Any]],
    actor_id: int | None = None,
    source: str = "api",
    batch_size: int | None = None,
    on_error: ErrorSink | None = None,
    on_batch: Callable[[IngestResult], None] | None = None,
) -> IngestResult:
    """Validates, stores and routes interactions.

    `records` yields (position, decoded JSON value or RecordError); positions are echoed in
    errors. Errors go to `on_error` as they happen (streaming callers) or into
    `result.errors`. Each batch commits on its own: a failure later in a long import keeps
    the batches before it, and re-running the import is safe (idempotent).
    """
    result = IngestResult()
    sink = on_error or result.errors.append
    size = batch_size or settings.INGEST_BATCH_SIZE
    copy_text = connection.vendor == "postgresql"
    for prepared in _prepare_stream(records, _Agents(actor_id), size, copy_text=copy_text):
        _commit(prepared, result, sink, actor_id=actor_id, source=source)
        if on_batch:
            on_batch(result)
    return result


class IngestAborted(Exception):
    """The preparing process failed; batches committed before it stay committed."""


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
    """`interactions_ingest` for a file, pipelined on PostgreSQL.

    A forked child reads, parses, validates and routes the file and formats each batch as
    COPY text; this process only streams those batches into the database and commits. The
    two overlap, so the database is not idle while Python parses, nor the other way round.
    The queue between them holds at most a few batches, so memory stays flat in file size.
    Same results, same errors, same order as the in-process path (`parallel=False`).
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
    sink = on_error or result.errors.append
    context = multiprocessing.get_context("fork")
    channel = context.Queue(maxsize=3)
    connections.close_all()  # the child must not share this process's connection
    # multiprocessing closes standard input in its children: hand the child its own
    # descriptor of the stream (a duplicate) when it has one.
    try:
        source_fd: int | None = os.dup(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        source_fd = None
    child = context.Process(
        target=_produce, args=(stream, source_fd, channel, actor_id, size), daemon=True
    )
    # Nothing inherited may be finalised by the child's garbage collector (an object holding
    # a database socket it shares with this process would close it for both).
    gc.freeze()
    try:
        child.start()
    finally:
        gc.unfreeze()
    try:
        while True:
            try:
                message = channel.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise IngestAborted(
                        f"the reading process died (exit code {child.exitcode})"
                    ) from None
                continue
            if message is None:
                break
            if isinstance(message, str):
                raise IngestAborted(message)
            if progress:
                progress.bytes_read = message.bytes_read
            _commit(message, result, sink, actor_id=actor_id, source=source)
            if on_batch:
                on_batch(result)
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=10)
        if source_fd is not None:
            os.close(source_fd)
    return result


def _produce(
    stream: BinaryIO, source_fd: int | None, channel, actor_id: int | None, size: int
) -> None:
    """The child of `interactions_ingest_file`: prepared batches into `channel`, then None
    (or a traceback string when something failed)."""
    tracker = ProgressTracker()
    for conn in connections.all(initialized_only=True):
        conn.connection = None  # never speak on a handle inherited from the parent
    if source_fd is not None:
        # Buffered exactly like the parent's stream, from the position it had reached.
        stream = os.fdopen(os.dup(source_fd), "rb", buffering=1024 * 1024)
    try:
        agents = _Agents(actor_id)
        for prepared in _prepare_stream(
            iter_records(stream, tracker), agents, size, copy_text=True
        ):
            prepared.bytes_read = tracker.bytes_read
            channel.put(prepared)
        channel.put(None)
    except BaseException:
        channel.put(traceback.format_exc())
    finally:
        connections.close_all()
        channel.close()
        channel.join_thread()


def _copy_escape(value: str) -> str:
    """COPY text format: backslash, tab, newline and carriage return are escaped."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    return value


_COPY_BOOL = {True: "t", False: "f", None: "\\N"}


def _copy_text(rows: list[tuple]) -> bytes:
    """The prepared rows (`_prepare_interactions` layout) as one COPY text payload.

    Written field by field for this one layout rather than with a generic per-value type
    switch: it runs for every row of every import and is a third of the preparing work.
    """
    esc = _copy_escape
    null = "\\N"
    lines = [
        f"{agent_id}\t{esc(external_id)}\t{esc(version)}\t{esc(conversation)}\t{esc(input_)}\t"
        f"{esc(context)}\t{esc(output)}\t{confidence!r}\t{esc(intent)}\t{esc(domain)}\t"
        f"{_COPY_BOOL[resolved]}\t{_COPY_BOOL[escalated]}\t"
        f"{null if sentiment is None else repr(sentiment)}\t{null if turns is None else turns}\t"
        f"{esc(metadata)}\t{created_at.isoformat()}\t{null if reason is None else reason}\t"
        f"{null if detail is None else esc(detail)}\t{esc(item_domain)}\t{required_reviews}\n"
        for (
            agent_id,
            external_id,
            version,
            conversation,
            input_,
            context,
            output,
            confidence,
            intent,
            domain,
            resolved,
            escalated,
            sentiment,
            turns,
            metadata,
            created_at,
            reason,
            detail,
            item_domain,
            required_reviews,
        ) in rows
    ]
    return "".join(lines).encode()


def _prepare_interactions(
    batch: list[dict], agents: _Agents, now: datetime
) -> tuple[list[tuple], int]:
    """Drops repeats within the batch, resolves agents, routes; returns rows in key order."""
    seen: dict[tuple[int, str], tuple] = {}
    dupes = 0
    for rec in batch:
        policy = agents.get(rec["agent"])
        key = (policy.agent_id, rec["external_id"])
        if key in seen:
            dupes += 1
            continue
        routing = route(
            policy,
            external_id=rec["external_id"],
            confidence=rec["confidence"],
            intent=rec["intent"],
            domain=rec["domain"],
        )
        reason, detail = routing if routing else (None, None)
        seen[key] = (
            policy.agent_id,
            rec["external_id"],
            rec["agent_version"],
            rec["conversation_id"],
            rec["input"],
            rec["context"],
            rec["output"],
            rec["confidence"],
            rec["intent"],
            rec["domain"],
            rec["resolved"],
            rec["escalated"],
            rec["sentiment"],
            rec["turns"],
            rec["metadata"],
            rec["created_at"] or now,
            reason,
            detail,
            policy.item_domain(rec["domain"]),
            policy.required_reviews,
        )
    return [seen[key] for key in sorted(seen)], dupes


_INTERACTION_COLUMNS = (
    "agent_id",
    "external_id",
    "agent_version",
    "conversation_id",
    "input",
    "context",
    "output",
    "confidence",
    "intent",
    "domain",
    "resolved",
    "escalated",
    "sentiment",
    "turns",
    "metadata",
    "created_at",
)
_N_INTERACTION = len(_INTERACTION_COLUMNS)

_PG_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS coachdesk_ingest_stage (
    agent_id bigint, external_id text, agent_version text, conversation_id text, input text,
    context jsonb, output text, confidence double precision, intent text, domain text,
    resolved boolean, escalated boolean, sentiment double precision, turns integer,
    metadata jsonb, created_at timestamptz, reason text, reason_detail text,
    item_domain text, required_reviews smallint
) ON COMMIT DELETE ROWS
"""

# One statement: insert the new interactions, then the ReviewItems of the routed ones among
# them. Rows already stored (duplicates) come back from neither, so they are never re-routed.
_PG_INSERT = f"""
WITH ins AS (
    INSERT INTO reviews_interaction ({", ".join(_INTERACTION_COLUMNS)}, ingested_at)
    SELECT {", ".join(_INTERACTION_COLUMNS)}, now() FROM coachdesk_ingest_stage
    ORDER BY agent_id, external_id
    ON CONFLICT (agent_id, external_id) DO NOTHING
    RETURNING id, agent_id, external_id
), items AS (
    INSERT INTO reviews_reviewitem (
        interaction_id, agent_id, domain, confidence, source_created_at, reason, reason_detail,
        priority, status, required_reviews, final_verdict, version, created_at, updated_at)
    SELECT ins.id, s.agent_id, s.item_domain, s.confidence, s.created_at, s.reason,
           s.reason_detail, 0, 'pending', s.required_reviews, '', 0, now(), now()
    FROM ins JOIN coachdesk_ingest_stage s USING (agent_id, external_id)
    WHERE s.reason IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM items)
"""


def _write_interactions_pg(copy_data: bytes) -> tuple[int, int]:
    """COPY into a session-local staging table, then one INSERT … ON CONFLICT statement."""
    with connection.cursor() as cursor:
        cursor.execute(_PG_STAGE)
        # Explicit, because inside an outer transaction (tests) ON COMMIT has not fired yet.
        cursor.execute("TRUNCATE coachdesk_ingest_stage")
        # The insert sorts the batch by key; give the sort room so it does not spill to disk.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        with cursor.cursor.copy("COPY coachdesk_ingest_stage FROM STDIN") as copy:
            copy.write(copy_data)
        cursor.execute(_PG_INSERT)
        created, routed = cursor.fetchone()
    return created, routed


def _write_interactions_generic(rows: list[tuple], now: datetime) -> tuple[int, int]:
    """Portable path (SQLite): multi-row INSERT … ON CONFLICT DO NOTHING RETURNING."""
    ops = connection.ops
    created: dict[tuple[int, str], int] = {}
    chunk = max(1, 30_000 // (_N_INTERACTION + 1))  # stay under SQLite's variable limit
    sql_head = (
        f"INSERT INTO reviews_interaction ({', '.join(_INTERACTION_COLUMNS)}, ingested_at) VALUES "
    )
    placeholders = "(" + ", ".join(["%s"] * (_N_INTERACTION + 1)) + ")"
    stamp = ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for row in part:
                values = list(row[:_N_INTERACTION])
                values[15] = ops.adapt_datetimefield_value(values[15])
                params.extend(values)
                params.append(stamp)
            cursor.execute(
                sql_head
                + ", ".join([placeholders] * len(part))
                + " ON CONFLICT (agent_id, external_id) DO NOTHING"
                + " RETURNING id, agent_id, external_id",
                params,
            )
            for pk, agent_id, external_id in cursor.fetchall():
                created[(agent_id, external_id)] = pk
    items = [
        ReviewItem(
            interaction_id=created[(row[0], row[1])],
            agent_id=row[0],
            domain=row[18],
            confidence=row[7],
            source_created_at=row[15],
            reason=row[16],
            reason_detail=row[17],
            required_reviews=row[19],
        )
        for row in rows
        if row[16] is not None and (row[0], row[1]) in created
    ]
    ReviewItem.objects.bulk_create(items, batch_size=2000)
    return len(created), len(items)


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
) -> IngestResult:
    """Stores feedback events on known interactions and routes negative ones to review.

    An event names its interaction by (agent, external_id); an unknown one is rejected. The
    same event sent twice is a duplicate (see FeedbackEvent.dedupe_key). `resolved` and
    `escalated` events also set the interaction's outcome flags; `thumbs_down` and
    `escalated` queue the interaction for review (reason `feedback`) unless it already is.
    """
    result = IngestResult()
    sink = on_error or result.errors.append
    size = batch_size or settings.INGEST_BATCH_SIZE
    for batch in _batches(_validated(records, validate_feedback, result, sink), size):
        with transaction.atomic():
            created, dupes, routed = _write_feedback(batch, result, sink)
            _tally(result, "feedback", created, dupes, routed, actor_id=actor_id, source=source)
        if on_batch:
            on_batch(result)
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
    items = [
        ReviewItem(
            interaction_id=i.pk,
            agent_id=i.agent_id,
            domain=i.domain or i.agent.domain,
            confidence=i.confidence,
            source_created_at=i.created_at,
            reason=ReviewItem.Reason.FEEDBACK,
            reason_detail=f"{kinds[i.pk]} feedback",
            required_reviews=i.agent.required_reviews,
        )
        for i in fresh
    ]
    ReviewItem.objects.bulk_create(items, ignore_conflicts=True)
    return len(items)
