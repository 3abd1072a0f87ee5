"""Rubric KPIs per criterion (of a rubric version), agent version and day: values worked out
by hand on a small designed set, one query whatever the size, the page and the API."""

from datetime import UTC, date, datetime

import pytest

from kpis.rubrics import rubric_kpis
from reviews.models import Score
from tests.factories import AgentFactory, ReviewFactory
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db

DAY1, DAY2 = date(2026, 3, 2), date(2026, 3, 3)
START, END = date(2026, 3, 1), date(2026, 3, 7)


@pytest.fixture
def agent():
    return AgentFactory(slug="support-bot", domain="support")


def score(agent, day, agent_version, **values):
    """One review of an answer of `agent_version`, made at noon UTC of `day`, with scores
    {criterion key: value} on the agent's latest rubric."""
    review = ReviewFactory(
        item__interaction__agent=agent,
        item__interaction__agent_version=agent_version,
        created_at=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
    )
    rubric = agent.rubrics.order_by("-version").first()
    for key, value in values.items():
        Score.objects.create(review=review, criterion=rubric.criteria.get(key=key), value=value)


@pytest.fixture
def designed(agent):
    make_rubric(agent, ("accuracy", "pass_fail"), ("tone", "scale", False))
    # v1 of the agent: day 1 accuracy 1, 1, 0 and tone 4, 5, 3; day 2 accuracy 1.
    score(agent, DAY1, "v1", accuracy=1, tone=4)
    score(agent, DAY1, "v1", accuracy=1, tone=5)
    score(agent, DAY1, "v1", accuracy=0, tone=3)
    score(agent, DAY2, "v1", accuracy=1)
    # v2 of the agent: day 2 accuracy 1, 1 and tone 2, 4.
    score(agent, DAY2, "v2", accuracy=1, tone=2)
    score(agent, DAY2, "v2", accuracy=1, tone=4)
    # Outside the range: not counted.
    score(agent, date(2026, 2, 27), "v1", accuracy=0, tone=1)
    # Another agent's scores: not counted.
    other = AgentFactory(slug="other-bot")
    make_rubric(other, ("accuracy", "pass_fail"))
    score(other, DAY1, "v1", accuracy=0)
    # Rubric v2 of the agent: its "accuracy" is another criterion, counted apart.
    make_rubric(agent, ("accuracy", "pass_fail"))
    score(agent, DAY2, "v1", accuracy=0)


def figures(kpis):
    """{(rubric version, key, agent version): (n, value, low, high)}, rounded to 4 places."""

    def r(x):
        return None if x is None else round(x, 4)

    return {
        (c.rubric_version, c.key, v.agent_version): (
            v.total.n,
            r(v.total.value),
            r(v.total.low),
            r(v.total.high),
        )
        for c in kpis
        for v in c.versions
    }


def test_it_computes_pass_rates_and_means_with_their_intervals(agent, designed):
    kpis = rubric_kpis(agent=agent, start=START, end=END)

    assert [(c.rubric_version, c.key) for c in kpis] == [
        (2, "accuracy"),
        (1, "accuracy"),
        (1, "tone"),
    ]
    assert figures(kpis) == {
        # 0 passes of 1: Wilson [0, 0.7935]
        (2, "accuracy", "v1"): (1, 0.0, 0.0, 0.7935),
        # 3 passes of 4 over two days: 0.75, Wilson [0.3006, 0.9544]
        (1, "accuracy", "v1"): (4, 0.75, 0.3006, 0.9544),
        # 2 of 2: 1.0, Wilson [0.3424, 1]
        (1, "accuracy", "v2"): (2, 1.0, 0.3424, 1.0),
        # 4, 5, 3: mean 4, sample sd 1, 4 ± 1.96 / √3 = [2.8684, 5.1316]
        (1, "tone", "v1"): (3, 4.0, 2.8684, 5.1316),
        # 2, 4: mean 3, sample sd √2, 3 ± 1.96 · √2 / √2 = [1.04, 4.96]
        (1, "tone", "v2"): (2, 3.0, 1.04, 4.96),
    }


