"""The regression helpers against a live server: fetch an agent's regression set (every
page), post a version's answers in several requests, post them again (nothing stored
twice), and read the run's summary."""

from __future__ import annotations

import zlib
from datetime import datetime, timezone

import pytest
from client_support import async_client, run_async

from coachdesk import ApiError

pytestmark = pytest.mark.usefixtures("transactional_db")


def held_out(n: int) -> list[str]:
    """Inputs in the held-out split at the default share 0.1: CRC-32 bucket below 1,000."""
    found, i = [], 0
    while len(found) < n:
        text = f"Client question {i}?"
        if zlib.crc32(text.encode()) % 10_000 < 1000:
            found.append(text)
        i += 1
    return found


@pytest.fixture
def corrected():
    """`support-bot` with five held-out corrected items (one review each) and an approved
    one (not a case)."""
    from tests.factories import AgentFactory, InteractionFactory, ReviewFactory, ReviewItemFactory

    agent = AgentFactory(slug="support-bot", domain="support")
    decided = datetime(2026, 11, 21, 9, tzinfo=timezone.utc)
    texts = held_out(6)
    ids = []
    for k, text in enumerate(texts):
        verdict = "approve" if k == 5 else "correct"
        interaction = InteractionFactory(agent=agent, input=text, output=f"Old {k}.")
        item = ReviewItemFactory(
            interaction=interaction, done=True, final_verdict=verdict, decided_at=decided
        )
        ReviewFactory(item=item, verdict=verdict, corrected_output=f"Fixed {k}." if k < 5 else "")
        ids.append(item.pk)
    return ids[:5]


def test_it_fetches_the_set_and_posts_a_run_in_parts(corrected, server, ml_token, make_client):
    client = make_client(server, ml_token)

    cases = client.regression_set("support-bot", page_size=2)

    assert sorted(c["id"] for c in cases) == sorted(corrected)
    by_id = {c["id"]: c for c in cases}
    answers = {
        corrected[0]: by_id[corrected[0]]["reference"].upper(),  # fixed
        corrected[1]: by_id[corrected[1]]["old_answer"],  # still wrong
        corrected[2]: "Something else entirely.",  # to a reviewer
        corrected[3]: "",  # an error, index 3
        corrected[4]: by_id[corrected[4]]["reference"],
    }

    result = client.regression_run("support-bot", "2026.11.1", answers, chunk_size=2)

    assert (result["created"], result["matched"], result["unchanged"], result["routed"]) == (
        4,
        2,
        1,
        1,
    )
    assert [(e["index"], e["field"]) for e in result["errors"]] == [(3, "answer")]
    summary = client.regression_run_summary(result["run"])
    assert (summary["fixed"], summary["still_wrong"], summary["pending"]) == (2, 1, 1)

    again = client.regression_run("support-bot", "2026.11.1", answers, chunk_size=10)

    assert (again["created"], again["duplicates"]) == (0, 4)
    assert again["summary"] == summary


def test_an_unknown_agent_is_an_api_error(server, ml_token, make_client):
    with pytest.raises(ApiError) as unknown:
        make_client(server, ml_token).regression_set("nobody")

    assert unknown.value.status == 404


def test_async_regression_set(corrected, server, ml_token):
    async def main():
        async with async_client(server, ml_token) as reader:
            return await reader.regression_set("support-bot", intent="no-such-intent")

    assert run_async(main) == []
