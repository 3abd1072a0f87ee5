"""The ingest service: storage, idempotency, routing in the same transaction, feedback."""

import dataclasses
import re
from datetime import UTC, datetime

import pytest
from django.db import DatabaseError

from agents.models import Agent, FeedbackEvent, Interaction
from core.models import AuditEvent
from ingest.readers import RecordError
from ingest.services import feedback_ingest, interactions_ingest
from reviews.models import ReviewItem
from reviews.routing import Policy
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def rec(external_id="t-1", agent="support-bot", confidence=0.9, **extra):
    return {
        "external_id": external_id,
        "agent": agent,
        "input": "Where is my parcel?",
        "output": "It ships tomorrow.",
        "confidence": confidence,
        **extra,
    }


def run(*records, **kwargs):
    return interactions_ingest(records=list(enumerate(records)), **kwargs)


def test_it_stores_an_interaction_with_every_field():
    run(
        rec(
            agent_version="2026.11.1",
            conversation_id="c-77",
            intent="returns",
            domain="support",
            context=[{"role": "user", "content": "Hi"}],
            resolved=True,
            escalated=False,
            sentiment=0.3,
            turns=4,
            metadata={"channel": "web"},
            created_at="2026-11-20T10:15:00Z",
        )
    )
    stored = Interaction.objects.get()
    assert stored.agent.slug == "support-bot"
    assert stored.context == [{"role": "user", "content": "Hi"}]
    assert stored.metadata == {"channel": "web"}
    assert stored.created_at == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    assert (stored.resolved, stored.escalated, stored.sentiment, stored.turns) == (
        True,
        False,
        0.3,
        4,
    )


def test_it_creates_an_unknown_agent_with_the_default_policy():
    run(rec(agent="new-bot"))
    agent = Agent.objects.get(slug="new-bot")
    assert (agent.confidence_threshold, agent.audit_rate, agent.required_reviews) == (0.7, 0.02, 1)
    assert AuditEvent.objects.filter(action="agent.created", target_id=agent.pk).exists()


def test_it_defaults_created_at_to_now():
    before = datetime.now(UTC)
    run(rec())
    assert Interaction.objects.get().created_at >= before


def test_it_is_idempotent_across_runs():
    first = run(rec("t-1"), rec("t-2"))
    second = run(rec("t-1"), rec("t-2"), rec("t-3"))
    assert (first.created, first.duplicates) == (2, 0)
    assert (second.created, second.duplicates) == (1, 2)
    assert Interaction.objects.count() == 3


def test_it_counts_duplicates_inside_one_input_and_keeps_the_first():
    result = run(rec("t-1", confidence=0.1), rec("t-1", confidence=0.9))
    assert (result.created, result.duplicates) == (1, 1)
    assert Interaction.objects.get().confidence == 0.1


def test_it_counts_duplicates_across_batches_of_one_input():
    result = run(*[rec(f"t-{i % 3}") for i in range(10)], batch_size=2)
    assert (result.created, result.duplicates, result.rejected) == (3, 7, 0)


def test_it_keys_idempotency_by_agent_and_external_id():
    result = run(rec("t-1", agent="a-bot"), rec("t-1", agent="b-bot"))
    assert result.created == 2


def test_it_keeps_good_records_and_reports_bad_ones_by_position():
    result = run(rec("t-1"), rec("t-2", confidence=3), {"oops": True}, rec("t-4"))
    assert (result.created, result.rejected) == (2, 2)
    assert result.errors[0] == RecordError(1, "confidence", "must be between 0 and 1, got 3")
    assert [e.position for e in result.errors] == [1, 2, 2, 2, 2, 2]
    assert set(Interaction.objects.values_list("external_id", flat=True)) == {"t-1", "t-4"}


def test_it_passes_reader_errors_through():
    result = interactions_ingest(records=[(7, RecordError(7, "record", "not valid JSON"))])
    assert result.rejected == 1 and result.errors[0].position == 7


def test_it_routes_low_confidence_with_the_reason_recorded():
    AgentFactory(slug="support-bot", confidence_threshold=0.7, audit_rate=0)
    result = run(rec("low", confidence=0.3), rec("high", confidence=0.95))
    assert result.routed == 1
    item = ReviewItem.objects.get()
    assert item.interaction.external_id == "low"
    assert (item.reason, item.status, item.confidence) == ("low_confidence", "pending", 0.3)
    assert "0.300 < threshold 0.700" in item.reason_detail


