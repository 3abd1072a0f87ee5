"""The sync client when the server is away: logging never blocks, a full buffer drops and
counts, nothing acknowledged is lost and the rest arrives once the server is back."""

from __future__ import annotations

import logging
import threading

import pytest
from client_support import stored_ids, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")


def log_many(client, n: int, prefix: str) -> list[str]:
    return [
        client.log_interaction(input=f"{prefix} {i}", output="A", confidence=0.5) for i in range(n)
    ]


def test_a_full_buffer_drops_counts_and_never_blocks(proxy, agent_token, make_client, caplog):
    caplog.set_level(logging.WARNING, logger="coachdesk")
    proxy.up()
    proxy.pause()  # the server hangs: every request waits for an answer that does not come
    client = make_client(
        proxy.url, agent_token, agent="support-bot", max_buffer=5, batch_size=2, timeout=1.0
    )
    ids: list[str] = []
    caller = threading.Thread(target=lambda: ids.extend(log_many(client, 50, "Q")))
    caller.start()
    caller.join(timeout=60)  # a guard against a hang, not a timing: it returns at once

    assert not caller.is_alive(), "log_interaction blocked"
    assert len(ids) == 50
    assert (client.stats.enqueued, client.stats.dropped) == (5, 45)
    assert client.pending == 5
    dropped_lines = [m for m in caplog.messages if "record dropped: the buffer is full" in m]
    assert len(dropped_lines) == 1  # rate-limited: one line per log_interval (60 s)
    wait_for(lambda: client.stats.requests >= 1)  # a request is hanging on the server

    proxy.resume()
    assert client.flush(timeout=60)

    assert sorted(stored_ids("support-bot")) == sorted(ids[:5])  # the first five, once
    assert client.stats.acknowledged == 5 and client.stats.failed == 0


def test_a_server_that_is_down_then_back_gets_everything(proxy, agent_token, make_client):
    client = make_client(proxy.url, agent_token, agent="support-bot", batch_size=4)

    # Down from the start: nothing listens on the port.
    first = log_many(client, 10, "before")
    wait_for(lambda: client.stats.retries >= 3)
    assert stored_ids("support-bot") == []
    assert client.pending == 10 and client.stats.failed == 0

    proxy.up()
    assert client.flush(timeout=60)
    assert sorted(stored_ids("support-bot")) == sorted(first)
    assert client.stats.acknowledged == 10

    # Down again (connections reset): what was acknowledged stays, the rest waits.
    proxy.down()
    retries = client.stats.retries
    second = log_many(client, 10, "during")
    wait_for(lambda: client.stats.retries >= retries + 2)
    assert sorted(stored_ids("support-bot")) == sorted(first)
    assert client.pending == 10

    proxy.up()
    assert client.flush(timeout=60)
    assert sorted(stored_ids("support-bot")) == sorted(first + second)
    stats = client.stats.as_dict()
    assert stats["acknowledged"] == 20 and stats["created"] == 20
    assert stats["dropped"] == stats["failed"] == stats["rejected"] == 0


def test_a_lost_answer_is_retried_with_the_same_ids(proxy, agent_token, make_client):
    """The server stores the batch but its answer is lost: the client sends the same
    records again and the server counts them as duplicates, not new rows."""
    from agents.models import FeedbackEvent

    proxy.up()
    proxy.lose_next_response()
    client = make_client(proxy.url, agent_token, agent="support-bot", flush_interval=60)
    ids = log_many(client, 5, "Q")

    assert client.flush(timeout=60)

    assert sorted(stored_ids("support-bot")) == sorted(ids)
    assert client.stats.retries >= 1
    assert (client.stats.created, client.stats.duplicates) == (0, 5)

    proxy.lose_next_response()
    client.log_feedback(ids[0], "thumbs_up", created_at="2026-11-20T10:00:00Z")
    client.log_feedback(ids[0], "thumbs_up", created_at="2026-11-20T10:00:01Z")
    assert client.flush(timeout=60)
    assert FeedbackEvent.objects.count() == 2
    assert client.stats.duplicates == 7


def test_close_during_an_outage_gives_up_and_counts(proxy, agent_token, make_client, caplog):
    caplog.set_level(logging.ERROR, logger="coachdesk")
    client = make_client(proxy.url, agent_token, agent="support-bot")
    log_many(client, 7, "Q")
    wait_for(lambda: client.stats.retries >= 1)

    assert client.close(timeout=0.2) is False

    assert client.closed and client.pending == 0
    assert client.stats.failed == 7
    assert any("not delivered" in m for m in caplog.messages)
    client.log_interaction(input="late", output="A", confidence=0.5)
    assert client.stats.dropped == 1  # a closed client drops (and never raises)


def test_max_retries_gives_a_batch_up(proxy, agent_token, make_client):
    client = make_client(proxy.url, agent_token, agent="support-bot", max_retries=2)
    log_many(client, 3, "Q")

    assert client.flush(timeout=60)  # settled: given up

    assert client.stats.failed == 3 and client.stats.retries == 2
    proxy.up()
    ids = log_many(client, 2, "after")
    assert client.flush(timeout=60)
    assert sorted(stored_ids("support-bot")) == sorted(ids)