def test_it_breaks_each_figure_down_by_day(agent, designed):
    kpis = rubric_kpis(agent=agent, start=START, end=END)
    accuracy_v1 = next(c for c in kpis if (c.rubric_version, c.key) == (1, "accuracy"))
    days = {
        d: (f.n, round(f.value, 4), round(f.low, 4), round(f.high, 4))
        for d, f in accuracy_v1.versions[0].days.items()
    }
    # Day 1: 2 of 3, Wilson [0.2077, 0.9385]; day 2: 1 of 1, Wilson [0.2065, 1].
    assert days == {DAY1: (3, 0.6667, 0.2077, 0.9385), DAY2: (1, 1.0, 0.2065, 1.0)}


def test_it_gives_no_interval_to_a_single_scale_score(agent):
    make_rubric(agent, ("tone", "scale"))
    score(agent, DAY1, "v1", tone=5)
    (tone,) = rubric_kpis(agent=agent, start=START, end=END)
    assert (tone.versions[0].total.value, tone.versions[0].total.interval) == (5.0, (None, None))


def test_it_reads_everything_in_one_query(agent, designed, django_assert_num_queries):
    with django_assert_num_queries(1):
        rubric_kpis(agent=agent, start=START, end=END)


def test_it_keeps_the_page_queries_flat(client, ml, agent, designed, django_assert_num_queries):
    client.force_login(ml)
    url = f"/kpis/rubrics/?agent=support-bot&start={START}&end={END}"
    client.get(url)  # the session is cached from here on
    with django_assert_num_queries(3) as few:  # the user, the agents, the scores
        client.get(url)
    # More criteria, versions and days: the same queries.
    make_rubric(agent, ("a", "scale"), ("b", "pass_fail"), ("c", "scale"))
    for n, day in enumerate([DAY1, DAY2, date(2026, 3, 5)]):
        score(agent, day, f"v{n + 3}", a=3, b=1, c=2)
    with django_assert_num_queries(len(few)):
        response = client.get(url)
    assert response.status_code == 200


def test_it_shows_the_figures_on_the_page(client, ml, agent, designed):
    client.force_login(ml)
    page = client.get(f"/kpis/rubrics/?agent=support-bot&start={START}&end={END}")
    text = page.content.decode()
    assert page.status_code == 200
    assert "75.0%" in text and "30.1% – 95.4%" in text  # accuracy of v1
    assert "4.00" in text and "2.87 – 5.13" in text  # tone of v1
    assert 'aria-current="page">Rubrics</a>' in text


def test_it_refuses_the_page_to_reviewers(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/kpis/rubrics/").status_code == 403


def test_it_answers_the_api_per_criterion_version_and_day(api_client, ml, agent, designed):
    response = api_client(ml).get(f"/api/v1/kpis/rubrics?agent=support-bot&from={START}&to={END}")
    assert response.status_code == 200
    rows = {
        (r["rubric_version"], r["criterion"], r["agent_version"]): r
        for r in response.json()["rows"]
    }
    accuracy = rows[(1, "accuracy", "v1")]
    assert accuracy["kind"] == "pass_fail"
    assert accuracy["period"]["n"] == 4 and accuracy["period"]["value"] == 0.75
    assert round(accuracy["period"]["low"], 4) == 0.3006
    assert len(accuracy["days"]) == 7
    assert accuracy["days"][1] == {
        "date": "2026-03-02",
        "value": 2 / 3,
        "low": pytest.approx(0.2077, abs=1e-4),
        "high": pytest.approx(0.9385, abs=1e-4),
        "n": 3,
    }
    assert accuracy["days"][0] == {
        "date": "2026-03-01",
        "value": None,
        "low": None,
        "high": None,
        "n": 0,
    }
    assert api_client(ml).get("/api/v1/kpis/rubrics?agent=nobody").status_code == 404