def test_it_routes_rule_matches():
    AgentFactory(slug="support-bot", review_intents=["refund"], review_domains=["legal"])
    run(rec("a", intent="refund"), rec("b", domain="legal"), rec("c", intent="other"))
    reasons = dict(ReviewItem.objects.values_list("interaction__external_id", "reason"))
    assert reasons == {"a": "rule", "b": "rule"}


def test_it_routes_the_audit_sample_the_same_way_on_reimport():
    AgentFactory(slug="support-bot", audit_rate=0.3)
    records = [rec(f"t-{i}", confidence=0.95) for i in range(200)]
    run(*records)
    sampled = set(ReviewItem.objects.values_list("interaction__external_id", flat=True))
    assert 30 < len(sampled) < 90
    assert set(ReviewItem.objects.values_list("reason", flat=True)) == {"audit_sample"}
    Interaction.objects.all().delete()
    run(*records)
    assert set(ReviewItem.objects.values_list("interaction__external_id", flat=True)) == sampled


def test_it_does_not_route_a_duplicate_again():
    run(rec("t-1", confidence=0.1))
    run(rec("t-1", confidence=0.1))
    assert ReviewItem.objects.count() == 1


def test_it_routes_only_the_new_rows_of_a_batch_that_meets_a_stored_key():
    AgentFactory(slug="support-bot", audit_rate=0)
    run(rec("t-2", confidence=0.2))
    result = run(
        rec("t-1", confidence=0.1),
        rec("t-2", confidence=0.2),
        rec("t-3", confidence=0.9),
        rec("t-4", confidence=0.4),
    )
    assert (result.created, result.duplicates, result.routed) == (3, 1, 2)
    items = dict(ReviewItem.objects.values_list("interaction__external_id", "confidence"))
    assert items == {"t-1": 0.1, "t-2": 0.2, "t-4": 0.4}


@pytest.mark.postgres
def test_it_copies_batches_straight_in_again_once_one_meets_no_stored_key(monkeypatch):
    import ingest.batches

    run(rec("t-1"))
    attempted = []
    real_copy = ingest.batches.copy_interactions_pg

    def copy(interactions, items):
        attempted.append(interactions.split(b"\t")[2].decode())  # id, agent, external_id
        real_copy(interactions, items)

    monkeypatch.setattr(ingest.batches, "copy_interactions_pg", copy)
    result = run(rec("t-1"), rec("t-2"), rec("t-3"), batch_size=1)
    assert (result.created, result.duplicates) == (2, 1)
    # t-1's COPY meets the stored key and is merged instead; so is the next batch (t-2),
    # which stores every row, so t-3 is copied straight in again.
    assert attempted == ["t-1", "t-3"]


def test_it_stamps_when_an_interaction_and_its_review_item_were_ingested():
    before = datetime.now(UTC)
    run(rec("t-1", confidence=0.1))
    stored = Interaction.objects.select_related("review_item").get()
    assert before <= stored.ingested_at <= datetime.now(UTC)
    assert before <= stored.review_item.created_at <= datetime.now(UTC)


def test_it_queues_items_in_the_agent_domain_when_none_is_given():
    AgentFactory(slug="legal-bot", domain="legal", required_reviews=2)
    run(rec("t-1", agent="legal-bot", confidence=0.1))
    item = ReviewItem.objects.get()
    assert (item.domain, item.required_reviews) == ("legal", 2)


def test_it_never_stores_an_interaction_without_its_review_item(monkeypatch):
    """Routing is written in the same transaction: if the item cannot be written, neither is
    the interaction (here a policy the item's CHECK constraint refuses)."""
    real_of = Policy.of
    monkeypatch.setattr(
        Policy,
        "of",
        classmethod(lambda cls, agent: dataclasses.replace(real_of(agent), required_reviews=-1)),
    )
    with pytest.raises(DatabaseError):
        run(rec("t-1", confidence=0.1))
    assert not Interaction.objects.exists()


def test_it_writes_one_audit_event_per_batch():
    run(*[rec(f"t-{i}") for i in range(5)], batch_size=2, actor_id=None, source="cli")
    events = AuditEvent.objects.filter(action="interactions.ingested")
    assert events.count() == 3
    assert sum(e.after["created"] for e in events) == 5


# --- feedback ---------------------------------------------------------------------------------


def fb(external_id="t-1", kind="clicked", agent="support-bot", **extra):
    return {"agent": agent, "external_id": external_id, "kind": kind, **extra}


def feed(*events, **kwargs):
    return feedback_ingest(records=list(enumerate(events)), **kwargs)


