""" "My queue" counts (issue 18): a domain's open items are counted once for all its
reviewers (cached QUEUE_COUNTS_SECONDS), each reviewer's own reviews and assignments are
applied exactly on every view; the result equals counting `claimable_items` directly."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import selectors
from tests.factories import AgentFactory, ReviewFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


def direct(user, **scope) -> dict:
    """The counts of `claimable_items`, the definition, counted the plain way."""
    items = list(selectors.claimable_items(user, **scope).select_related("agent"))
    by_agent: dict[str, int] = {}
    for item in items:
        by_agent[item.agent.slug] = by_agent.get(item.agent.slug, 0) + 1
    return {
        "total": len(items),
        "by_agent": by_agent,
        "oldest": min((i.created_at for i in items), default=None),
    }


def summary(user, **scope) -> dict:
    got = selectors.reviewer_queue_summary(user, **scope)
    return {
        "total": got["total"],
        "by_agent": {a["slug"]: a["n"] for a in got["by_agent"]},
        "oldest": got["oldest"],
    }


@pytest.fixture
def queue(reviewer, other_reviewer):
    support = AgentFactory(slug="support-bot", domain="support")
    shop = AgentFactory(slug="shop-bot", domain="support")
    now = timezone.now()
    items = [
        ReviewItemFactory(interaction__agent=agent, created_at=now - timedelta(hours=n))
        for n, agent in enumerate([support, support, shop, support, shop], start=1)
    ]
    ReviewItemFactory(interaction__agent=support, assigned_to=reviewer, interaction__domain="x")
    ReviewItemFactory(interaction__agent=support, assigned_to=other_reviewer)
    ReviewItemFactory(interaction__agent=support, interaction__domain="legal")
    ReviewItemFactory(interaction__agent=support, done=True)
    return items


def test_the_counts_equal_the_claimable_items(reviewer, queue):
    assert summary(reviewer) == direct(reviewer)
    assert summary(reviewer)["total"] == 6


def test_my_skips_leave_my_counts_at_once_even_when_the_domain_count_is_cached(
    settings, reviewer, other_reviewer, queue
):
    settings.QUEUE_COUNTS_SECONDS = 60
    before = summary(reviewer)
    oldest = queue[-1]  # five hours old: the oldest unassigned item
    ReviewFactory(item=oldest, reviewer=reviewer, skipped=True)
    ReviewFactory(item=queue[0], reviewer=reviewer, skipped=True)

    after = summary(reviewer)
    assert after == direct(reviewer)
    assert after["total"] == before["total"] - 2
    assert after["oldest"] == queue[-2].created_at  # not the item I skipped
    # Another reviewer of the domain is not affected by my reviews.
    assert summary(other_reviewer) == direct(other_reviewer)


def test_the_domain_count_is_shared_for_a_few_seconds(settings, reviewer, queue):
    settings.QUEUE_COUNTS_SECONDS = 60
    assert summary(reviewer)["total"] == 6
    ReviewItemFactory(interaction__agent=queue[0].agent)  # someone else's new work
    assert summary(reviewer)["total"] == 6  # counted again at most a minute later
    settings.QUEUE_COUNTS_SECONDS = 0
    assert summary(reviewer)["total"] == 7


def test_the_counts_follow_the_agent_and_domain_filters(reviewer, queue):
    agent = queue[2].agent
    assert summary(reviewer, agent_id=agent.pk) == direct(reviewer, agent_id=agent.pk)
    assert summary(reviewer, domain="support") == direct(reviewer, domain="support")
    assert summary(reviewer, domain="x") == direct(reviewer, domain="x")


def test_the_counts_take_a_fixed_number_of_queries(reviewer, queue, django_assert_max_num_queries):
    ReviewFactory(item=queue[0], reviewer=reviewer, skipped=True)
    with django_assert_max_num_queries(3):  # mine, my reviewed open items, the domain
        selectors.reviewer_queue_summary(reviewer)


# --- the taxonomy, cached (issue 18) ---------------------------------------------------------


def test_the_taxonomy_is_read_once_and_dropped_when_a_category_changes(
    django_assert_num_queries,
):
    from reviews.models import ErrorCategory

    selectors.category_choices()
    with django_assert_num_queries(0):
        choices = selectors.category_choices()
    assert ("tone", "Tone") in choices
    tone = ErrorCategory.objects.get(slug="tone")
    tone.active = False
    tone.save()
    assert ("tone", "Tone") not in selectors.category_choices()
    ErrorCategory.objects.create(slug="made-up", name="Made up")
    assert ("made-up", "Made up") in selectors.category_choices()
    ErrorCategory.objects.filter(slug="made-up").delete()
    assert "made-up" not in dict(selectors.category_choices())
