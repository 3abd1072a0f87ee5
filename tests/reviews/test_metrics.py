"""One definition of the queue figures (reviews/metrics.py), shown alike on every page: the
reviewer's queue, the console's workload page and the KPI dashboard report the same numbers
for the same world (issue 17)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from console import selectors as console
from kpis import definitions
from kpis import selectors as kpi_selectors
from kpis import services as kpi_services
from kpis.periods import utc_day
from reviews import metrics, selectors
from reviews.models import ReviewItem
from tests.factories import AgentFactory, ReviewFactory, ReviewItemFactory


@pytest.fixture
def agent(db):
    return AgentFactory(slug="support-bot", name="Support bot", domain="support")


def kpi_today(agent, now):
    """Today's figures as the KPI dashboard shows them, after a recompute."""
    today = utc_day(now)
    kpi_services.kpis_recompute(agent_ids=[agent.pk], since=today - timedelta(days=1), now=now)
    board = kpi_selectors.dashboard(
        kpi_selectors.Filters(agent=agent, version="", start=today, end=today)
    )
    [row] = board["table"]
    return {
        "backlog": row["values"]["backlog"].value,
        "oldest_seconds": row["values"]["backlog_oldest_age"].value,
        "reviewed": board["decisions"].n,
    }


def test_it_keeps_the_kpi_constants_in_step_with_the_metrics():
    assert set(definitions.REVIEWED) == set(metrics.REVIEWED_VERDICTS)
    assert set(metrics.BACKLOG_STATUSES) == set(ReviewItem.Status.values) - {"done"}


def test_it_counts_the_same_backlog_and_oldest_item_on_the_workload_page_and_the_kpis(
    agent, other_reviewer
):
    now = timezone.now()
    # An import back-dated the interaction by 40 days; it was queued 3 hours ago.
    ReviewItemFactory(
        interaction__agent=agent,
        source_created_at=now - timedelta(days=40),
        created_at=now - timedelta(hours=3),
    )
    ReviewItemFactory(interaction__agent=agent, needs_second_review=True, created_at=now)
    ReviewItemFactory(interaction__agent=agent, claimed=True, created_at=now)
    disputed = ReviewItemFactory(
        interaction__agent=agent, disputed=True, created_at=now - timedelta(days=5)
    )
    ReviewItemFactory(
        interaction__agent=agent, done=True, created_at=now - timedelta(days=10)
    )  # decided: not open

    [backlog] = console.backlog_by_agent()
    kpis = kpi_today(agent, now)

    assert backlog["open"] == kpis["backlog"] == 4
    assert backlog["oldest"] == disputed.created_at
    assert kpis["oldest_seconds"] == pytest.approx((now - disputed.created_at).total_seconds())


def test_it_ages_my_queue_by_the_time_items_were_queued_like_the_backlog(client, agent, reviewer):
    now = timezone.now()
    ReviewItemFactory(
        interaction__agent=agent,
        source_created_at=now - timedelta(days=40),
        created_at=now - timedelta(hours=3),
    )
    oldest = ReviewItemFactory(
        interaction__agent=agent,
        source_created_at=now - timedelta(days=2, minutes=5),
        created_at=now - timedelta(days=2),
    )
    client.force_login(reviewer)

    summary = client.get("/queue/").context["summary"]
    [backlog] = console.backlog_by_agent()
    kpis = kpi_today(agent, now)

    assert summary["total"] == backlog["open"] == kpis["backlog"] == 2
    assert summary["oldest"] == backlog["oldest"] == oldest.created_at
    assert kpis["oldest_seconds"] == pytest.approx((now - oldest.created_at).total_seconds())
    # 3 hours and 2 days since they were queued (their interactions: 40 and 2 days)
    assert [(b["key"], b["n"]) for b in summary["by_age"]] == [
        ("hour", 0),
        ("day", 1),
        ("week", 1),
        ("older", 0),
    ]


def test_it_counts_the_same_reviews_today_on_the_queue_workload_and_kpi_pages(
    client, settings, agent, reviewer, other_reviewer, lead
):
    # Local midnight 14 hours before UTC's: "today" is the UTC day (the KPI day) all the same.
    settings.TIME_ZONE = "Pacific/Kiritimati"
    now = timezone.now()
    midnight = metrics.day_start(now)
    item = ReviewItemFactory(interaction__agent=agent)
    ReviewFactory(item=item, reviewer=reviewer, created_at=midnight)
    ReviewFactory(item=item, reviewer=reviewer, escalated=True, created_at=now)
    ReviewFactory(item=item, reviewer=reviewer, skipped=True, created_at=now)  # not a review
    ReviewFactory(item=item, reviewer=reviewer, created_at=midnight - timedelta(seconds=1))
    ReviewFactory(item=item, reviewer=other_reviewer, corrected=True, created_at=now)
    ReviewFactory(item=item, reviewer=lead, adjudication=True, created_at=now)

    client.force_login(reviewer)
    mine = client.get("/queue/").context["today"]
    client.force_login(other_reviewer)
    theirs = client.get("/queue/").context["today"]
    workload = {row["username"]: row["today"] for row in console.reviewer_workload()}
    kpis = kpi_today(agent, now)

    assert (mine, theirs) == (2, 1)
    assert (workload["rita"], workload["oscar"]) == (mine, theirs)
    assert kpis["reviewed"] == mine + theirs + selectors.reviews_today(lead) == 4