def test_it_stores_feedback_on_a_known_interaction():
    run(rec("t-1"))
    result = feed(fb(item_ref="sku-9", value=1.0, created_at="2026-11-21T08:00:00Z"))
    assert (result.created, result.rejected) == (1, 0)
    event = FeedbackEvent.objects.get()
    assert (event.kind, event.item_ref, event.value) == ("clicked", "sku-9", 1.0)
    assert event.agent_id == event.interaction.agent_id


def test_it_rejects_feedback_on_an_unknown_interaction_by_position():
    run(rec("t-1"))
    result = feed(fb("t-1"), fb("nope"), fb("t-1", agent="ghost-bot"))
    assert (result.created, result.rejected) == (1, 2)
    assert [(e.position, e.field) for e in result.errors] == [(1, "external_id"), (2, "agent")]
    assert "no interaction 'nope' for agent 'support-bot'" in result.errors[0].message


def test_it_counts_repeated_feedback_as_duplicates():
    run(rec("t-1"))
    event = fb(created_at="2026-11-21T08:00:00Z")
    first = feed(event, event)
    second = feed(event)
    assert (first.created, first.duplicates) == (1, 1)
    assert (second.created, second.duplicates) == (0, 1)
    assert FeedbackEvent.objects.count() == 1


@pytest.mark.parametrize("kind", ["thumbs_down", "escalated"])
def test_it_routes_negative_feedback_to_review(kind):
    AgentFactory(slug="support-bot", audit_rate=0)
    run(rec("t-1", confidence=0.95))
    assert not ReviewItem.objects.exists()
    result = feed(fb(kind=kind))
    item = ReviewItem.objects.get()
    assert result.routed == 1
    assert (item.reason, item.reason_detail) == ("feedback", f"{kind} feedback")


def test_it_does_not_route_positive_feedback():
    AgentFactory(slug="support-bot", audit_rate=0)
    run(rec("t-1", confidence=0.95))
    feed(fb(kind="thumbs_up"), fb(kind="clicked", item_ref="x"))
    assert not ReviewItem.objects.exists()


def test_it_keeps_one_review_item_when_a_queued_interaction_gets_negative_feedback():
    run(rec("t-1", confidence=0.1))
    feed(fb(kind="thumbs_down"))
    assert ReviewItem.objects.get().reason == "low_confidence"


def test_it_sets_outcome_flags_from_resolved_and_escalated_feedback():
    run(rec("t-1"), rec("t-2"))
    feed(fb("t-1", kind="resolved"), fb("t-2", kind="escalated"))
    flags = dict(Interaction.objects.values_list("external_id", "resolved"))
    assert flags == {"t-1": True, "t-2": None}
    assert Interaction.objects.get(external_id="t-2").escalated is True


# --- the pipelined file path ------------------------------------------------------------------


