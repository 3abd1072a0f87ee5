"""The sync client delivers to the real ingest API: records arrive, the server's per-index
errors are logged and counted, a 413 splits the batch, a 429's Retry-After is waited for."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

import pytest
from client_support import stored_ids, wait_for

from coachdesk import Rejection

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_interactions_and_feedback_arrive(server, agent_token, make_client):
    from agents.models import FeedbackEvent, Interaction

    client = make_client(server, agent_token, agent="support-bot", agent_version="2026.11.1")

    first = client.log_interaction(
        input="What's your return policy?",
        output="You can return an item within 30 days.",
        confidence=0.42,
        context=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        intent="returns",
        domain="support",
        resolved=True,
        sentiment=0.3,
        turns=4,
        metadata={"channel": "web"},
        created_at=datetime(2026, 11, 20, 10, 15, tzinfo=timezone.utc),
    )
    mine = client.log_interaction(
        input="Hola", output="¡Hola!", confidence=0.9, external_id="t-1001"
    )
    rest = [
        client.log_interaction(input=f"Question {n}", output="Answer", confidence=0.95)
        for n in range(25)
    ]
    assert client.log_feedback(first, "thumbs_down")
    assert client.log_feedback(mine, "clicked", item_ref="P9", value=1.0)

    assert client.flush(timeout=60)

    assert mine == "t-1001"
    assert len(set(rest)) == 25 and all(len(i) == 36 for i in rest)  # UUID4s
    assert sorted(stored_ids("support-bot")) == sorted([first, mine, *rest])
    row = Interaction.objects.get(agent__slug="support-bot", external_id=first)
    assert (row.agent_version, row.intent, row.turns) == ("2026.11.1", "returns", 4)
    assert row.resolved is True
    assert row.created_at == datetime(2026, 11, 20, 10, 15, tzinfo=timezone.utc)
    assert row.metadata == {"channel": "web"}
    kinds = set(FeedbackEvent.objects.values_list("interaction__external_id", "kind", "item_ref"))
    assert kinds == {(first, "thumbs_down", ""), (mine, "clicked", "P9")}
    stats = client.stats.as_dict()
    assert stats["enqueued"] == 29 and stats["acknowledged"] == 29 and stats["created"] == 29
    assert stats["rejected"] == stats["dropped"] == stats["failed"] == 0
    assert client.pending == 0


def test_feedback_waits_for_its_interaction(server, agent_token, make_client):
    """Feedback logged right after its interaction is sent after it, even when both are
    still buffered: the server would refuse feedback on an interaction it has not seen."""
    from agents.models import FeedbackEvent

    client = make_client(server, agent_token, agent="shop-bot", batch_size=3)
    for n in range(12):
        iid = client.log_interaction(input=f"Show me shoes {n}", output="Here.", confidence=0.8)
        client.log_feedback(iid, "clicked", item_ref=f"P{n}")
        client.log_feedback(iid, "skipped", item_ref=f"Q{n}")

    assert client.flush(timeout=60)

    assert client.stats.rejected == 0
    assert FeedbackEvent.objects.filter(agent__slug="shop-bot").count() == 24


def test_resending_the_same_ids_stores_nothing_twice(server, agent_token, make_client):
    client = make_client(server, agent_token, agent="support-bot")
    for _ in range(2):
        for n in range(5):
            client.log_interaction(input="Q", output="A", confidence=0.9, external_id=f"x-{n}")
        assert client.flush(timeout=60)

    assert stored_ids("support-bot") == [f"x-{n}" for n in range(5)]
    assert (client.stats.created, client.stats.duplicates) == (5, 5)


def test_the_servers_per_index_errors_are_logged_counted_and_not_retried(
    server, agent_token, make_client, caplog
):
    from agents.models import FeedbackEvent

    caplog.set_level(logging.WARNING, logger="coachdesk")
    rejected: list[Rejection] = []
    client = make_client(
        server, agent_token, agent="support-bot", on_rejected=rejected.append, log_interval=0
    )

    good = client.log_interaction(input="Q", output="A", confidence=0.5)
    bad = client.log_interaction(input="Q", output="A", confidence=1.7)
    client.log_feedback("no-such-interaction", "thumbs_up")
    client.log_feedback(good, "thumbs_up")
    client.log_interaction(input="Q", output="A", confidence=float("nan"))  # not JSON
    assert client.flush(timeout=60)

    assert stored_ids("support-bot") == [good]
    assert FeedbackEvent.objects.count() == 1
    by_id = {r.external_id: r for r in rejected}
    assert by_id[bad].kind == "interaction" and by_id[bad].field == "confidence"
    assert by_id[bad].message == "must be between 0 and 1, got 1.7"
    assert by_id["no-such-interaction"].field == "external_id"
    assert "no interaction" in by_id["no-such-interaction"].message
    assert len(rejected) == 3 and client.stats.rejected == 3
    assert client.stats.retries == 0 and client.stats.failed == 0
    assert client.stats.requests == 2  # one per kind: nothing re-sent
    assert any("rejected interaction" in m and "confidence" in m for m in caplog.messages)


def test_a_body_the_server_refuses_whole_loses_only_the_culprit(
    server, agent_token, make_client, settings
):
    """A string beyond JSON_MAX_STRING_CHARS makes the server refuse the whole body (400,
    naming items[N]): the client rejects that record and sends the others again."""
    settings.JSON_MAX_STRING_CHARS = 2_000
    rejected: list[Rejection] = []
    client = make_client(
        server, agent_token, agent="support-bot", batch_size=50, on_rejected=rejected.append
    )
    ids = [client.log_interaction(input=f"Q{n}", output="A", confidence=0.5) for n in range(6)]
    culprit = client.log_interaction(input="x" * 3_000, output="A", confidence=0.5)
    ids += [client.log_interaction(input=f"R{n}", output="A", confidence=0.5) for n in range(6)]

    assert client.flush(timeout=60)

    assert sorted(stored_ids("support-bot")) == sorted(ids)
    assert [r.external_id for r in rejected] == [culprit]
    assert "items[6].input" in rejected[0].message
    assert client.stats.rejected == 1 and client.stats.acknowledged == 12


def test_a_413_splits_the_batch(server, agent_token, make_client, settings):
    settings.INGEST_MAX_ITEMS_PER_REQUEST = 4
    settings.INGEST_MAX_BODY_BYTES = 6_000
    rejected: list[Rejection] = []
    client = make_client(
        server,
        agent_token,
        agent="support-bot",
        batch_size=40,
        flush_interval=60,
        on_rejected=rejected.append,
    )
    ids = [
        client.log_interaction(input=f"{n} " + "w" * 900, output="A", confidence=0.5)
        for n in range(30)
    ]
    too_big = client.log_interaction(input="z" * 7_000, output="A", confidence=0.5)

    assert client.flush(timeout=60)

    assert sorted(stored_ids("support-bot")) == sorted(ids)
    assert client.stats.splits >= 3
    assert [r.external_id for r in rejected] == [too_big]
    assert rejected[0].message.startswith("too large for the server")
    assert client.stats.failed == 0 and client.stats.retries == 0


def test_a_429_is_retried_after_its_retry_after(
    server, agent_token, make_client, settings, monkeypatch, caplog
):
    """Two requests per 4-second window (the real throttle, with a short window): the client
    is refused with 429 and waits at least the Retry-After it was given, then delivers."""
    from core.limits import TokenRateThrottle

    settings.INGEST_RATE_LIMIT_PER_MINUTE = 2
    monkeypatch.setattr(TokenRateThrottle, "WINDOW", 4)
    caplog.set_level(logging.WARNING, logger="coachdesk")
    client = make_client(server, agent_token, agent="support-bot", batch_size=1, log_interval=0)

    ids = [client.log_interaction(input=f"Q{n}", output="A", confidence=0.5) for n in range(5)]
    assert client.flush(timeout=120)

    assert sorted(stored_ids("support-bot")) == sorted(ids)
    assert client.stats.throttled >= 1
    waits = [
        (float(m.group(1)), float(m.group(2)))
        for m in (
            re.search(r"answered 429; retrying .* in ([\d.]+) s \(Retry-After: ([\d.]+) s\)", text)
            for text in caplog.messages
        )
        if m
    ]
    assert len(waits) == client.stats.throttled
    assert all(1 <= after <= 4 for _, after in waits)
    # Honoured: the wait planned is the Retry-After (plus at most 10% of jitter), not the
    # backoff of 0.05 s the client would use otherwise.
    assert all(after <= wait <= after * 1.1 + 0.01 for wait, after in waits)


def test_a_token_the_server_refuses_is_not_retried(server, make_client, caplog):
    caplog.set_level(logging.ERROR, logger="coachdesk")
    client = make_client(server, "cd_not-a-token", agent="support-bot")
    client.log_interaction(input="Q", output="A", confidence=0.5)

    assert client.flush(timeout=60)

    assert client.stats.failed == 1 and client.stats.retries == 0
    assert stored_ids("support-bot") == []
    assert any("refused the token (401" in m for m in caplog.messages)


def test_flush_with_nothing_buffered_returns_at_once(server, agent_token, make_client):
    client = make_client(server, agent_token, agent="support-bot")
    assert client.flush(timeout=0)
    assert wait_for(lambda: client.pending == 0)


def test_a_lone_record_goes_out_after_flush_interval_without_a_flush(
    server, agent_token, make_client
):
    client = make_client(server, agent_token, agent="support-bot", batch_size=100)
    first = client.log_interaction(input="Q", output="A", confidence=0.5)
    wait_for(lambda: stored_ids("support-bot") == [first])

    # Again once the sender has gone back to sleep on an empty buffer.
    wait_for(lambda: client.pending == 0)
    second = client.log_interaction(input="Q", output="A", confidence=0.5)
    wait_for(lambda: sorted(stored_ids("support-bot")) == sorted([first, second]))
