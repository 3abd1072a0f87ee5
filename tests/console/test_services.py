"""Admin console services and reads: assignment, spreading, release, priority, workload."""

import functools
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ReviewerProfile
from console import selectors as workload
from console import services as assignment
from core.models import AuditEvent
from reviews import services
from reviews.models import ReviewItem
from tests.factories import (
    AgentFactory,
    InteractionFactory,
    ReviewerProfileFactory,
    ReviewItemFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(queued):
    """tests/console/conftest.py's, every item below confidence 0.5: 0.100, 0.101, …"""
    return functools.partial(queued, confidence=lambda i, n: 0.1 + i / 1000)


def test_it_assigns_items_and_audits_each(reviewer, lead, queued):
    made = queued(3)
    result = assignment.items_assign(items=ReviewItem.objects.all(), reviewer=reviewer, actor=lead)
    assert result.changed == 3 and result.skipped == {}
    assert set(ReviewItem.objects.values_list("assigned_to", flat=True)) == {reviewer.pk}
    events = AuditEvent.objects.filter(action="item.assigned")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(i.pk for i in made)
    assert events.first().actor == lead


def test_it_skips_items_outside_the_reviewer_domains(reviewer, lead, queued):
    queued(2, domain="legal")
    queued(1)
    result = assignment.items_assign(items=ReviewItem.objects.all(), reviewer=reviewer, actor=lead)
    assert result.changed == 1
    assert result.skipped == {"outside the reviewer's domains": 2}


def test_it_skips_decided_items(reviewer, lead, queued):
    queued(1, done=True)
    result = assignment.items_assign(items=ReviewItem.objects.all(), reviewer=reviewer, actor=lead)
    assert (result.changed, result.skipped) == (0, {"not open": 1})


def test_it_never_assigns_a_second_review_to_the_first_reviewer(reviewer, lead):
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    ReviewItemFactory(interaction=InteractionFactory(agent=agent), required_reviews=2)
    item = services.item_claim(reviewer=reviewer)
    services.review_submit(
        item=item,
        reviewer=reviewer,
        decision=services.decision_validate(item=item, verdict="approve"),
    )
    result = assignment.items_assign(items=ReviewItem.objects.all(), reviewer=reviewer, actor=lead)
    assert result.skipped == {"already reviewed by them": 1}


def test_it_makes_assigned_items_come_first_in_the_claim(reviewer, other_reviewer, lead, queued):
    made = queued(10)
    last = made[-1]
    assignment.items_assign(
        items=ReviewItem.objects.filter(pk=last.pk), reviewer=reviewer, actor=lead
    )
    assert services.item_claim(reviewer=reviewer).pk == last.pk
    assert services.item_claim(reviewer=other_reviewer).pk != last.pk


def test_it_unassigns(reviewer, lead, queued):
    queued(2, assigned_to=reviewer)
    assert assignment.items_unassign(items=ReviewItem.objects.all(), actor=lead).changed == 2
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()


def test_it_changes_priority_within_bounds(lead, queued):
    queued(2)
    assert (
        assignment.items_set_priority(
            items=ReviewItem.objects.all(), priority=7, actor=lead
        ).changed
        == 2
    )
    assert set(ReviewItem.objects.values_list("priority", flat=True)) == {7}
    with pytest.raises(services.InvalidDecision):
        assignment.items_set_priority(items=ReviewItem.objects.all(), priority=1000, actor=lead)


def test_it_releases_stuck_claims(reviewer, lead, queued):
    queued(1)
    item = services.item_claim(reviewer=reviewer)
    result = assignment.items_release(items=ReviewItem.objects.all(), actor=lead)
    item.refresh_from_db()
    assert result.changed == 1
    assert (item.status, item.claimed_by) == ("pending", None)
    assert AuditEvent.objects.filter(action="item.released", actor=lead, target_id=item.pk).exists()


def test_it_spreads_evenly_respecting_expertise_and_capacity(lead, queued):
    support = [
        UserFactory(username=f"s{i}", roles=["reviewer"], domains=["support"]) for i in range(3)
    ]
    legal = UserFactory(username="lena", roles=["reviewer"], domains=["legal"])
    support[2].reviewer_profile.daily_capacity = 2
    support[2].reviewer_profile.save()
    queued(12)
    queued(2, domain="legal")
    result = assignment.items_spread(
        items=ReviewItem.objects.all(), reviewers=[*support, legal], actor=lead
    )
    counts = {
        u.username: ReviewItem.objects.filter(assigned_to=u).count() for u in [*support, legal]
    }
    assert result.changed == 14
    assert counts == {"s0": 5, "s1": 5, "s2": 2, "lena": 2}


def test_it_leaves_items_nobody_may_take(lead, reviewer, queued):
    queued(2, domain="legal")
    result = assignment.items_spread(
        items=ReviewItem.objects.all(), reviewers=[reviewer], actor=lead
    )
    assert (result.changed, result.skipped) == (0, {"no reviewer with capacity and expertise": 2})


def test_it_filters_the_queue_browser(queued):
    made = queued(5)
    queued(2, domain="legal")
    ReviewItem.objects.filter(pk=made[0].pk).update(
        confidence=0.9, source_created_at=timezone.now() - timedelta(days=30)
    )
    f = workload.QueueFilter(domain="support", min_confidence=0.5)
    assert list(workload.queue_browse(f).values_list("pk", flat=True)) == [made[0].pk]
    assert workload.queue_browse(workload.QueueFilter(min_age_hours=24 * 20)).count() == 1
    assert workload.queue_browse(workload.QueueFilter(assigned="unassigned")).count() == 7


def test_it_caps_the_count(queued):
    queued(5)
    assert workload.capped_count(ReviewItem.objects.all(), cap=3) == (3, False)
    assert workload.capped_count(ReviewItem.objects.all(), cap=10) == (5, True)


def test_it_reports_reviewer_workload(reviewer, other_reviewer, lead):
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    for _ in range(2):
        ReviewItemFactory(interaction=InteractionFactory(agent=agent), required_reviews=2)
    for verdict_a, verdict_b in (("approve", "approve"), ("approve", "reject")):
        item = services.item_claim(reviewer=reviewer)
        services.review_submit(
            item=item,
            reviewer=reviewer,
            decision=services.decision_validate(item=item, verdict=verdict_a, seconds_spent=10),
        )
        item = services.item_claim(reviewer=other_reviewer)
        services.review_submit(
            item=item,
            reviewer=other_reviewer,
            decision=services.decision_validate(item=item, verdict=verdict_b, seconds_spent=30),
        )
    rows = {r["username"]: r for r in workload.reviewer_workload()}
    assert rows["rita"]["today"] == 2 and rows["rita"]["median_seconds"] == 10
    assert rows["oscar"]["mix"] == {"approve": 0.5, "correct": 0.0, "reject": 0.5}
    assert (rows["rita"]["agreement"], rows["rita"]["agreement_n"]) == (0.5, 2)


def test_it_lists_backlog_by_agent(queued):
    queued(3)
    [row] = workload.backlog_by_agent()
    assert (row["agent__slug"], row["open"]) == ("support-bot", 3)


# --- auto-assignment --------------------------------------------------------------------------


@pytest.fixture
def pool(db):
    AgentFactory(slug="support-bot", domain="support", auto_assign=True)
    AgentFactory(slug="legal-bot", domain="legal", auto_assign=False)
    rita = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    oscar = UserFactory(username="oscar", roles=["reviewer"], domains=["support"])
    ReviewerProfileFactory(user=UserFactory(username="away", roles=["reviewer"]), away=True)
    return rita, oscar


def test_it_spreads_the_routed_items_of_auto_assigning_agents_over_the_pool(pool):
    items = [ReviewItemFactory(interaction__agent__slug="support-bot") for _ in range(4)]
    legal = ReviewItemFactory(interaction__agent__slug="legal-bot")

    assert assignment.items_autoassign() == 4

    owners = [ReviewItem.objects.get(pk=i.pk).assigned_to for i in items]
    assert sorted(u.username for u in owners) == ["oscar", "oscar", "rita", "rita"]
    assert ReviewItem.objects.get(pk=legal.pk).assigned_to is None


def test_it_autoassigns_nothing_more_when_run_again(pool):
    ReviewItemFactory(interaction__agent__slug="support-bot")
    assert assignment.items_autoassign() == 1
    assert assignment.items_autoassign() == 0


def test_it_stops_autoassigning_at_each_reviewers_daily_capacity(pool):
    ReviewerProfile.objects.update(daily_capacity=1)
    for _ in range(3):
        ReviewItemFactory(interaction__agent__slug="support-bot")
    assert assignment.items_autoassign() == 2
    assert ReviewItem.objects.filter(assigned_to__isnull=True).count() == 1


# --- pools and policies ---------------------------------------------------------------------


def test_it_adds_a_reviewer_to_a_pool_once(reviewer, lead):
    assert assignment.pool_member_add(domain=" legal ", reviewer=reviewer, actor=lead) is True
    assert assignment.pool_member_add(domain="legal", reviewer=reviewer, actor=lead) is False
    assert ReviewerProfile.objects.get(user=reviewer).domains == ["legal", "support"]
    event = AuditEvent.objects.get(action="pool.member_added")
    assert (event.before, event.after) == (
        {"domains": ["support"]},
        {"domains": ["legal", "support"], "pool": "legal"},
    )


def test_it_makes_the_profile_of_a_reviewer_who_has_none(lead):
    newcomer = UserFactory(username="nina", roles=["reviewer"])
    assignment.pool_member_add(domain="legal", reviewer=newcomer, actor=lead)
    profile = ReviewerProfile.objects.get(user=newcomer)
    assert (profile.domains, profile.active) == (["legal"], True)


@pytest.mark.parametrize(
    ("domain", "roles", "message"),
    [
        ("legal", ["ml"], "mo is not in the reviewer group."),
        ("  ", ["reviewer"], "A pool needs a domain name."),
        ("x" * 101, ["reviewer"], "A domain name has at most 100 characters."),
    ],
)
def test_it_refuses_a_pool_member_it_cannot_add(lead, domain, roles, message):
    user = UserFactory(username="mo", roles=roles)
    with pytest.raises(assignment.PoolChangeRefused, match=message):
        assignment.pool_member_add(domain=domain, reviewer=user, actor=lead)
    assert not ReviewerProfile.objects.filter(user=user).exists()
    assert not AuditEvent.objects.exists()


def test_it_removes_a_reviewer_from_a_pool_once(reviewer, lead):
    assert assignment.pool_member_remove(domain="support", reviewer=reviewer, actor=lead) is True
    assert assignment.pool_member_remove(domain="support", reviewer=reviewer, actor=lead) is False
    assert ReviewerProfile.objects.get(user=reviewer).domains == []
    assert AuditEvent.objects.filter(action="pool.member_removed").count() == 1


def test_it_refuses_alert_thresholds_the_alerts_cannot_read(lead):
    agent = AgentFactory(slug="support-bot")
    bad = {"resolution_rate": {"below": 0.7, "days": 0}}
    with pytest.raises(ValidationError) as refused:
        assignment.agent_policy_update(
            agent=agent, changes={"name": "New", "alert_thresholds": bad}, actor=lead
        )
    assert refused.value.message_dict["alert_thresholds"] == [
        "resolution_rate.days: must be a whole number of days from 1 to 366"
    ]
    agent.refresh_from_db()
    assert (agent.name, agent.alert_thresholds) == ("Support Bot", {})
    assert not AuditEvent.objects.exists()
