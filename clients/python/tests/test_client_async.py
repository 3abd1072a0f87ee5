"""AsyncCoachdesk against the real server: delivery, feedback, outages, drops, close."""

from __future__ import annotations

import asyncio
import time

import pytest
from client_support import async_client, run_async, stored_ids

pytestmark = pytest.mark.usefixtures("transactional_db")


async def until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


def test_interactions_and_feedback_arrive(server, agent_token):
    from agents.models import FeedbackEvent

    async def main():
        async with async_client(server, agent_token, agent="async-bot", batch_size=7) as cd:
            ids = [
                cd.log_interaction(input=f"Q{n}", output="A", confidence=0.3, domain="support")
                for n in range(30)
            ]
            assert cd.log_feedback(ids[0], "thumbs_down")
            assert cd.log_feedback(ids[1], "resolved")
            assert await cd.flush(timeout=60)
            return ids, cd.stats.as_dict(), cd.pending

    ids, stats, pending = run_async(main)

    assert sorted(stored_ids("async-bot")) == sorted(ids)
    assert set(FeedbackEvent.objects.values_list("interaction__external_id", "kind")) == {
        (ids[0], "thumbs_down"),
        (ids[1], "resolved"),
    }
    assert stats["acknowledged"] == 32 and stats["rejected"] == stats["dropped"] == 0
    assert pending == 0


def test_an_outage_drops_beyond_the_buffer_and_delivers_the_rest(proxy, agent_token):
    async def main():
        cd = async_client(proxy.url, agent_token, agent="async-bot", max_buffer=10, batch_size=4)
        # Plain calls: they return at once (the sender is a task of this same loop, so a
        # call that waited for it would never return).
        ids = [cd.log_interaction(input=f"Q{n}", output="A", confidence=0.5) for n in range(25)]
        await until(lambda: cd.stats.retries >= 2)  # nothing listens yet
        counts = (cd.stats.enqueued, cd.stats.dropped, cd.pending)
        proxy.up()
        delivered = await cd.flush(timeout=60)
        await cd.close()
        return ids, counts, delivered, cd.stats.as_dict()

    ids, counts, delivered, stats = run_async(main)

    assert counts == (10, 15, 10)
    assert delivered
    assert sorted(stored_ids("async-bot")) == sorted(ids[:10])
    assert stats["acknowledged"] == 10 and stats["failed"] == 0


def test_close_during_an_outage_gives_up(proxy, agent_token):
    async def main():
        cd = async_client(proxy.url, agent_token, agent="async-bot")
        for n in range(4):
            cd.log_interaction(input=f"Q{n}", output="A", confidence=0.5)
        await until(lambda: cd.stats.retries >= 1)
        delivered = await cd.close(timeout=0.2)
        cd.log_interaction(input="late", output="A", confidence=0.5)  # dropped, no raise
        return delivered, cd.stats.as_dict(), cd.pending, cd.closed

    delivered, stats, pending, closed = run_async(main)

    assert delivered is False and closed and pending == 0
    assert stats["failed"] == 4 and stats["dropped"] == 1


def test_records_logged_outside_the_loop_are_sent_once_it_runs(server, agent_token):
    """log_* before any event loop runs (e.g. at import time) only buffers; the sender
    starts with the client's first use inside a loop."""
    import concurrent.futures

    def outside_then_inside():  # in a thread of its own: no loop runs there to begin with
        cd = async_client(server, agent_token, agent="async-bot")
        ids = [cd.log_interaction(input=f"Q{n}", output="A", confidence=0.5) for n in range(3)]
        assert cd.pending == 3

        async def main():
            async with cd:
                assert await cd.flush(timeout=60)

        asyncio.run(main())
        return ids

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        ids = pool.submit(outside_then_inside).result()

    assert sorted(stored_ids("async-bot")) == sorted(ids)


def test_a_lone_record_goes_out_after_flush_interval_without_a_flush(server, agent_token):
    async def main():
        async with async_client(server, agent_token, agent="async-bot", batch_size=100) as cd:
            await asyncio.sleep(0.2)  # the sender is waiting on an empty buffer
            iid = cd.log_interaction(input="Q", output="A", confidence=0.5)
            await until(lambda: cd.stats.acknowledged == 1)
            return iid

    iid = run_async(main)

    assert stored_ids("async-bot") == [iid]
