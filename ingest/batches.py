"""One batch of interactions on its way in: validated, de-duplicated, routed, then written
with its review items, its audit event and (for auto-assigning agents) the outbox message,
all in one transaction. `ingest.services` feeds batches through here, in this process or
prepared in a forked reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from agents.models import Agent
from core.audit import audit_record
from core.outbox import outbox_enqueue
from ingest.readers import RecordError
from ingest.validation import validate_interaction
from ingest.writers import to_copy_text, write_interactions_generic, write_interactions_pg
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


class AgentPolicies:
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
    writer or `copy_data` (COPY text) for PostgreSQL, plus the errors found on the way."""

    n_rows: int
    dupes: int
    rejected: int
    errors: list[RecordError]
    now: datetime
    rows: list[tuple] = field(default_factory=list)
    copy_data: bytes = b""
    bytes_read: int = 0


def prepare_stream(
    records: Iterable[tuple[int, Any]],
    agents: AgentPolicies,
    size: int,
    *,
    copy_text: bool,
    agent_scope: frozenset[str] | None = None,
) -> Iterator[PreparedBatch]:
    """Validates, de-duplicates and routes `records` batch by batch. Pure CPU work apart from
    agent lookups, so it can run in another process than the writer (see ingest_file)."""
    counts = IngestResult()  # only its `rejected` is used, as the validation tally
    errors: list[RecordError] = []
    clean = validated(records, scoped(validate_interaction, agent_scope), counts, errors.append)
    rejected_before = 0
    for batch in chunks(clean, size):
        now = timezone.now()
        rows, dupes = prepare_interactions(batch, agents, now)
        prepared = PreparedBatch(
            n_rows=len(rows),
            dupes=dupes,
            rejected=counts.rejected - rejected_before,
            errors=errors[:],
            now=now,
        )
        rejected_before = counts.rejected
        errors.clear()
        if copy_text:
            prepared.copy_data = to_copy_text(rows)
        else:
            prepared.rows = rows
        yield prepared
    if errors or counts.rejected > rejected_before:  # invalid records after the last batch
        yield PreparedBatch(0, 0, counts.rejected - rejected_before, errors[:], timezone.now())


def batch_commit(
    prepared: PreparedBatch,
    result: IngestResult,
    sink: ErrorSink,
    *,
    actor_id: int | None,
    source: str,
) -> None:
    """Writes one prepared batch in one transaction: interactions, review items, audit."""
    for error in prepared.errors:
        sink(error)
    result.rejected += prepared.rejected
    if not prepared.n_rows:
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            created, routed = write_interactions_pg(
                prepared.copy_data or to_copy_text(prepared.rows)
            )
        else:
            created, routed = write_interactions_generic(prepared.rows, prepared.now)
        duplicates = prepared.dupes + prepared.n_rows - created
        tally(result, "interactions", created, duplicates, routed, actor_id=actor_id, source=source)


def prepare_interactions(
    batch: list[dict], agents: AgentPolicies, now: datetime
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
            reason,
            detail,
            policy.item_domain(rec["domain"]),
            policy.required_reviews,
        )
    return [seen[key] for key in sorted(seen)], dupes
