"""Reads of the exports page: pairs available per agent, by category and by version."""

import pytest

from retraining import selectors
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def test_it_counts_pairs_per_agent_and_what_is_new(agent, decide, build):
    quiet = AgentFactory(slug="quiet-bot")
    decide(agent, "a", "A")
    decide(agent, "b", "B", verdict="correct", corrected="B!", category="tone")
    batch = build(agent, "jsonl")
    decide(agent, "c", "C")

    rows = {row["agent"].slug: row for row in selectors.agents_overview()}

    assert {k: rows["support-bot"][k] for k in ("total", "approved", "corrected", "new")} == {
        "total": 3,
        "approved": 2,
        "corrected": 1,
        "new": 1,
    }
    assert rows["support-bot"]["last_batch"] == batch
    assert rows[quiet.slug]["total"] == 0 and rows[quiet.slug]["last_batch"] is None


def test_it_breaks_an_agents_pairs_down_by_category_and_version(agent, decide):
    decide(agent, "a", "A", version="v1")
    decide(agent, "b", "B", verdict="correct", corrected="B!", category="tone", version="v2")
    decide(agent, "c", "C", verdict="correct", corrected="C!", category="tone", version="v2")

    breakdown = selectors.agent_breakdown(agent)

    by_category = {r["category"]: (r["approved"], r["corrected"]) for r in breakdown["by_category"]}
    assert by_category == {"Tone": (0, 2), "(none)": (1, 0)}
    assert [(r["agent_version"], r["total"]) for r in breakdown["by_version"]] == [
        ("v2", 2),
        ("v1", 1),
    ]
    assert breakdown["last_batch"] is None


def test_it_lists_batches_newest_first_a_page_at_a_time(agent, decide, build):
    decide(agent, "a", "A")
    batches = [build(agent, "jsonl") for _ in range(3)]

    page = selectors.batches_page(page=2, per_page=2)

    assert list(page.object_list) == [batches[0]]
    assert page.paginator.count == 3