def test_it_escapes_copy_text_so_text_round_trips():
    from ingest.writers import copy_lines, join_copy_text

    tricky = "tab\there\nnew line\r\\backslash \\N not null"
    created = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    stamp = "2026-11-21T08:00:00+00:00"
    row = (
        1,
        "t-1",
        "",
        "c",
        tricky,
        "[]",
        '[{"role":"tool","tool_call_id":"c1","content":"a\\tb"}]',  # steps: an escaped tab
        "out",
        0.1,
        "",
        "",
        True,
        None,
        None,
        3,
        '{"a":"\\n"}',
        created,
        '{"email":1}',  # redactions
        "low_confidence",
        "detail\twith a tab",
        "sup\\port",
        2,
        None,  # deadline: near
        datetime(2026, 11, 21, 12, 0, tzinfo=UTC),  # deadline: due
    )
    unrouted = row[:18] + (None, None, "", 1, None, None)
    lines = [copy_lines(row, stamp), copy_lines(unrouted, stamp)]
    interactions, items, n_items = join_copy_text(lines, [7, 8])
    line = (
        b"\t1\tt-1\t\tc\ttab\\there\\nnew line\\r\\\\backslash \\\\N not null\t[]\t"
        b'[{"role":"tool","tool_call_id":"c1","content":"a\\\\tb"}]\tout\t0.1\t\t\t'
        b't\t\\N\t\\N\t3\t{"a":"\\\\n"}\t2026-11-20T10:15:00+00:00\t{"email":1}\t'
        b"2026-11-21T08:00:00+00:00\n"
    )
    assert interactions == b"7" + line + b"8" + line
    # Only the routed row has a review item: pending, priority 0, version 0, no verdict.
    assert n_items == 1
    assert items == (
        b"7\t1\tsup\\\\port\t0.1\t2026-11-20T10:15:00+00:00\tlow_confidence\t"
        b"detail\\twith a tab\t0\tpending\t\t0\t2\t2026-11-21T08:00:00+00:00\t"
        b"2026-11-21T08:00:00+00:00\t2026-11-21T12:00:00+00:00\t\\N\n"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parallel", [False, True])
def test_it_imports_a_file_in_a_pipelined_child_with_the_same_results(parallel, tmp_path):
    import io
    import json

    from django.db import connection

    from ingest.services import interactions_ingest_file

    if parallel and connection.vendor != "postgresql":
        pytest.skip("the pipelined path is for PostgreSQL")
    tricky = "Zeile 1\n\tעברית \\ <script>alert(1)</script> 😀"
    lines = [json.dumps(rec(f"t-{i}", confidence=i / 10, input=tricky)) for i in range(10)]
    lines[3] = "not json"
    lines.append(json.dumps(rec("t-1")))  # a duplicate
    lines.append('{"agent": "support-bot"}')  # invalid, after the last batch's records
    errors = []
    result = interactions_ingest_file(
        stream=io.BytesIO("\n".join(lines).encode()),
        batch_size=4,
        on_error=errors.append,
        parallel=parallel,
    )
    assert (result.created, result.duplicates, result.rejected) == (9, 1, 2)
    assert [e.position for e in errors][:1] == [4] and errors[-1].position == 12
    assert Interaction.objects.get(external_id="t-5").input == tricky
    # Below the 0.7 threshold: confidence 0.0 … 0.6 but t-3 (rejected).
    assert ReviewItem.objects.filter(reason="low_confidence").count() == 6


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parallel", [False, True])
def test_it_keeps_the_first_occurrence_of_a_key_repeated_in_later_batches(parallel, monkeypatch):
    """Each key comes first with output "first", then again in the next batch and five
    batches later. Every even batch is slowed down, so the writer thread holding the odd
    one after it would commit first if it were allowed to: the first occurrence is stored."""
    import io
    import json
    import time

    import ingest.batches

    real_copy = ingest.batches.copy_interactions_pg

    def slow_on_even_batches(interactions, items):
        if re.search(rb"\tk-\d*[02468]-0\t", interactions):
            time.sleep(0.05)
        real_copy(interactions, items)

    monkeypatch.setattr(ingest.batches, "copy_interactions_pg", slow_on_even_batches)

    from django.db import connection

    from ingest.services import interactions_ingest_file

    if parallel and connection.vendor != "postgresql":
        pytest.skip("the pipelined path is for PostgreSQL")
    batches = 40
    firsts = [[rec(f"k-{b}-{i}", output="first") for i in range(3)] for b in range(batches)]
    records = []
    for b in range(batches):
        records += firsts[b]
        if b >= 1:
            records.append(rec(f"k-{b - 1}-0", output="repeat of the batch before"))
        if b >= 5:
            records.append(rec(f"k-{b - 5}-1", output="repeat of five batches before"))
    stream = io.BytesIO("\n".join(json.dumps(r) for r in records).encode())

    result = interactions_ingest_file(stream=stream, batch_size=4, parallel=parallel)

    assert result.created == 3 * batches
    assert result.duplicates == len(records) - 3 * batches
    assert set(Interaction.objects.values_list("output", flat=True)) == {"first"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_stops_a_pipelined_import_on_a_write_error_and_keeps_the_batches_before(
    monkeypatch,
):
    import io
    import json

    import ingest.batches
    from ingest.services import interactions_ingest_file

    real_copy = ingest.batches.copy_interactions_pg

    def copy(interactions, items):
        if b"\tt-2\t" in interactions:
            raise DatabaseError("disk full")
        real_copy(interactions, items)

    monkeypatch.setattr(ingest.batches, "copy_interactions_pg", copy)
    lines = [json.dumps(rec(f"t-{i}")) for i in range(8)]
    with pytest.raises(DatabaseError, match="disk full"):
        interactions_ingest_file(
            stream=io.BytesIO("\n".join(lines).encode()), batch_size=2, parallel=True
        )
    stored = set(Interaction.objects.values_list("external_id", flat=True))
    # The batch before the failed one is stored; batches after it may be (written by the
    # other writer thread at the same time), the failed one is not.
    assert {"t-0", "t-1"} <= stored
    assert not stored & {"t-2", "t-3"}
