"""One batch of interactions on its way in: validated, de-duplicated, routed, then written
with its review items, its audit event and (for auto-assigning agents) the outbox message,
all in one transaction. `ingest.services` feeds batches through here, in this process or
prepared in a forked reader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agents.models import Agent, RedactedValue
from agents.redaction import Redactor
from core.audit import audit_record
from core.outbox import outbox_enqueue
from ingest.readers import RecordError
from ingest.redact import NO_REDACTIONS, ImportRedaction, redacted_write_pg
from ingest.validation import validate_interaction
from ingest.writers import (
    StoredKey,
    copy_interactions_pg,
    copy_lines,
    join_copy_text,
    merge_interactions_pg,
    reserve_interaction_ids,
    write_interactions_generic,
)
from reviews.routing import Policy, route

ErrorSink = Callable[[RecordError], None]


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    routed: int = 0
    errors: list[RecordError] = field(default_factory=list)
    # The tables ANALYZEd after the load (ingest.analyze), when it changed them enough.
    analyzed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"imported {self.created}, duplicates {self.duplicates}, rejected {self.rejected}"


class AgentPolicies:
    """Slug → Policy for one import; unknown agents are created with the default policy."""

    def __init__(self, actor_id: int | None) -> None:
        self._policies: dict[str, Policy] = {}
        self._actor_id = actor_id
        # Agent id → its redactor, for the agents with a redaction policy only (agents
        # without one cost a dict miss per record, nothing more).
        self.redactors: dict[int, Redactor] = {}
        self.redaction = ImportRedaction()

    def get(self, slug: str) -> Policy:
        policy = self._policies.get(slug)
        if policy is None:
            agent = Agent.objects.filter(slug=slug).first()
            if agent is None:
                agent = self._create(slug)
            policy = self._policies[slug] = Policy.of(agent)
            redactor = ImportRedaction.redactor_of(agent)
            if redactor is not None:
                self.redactors[agent.pk] = redactor
        return policy

    def redacting(self, slug: str) -> int | None:
        """The agent's id when it has a redaction policy, else None (resolving the agent)."""
        agent_id = self.get(slug).agent_id
        return agent_id if agent_id in self.redactors else None

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


