"""Every decision is in the audit log with its verdict, its review and its reviewer: the
first half of a four-eyes pair is not recorded as a bare release."""

import pytest

from core.models import AuditEvent
from reviews import services
from tests.factories import AgentFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def four_eyes():
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    return ReviewItemFactory(interaction__agent=agent)


def decide(user, verdict, **fields):
    item = services.item_claim(reviewer=user)
    decision = services.decision_validate(item=item, verdict=verdict, **fields)
    return services.review_submit(item=item, reviewer=user, decision=decision)


def last_event(item):
    return AuditEvent.objects.filter(target_type="review_item", target_id=item.pk).latest("pk")


def test_it_records_the_first_four_eyes_verdict_with_its_review(reviewer, four_eyes):
    outcome = decide(reviewer, "approve")

    event = last_event(four_eyes)
    assert event.actor_id == reviewer.pk
    assert event.after["status"] == "needs_second_review"
    assert (event.after["verdict"], event.after["review"], event.after["reviewer"]) == (
        "approve",
        outcome.review.pk,
        reviewer.pk,
    )


def test_it_records_a_dispute_with_the_second_verdict(reviewer, other_reviewer, four_eyes):
    decide(reviewer, "approve")
    outcome = decide(other_reviewer, "reject")

    event = last_event(four_eyes)
    assert (event.action, event.after["status"]) == ("item.disputed", "disputed")
    assert (event.after["verdict"], event.after["review"], event.after["reviewer"]) == (
        "reject",
        outcome.review.pk,
        other_reviewer.pk,
    )


def test_it_records_the_deciding_verdict(reviewer, other_reviewer, four_eyes):
    decide(reviewer, "approve")
    outcome = decide(other_reviewer, "approve")

    event = last_event(four_eyes)
    assert (event.action, event.after["status"], event.after["verdict"]) == (
        "item.decided",
        "done",
        "approve",
    )
    assert event.after["review"] == outcome.review.pk


def test_it_records_an_escalation_and_a_skip_with_their_verdicts(reviewer, other_reviewer):
    agent = AgentFactory(slug="support-bot", domain="support")
    skipped = ReviewItemFactory(interaction__agent=agent, priority=5)
    decide(reviewer, "skip")
    assert (last_event(skipped).action, last_event(skipped).after["verdict"]) == (
        "item.released",
        "skip",
    )
    outcome = decide(other_reviewer, "escalate")
    assert outcome.item.pk == skipped.pk
    event = last_event(skipped)
    assert (event.action, event.after["verdict"], event.after["review"]) == (
        "item.disputed",
        "escalate",
        outcome.review.pk,
    )


def test_it_records_an_adjudication_with_the_leads_review(reviewer, other_reviewer, four_eyes):
    lead = UserFactory(username="lee", roles=["admin"], is_staff=True)
    decide(reviewer, "approve")
    decide(other_reviewer, "reject")
    four_eyes.refresh_from_db()
    decision = services.decision_validate(item=four_eyes, verdict="reject")
    outcome = services.item_adjudicate(item=four_eyes, admin=lead, decision=decision)

    event = last_event(four_eyes)
    assert (event.action, event.actor_id, event.after["verdict"]) == (
        "item.adjudicated",
        lead.pk,
        "reject",
    )
    assert event.after["review"] == outcome.review.pk