def validated(
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


Validator = Callable[[Any], tuple[dict | None, list[tuple[str, str]]]]


def scoped(validate: Validator, agent_scope: frozenset[str] | None) -> Validator:
    """`validate`, also refusing a valid record whose agent is outside `agent_scope` (the
    API token's agents; None: every agent). Refused before any agent lookup, so a limited
    token never creates an agent outside its list."""
    if agent_scope is None:
        return validate

    def check(value: Any) -> tuple[dict | None, list[tuple[str, str]]]:
        clean, errors = validate(value)
        if clean is not None and clean["agent"] not in agent_scope:
            return None, [("agent", f"this token may not write for agent {clean['agent']!r}")]
        return clean, errors

    return check


def tally(
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


def chunks(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while batch := list(islice(rows, size)):
        yield batch


@dataclass
class PreparedBatch:
    """One batch, validated, de-duplicated and routed, ready to write: `rows` for the portable
    writer or, for PostgreSQL, COPY text of the interactions (ids included) and of their
    review items; plus the errors found on the way."""

    n_rows: int
    dupes: int
    rejected: int
    errors: list[RecordError]
    now: datetime
    rows: list[tuple] = field(default_factory=list)
    copy_data: bytes = b""
    item_data: bytes = b""
    n_items: int = 0
    bytes_read: int = 0
    # The new redaction mapping rows of the batch (ingest.redact), COPY text or objects.
    redacted_data: bytes = b""
    redacted_objects: list = field(default_factory=list)


def prepare_stream(
    records: Iterable[tuple[int, Any]],
    agents: AgentPolicies,
    size: int,
    *,
    copy_text: bool,
    agent_scope: frozenset[str] | None = None,
) -> Iterator[PreparedBatch]:
    """Validates, de-duplicates and routes `records` batch by batch. CPU work apart from
    agent lookups and, with `copy_text` (PostgreSQL), reserving the batch's interaction ids,
    so it can run in another process than the writer (see interactions_ingest_file).

    With `copy_text` each record becomes its COPY text as soon as it is validated, while it
    is still in the processor's cache; a batch of decoded records is never held whole."""
    counts = IngestResult()  # only its `rejected` is used, as the validation tally
    errors: list[RecordError] = []
    clean = validated(records, scoped(validate_interaction, agent_scope), counts, errors.append)
    clean = agents.redaction.prefetched(clean, agents.redacting)
    rejected_before = 0
    # The keys of the previous batch: a writer may store it while the next one is written
    # (ingest.pipeline), so a repeat of one of its keys in the next batch is dropped here,
    # as a repeat within one batch is; the first occurrence in the input is the one kept.
    previous: Container[Key] = ()
    while True:
        now = timezone.now()
        batch = islice(clean, size)
        by_key: dict[Key, Any]
        if copy_text:
            by_key, dupes = copy_lines_of(batch, agents, now, previous)
        else:
            by_key, dupes = prepare_interactions(batch, agents, now, previous)
        n_rows = len(by_key)
        previous = set(by_key)
        if not n_rows + dupes:  # the input is exhausted
            break
        prepared = PreparedBatch(
            n_rows=n_rows,
            dupes=dupes,
            rejected=counts.rejected - rejected_before,
            errors=errors[:],
            now=now,
        )
        rejected_before = counts.rejected
        errors.clear()
        in_key_order = [by_key[key] for key in sorted(by_key)]
        if copy_text:
            ids = reserve_interaction_ids(n_rows)
            prepared.copy_data, prepared.item_data, prepared.n_items = join_copy_text(
                in_key_order, ids
            )
            prepared.redacted_data = agents.redaction.take_copy_text(sorted(by_key), ids)
        else:
            prepared.rows = in_key_order
            prepared.redacted_objects = agents.redaction.take_objects()
        yield prepared
    if errors or counts.rejected > rejected_before:  # invalid records after the last batch
        yield PreparedBatch(0, 0, counts.rejected - rejected_before, errors[:], timezone.now())


class BatchWriter:
    """Commits prepared batches, each in one transaction with its review items and audit
    event, adding them up in `result`.

    On PostgreSQL a batch is COPied straight into its tables. When it meets a stored key
    (a re-run, a retried API call, a concurrent import of the same rows) that transaction
    is rolled back and the batch is merged through the staging table instead, which skips
    stored keys; so are the batches after it (a re-run meets stored keys batch after batch)
    until one of them stores every row.

    `write` may run on several threads at once (each on its own connection, see
    ingest.pipeline); `take_errors` runs on the caller's, in input order.
    """

    def __init__(
        self, result: IngestResult, sink: ErrorSink, *, actor_id: int | None, source: str
    ) -> None:
        self.result, self.sink = result, sink
        self.actor_id, self.source = actor_id, source
        self.postgresql = connection.vendor == "postgresql"
        self.copy_directly = True
        self._lock = threading.Lock()

    def commit(self, prepared: PreparedBatch) -> None:
        self.take_errors(prepared)
        self.write(prepared)

    def take_errors(self, prepared: PreparedBatch) -> None:
        """Reports the batch's rejected records."""
        for error in prepared.errors:
            self.sink(error)
        with self._lock:
            self.result.rejected += prepared.rejected

    def write(self, prepared: PreparedBatch) -> None:
        """Writes the batch's rows in one transaction and adds them up once it committed."""
        if not prepared.n_rows:
            return
        batch = IngestResult()
        if not self.postgresql:
            with transaction.atomic():
                created, routed = write_interactions_generic(prepared.rows, prepared.now)
                RedactedValue.objects.bulk_create(prepared.redacted_objects, ignore_conflicts=True)
                self._tally(batch, prepared, created, routed)
        else:
            self._write_pg(batch, prepared)
        with self._lock:
            self.result.created += batch.created
            self.result.duplicates += batch.duplicates
            self.result.routed += batch.routed

    def _write_pg(self, batch: IngestResult, prepared: PreparedBatch) -> None:
        if self.copy_directly:
            try:
                with transaction.atomic():
                    copy_interactions_pg(prepared.copy_data, prepared.item_data)
                    redacted_write_pg(prepared.redacted_data)
                    self._tally(batch, prepared, prepared.n_rows, prepared.n_items)
                return
            except StoredKey:
                pass
        with transaction.atomic():
            created, routed = merge_interactions_pg(prepared.copy_data, prepared.item_data)
            redacted_write_pg(prepared.redacted_data)
            self._tally(batch, prepared, created, routed)
        self.copy_directly = created == prepared.n_rows

    def _tally(
        self, batch: IngestResult, prepared: PreparedBatch, created: int, routed: int
    ) -> None:
        duplicates = prepared.dupes + prepared.n_rows - created
        tally(
            batch,
            "interactions",
            created,
            duplicates,
            routed,
            actor_id=self.actor_id,
            source=self.source,
        )


Key = tuple[int, str]


def prepare_interactions(
    batch: Iterable[dict], agents: AgentPolicies, now: datetime, before: Container[Key] = ()
) -> tuple[dict[Key, tuple], int]:
    """Drops repeats within the batch and of the keys `before` (the previous batch's),
    resolves agents, routes; returns the rows by key and how many repeats were dropped."""
    seen: dict[Key, tuple] = {}
    dupes = 0
    for rec in batch:
        policy = agents.get(rec["agent"])
        key = (policy.agent_id, rec["external_id"])
        if key in seen or key in before:
            dupes += 1
            continue
        redactor = agents.redactors.get(policy.agent_id)
        redactions = (
            NO_REDACTIONS
            if redactor is None
            else agents.redaction.apply(rec, policy.agent_id, redactor)
        )
        seen[key] = _row(rec, policy, now, redactions)
    return seen, dupes


def copy_lines_of(
    batch: Iterable[dict], agents: AgentPolicies, now: datetime, before: Container[Key] = ()
) -> tuple[dict[Key, tuple[bytes, bytes | None]], int]:
    """`prepare_interactions` for PostgreSQL: the rows as COPY text lines (`copy_lines`),
    each formatted as soon as its record comes in."""
    seen: dict[Key, tuple[bytes, bytes | None]] = {}
    dupes = 0
    stamp = now.isoformat()
    for rec in batch:
        policy = agents.get(rec["agent"])
        key = (policy.agent_id, rec["external_id"])
        if key in seen or key in before:
            dupes += 1
            continue
        redactor = agents.redactors.get(policy.agent_id)
        redactions = (
            NO_REDACTIONS
            if redactor is None
            else agents.redaction.apply(rec, policy.agent_id, redactor)
        )
        seen[key] = copy_lines(_row(rec, policy, now, redactions), stamp)
    return seen, dupes


def _row(rec: dict, policy: Policy, now: datetime, redactions: str = NO_REDACTIONS) -> tuple:
    """A validated record as a row: the interaction's columns (INTERACTION_COLUMNS), then its
    routing (reason and detail, None when it needs no review), the item's domain, the
    reviews it requires and its review deadline (near and due times, None without one)."""
    routing = route(
        policy,
        external_id=rec["external_id"],
        confidence=rec["confidence"],
        intent=rec["intent"],
        domain=rec["domain"],
    )
    reason, detail = routing if routing else (None, None)
    item_domain = policy.item_domain(rec["domain"])
    # Due from the item's creation (this batch's `now`); computed once per rule and batch.
    near_at, due_at = policy.item_due(item_domain, now) if routing else (None, None)
    return (
        policy.agent_id,
        rec["external_id"],
        rec["agent_version"],
        rec["conversation_id"],
        rec["input"],
        rec["context"],
        rec["steps"],
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
        redactions,  # JSON text of the counts ({} without redaction): ingest.redact
        reason,
        detail,
        item_domain,
        policy.required_reviews,
        near_at,
        due_at,
    )
