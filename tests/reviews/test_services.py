"""The review state machine: claim, lease, decide, four-eyes, adjudicate, audit, pairs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent
from retraining.models import TrainingPair
from reviews import services
from reviews.models import Review, ReviewItem
from reviews.services import Conflict, InvalidDecision, LeaseLost, StalePage
from tests.factories import AgentFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db
Status = ReviewItem.Status


@pytest.fixture
def agent(db):
    return AgentFactory(slug="support-bot", domain="support")


def decide(item, reviewer, verdict="approve", **fields):
    decision = services.decision_validate(item=item, verdict=verdict, **fields)
    return services.review_submit(item=item, reviewer=reviewer, decision=decision)


# --- claiming --------------------------------------------------------------------------------


def test_it_claims_the_lowest_confidence_item_first(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.6)
    low = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.4)
    item = services.item_claim(reviewer=reviewer)
    assert item.pk == low.pk
    assert (item.status, item.claimed_by, item.version) == ("claimed", reviewer, 1)
    assert item.lease_expires_at > timezone.now() + timedelta(minutes=14)


def test_it_claims_higher_priority_before_lower_confidence(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    urgent = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.6, priority=5)
    assert services.item_claim(reviewer=reviewer).pk == urgent.pk


def test_it_claims_older_items_first_at_equal_confidence(reviewer, agent):
    newer = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.3)
    older = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.3)
    ReviewItem.objects.filter(pk=older.pk).update(
        source_created_at=newer.source_created_at - timedelta(days=1)
    )
    assert services.item_claim(reviewer=reviewer).pk == older.pk


def test_it_claims_items_assigned_to_me_first(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    mine = ReviewItemFactory(
        interaction__agent=agent, interaction__confidence=0.9, assigned_to=reviewer
    )
    assert services.item_claim(reviewer=reviewer).pk == mine.pk


def test_it_never_offers_an_item_assigned_to_someone_else(reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, assigned_to=other_reviewer)
    assert services.item_claim(reviewer=reviewer) is None


def test_it_only_offers_items_of_my_domains(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__domain="legal")
    assert services.item_claim(reviewer=reviewer) is None
    legal = UserFactory(username="lena", roles=["reviewer"], domains=["legal"])
    assert services.item_claim(reviewer=legal) is not None


def test_it_filters_the_claim_by_agent(reviewer, agent):
    other = AgentFactory(slug="other-bot", domain="support")
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    wanted = ReviewItemFactory(interaction__agent=other, interaction__confidence=0.9)
    assert services.item_claim(reviewer=reviewer, agent_id=other.pk).pk == wanted.pk


def test_it_never_gives_two_reviewers_the_same_item(reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    assert services.item_claim(reviewer=reviewer) is not None
    assert services.item_claim(reviewer=other_reviewer) is None


def test_it_returns_none_when_the_queue_is_empty(reviewer):
    assert services.item_claim(reviewer=reviewer) is None


def test_it_audits_the_claim(reviewer, agent):
    item = ReviewItemFactory(interaction__agent=agent)
    services.item_claim(reviewer=reviewer)
    event = AuditEvent.objects.get(action="item.claimed", target_id=item.pk)
    assert (event.actor, event.before["status"], event.after["status"]) == (
        reviewer,
        "pending",
        "claimed",
    )


# --- leases ----------------------------------------------------------------------------------


def expire(item):
    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_it_returns_expired_leases_to_the_queue(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    expire(item)
    assert services.leases_expire() == 1
    item.refresh_from_db()
    assert (item.status, item.claimed_by, item.lease_expires_at) == ("pending", None, None)
    assert AuditEvent.objects.filter(action="item.released", target_id=item.pk).exists()


def test_it_expires_leases_lazily_when_claiming(reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    expire(item)
    assert services.item_claim(reviewer=other_reviewer).pk == item.pk


def test_it_runs_the_expiry_twice_without_harm(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    expire(services.item_claim(reviewer=reviewer))
    assert services.leases_expire() == 1
    assert services.leases_expire() == 0


def test_it_renews_a_live_lease(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    services.item_renew_lease(item=item, reviewer=reviewer)
    item.refresh_from_db()
    assert item.lease_expires_at > timezone.now() + timedelta(minutes=14)


def test_it_refuses_to_renew_a_lost_lease(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    expire(item)
    with pytest.raises(LeaseLost):
        services.item_renew_lease(item=item, reviewer=reviewer)


def test_it_refuses_a_decision_on_an_expired_lease(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    expire(item)
    with pytest.raises(LeaseLost):
        decide(item, reviewer)
    assert not Review.objects.exists()


def test_it_refuses_a_decision_by_someone_who_does_not_hold_the_item(
    reviewer, other_reviewer, agent
):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    with pytest.raises(LeaseLost):
        decide(item, other_reviewer)


def test_it_refuses_a_decision_from_a_stale_page(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    page_version = item.version
    expire(item)
    services.item_claim(reviewer=reviewer)  # claimed again: a new version
    decision = services.decision_validate(item=item, verdict="approve")
    with pytest.raises(StalePage):
        services.review_submit(
            item=item, reviewer=reviewer, decision=decision, expected_version=page_version
        )


# --- claiming a named item ("Claim again") ----------------------------------------------------


@pytest.fixture(params=["sql", "orm"])
def claim_path(request, monkeypatch):
    """Both claims: PostgreSQL's one statement and the portable ORM one (SQLite's)."""
    if request.param == "orm":
        monkeypatch.setattr(services, "_claim_pg", services._claim_portable)
    return request.param


def test_it_claims_the_named_item_before_a_more_urgent_one(reviewer, agent, claim_path):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1, priority=5)
    named = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.9)
    item = services.item_claim(reviewer=reviewer, item_id=named.pk)
    assert (item.pk, item.status, item.claimed_by) == (named.pk, "claimed", reviewer)


def test_it_takes_back_my_own_lapsed_hold_on_the_named_item(reviewer, agent, claim_path):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    held = services.item_claim(reviewer=reviewer)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    expire(held)
    item = services.item_claim(reviewer=reviewer, item_id=held.pk)
    assert (item.pk, item.claimed_by) == (held.pk, reviewer)
    assert item.lease_expires_at > timezone.now() + timedelta(minutes=14)
    actions = AuditEvent.objects.filter(target_id=held.pk).order_by("pk")
    assert [e.action for e in actions] == ["item.claimed", "item.released", "item.claimed"]


def test_it_gives_the_next_item_when_the_named_one_was_taken(
    reviewer, other_reviewer, agent, claim_path
):
    taken = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    other = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    assert services.item_claim(reviewer=other_reviewer).pk == taken.pk
    assert services.item_claim(reviewer=reviewer, item_id=taken.pk).pk == other.pk
    assert ReviewItem.objects.get(pk=taken.pk).claimed_by == other_reviewer


def test_it_never_gives_back_an_item_i_reviewed_for_its_second_review(reviewer, claim_path):
    legal = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    ReviewItemFactory(interaction__agent=legal)
    item = services.item_claim(reviewer=reviewer)
    decide(item, reviewer, "approve")
    assert services.item_claim(reviewer=reviewer, item_id=item.pk) is None
    assert ReviewItem.objects.get(pk=item.pk).status == "needs_second_review"


def test_it_never_takes_a_named_item_out_of_my_scope(reviewer, other_reviewer, agent, claim_path):
    theirs = ReviewItemFactory(interaction__agent=agent, assigned_to=other_reviewer)
    legal = ReviewItemFactory(interaction__agent=agent, interaction__domain="legal")
    for item in (theirs, legal):
        assert services.item_claim(reviewer=reviewer, item_id=item.pk) is None
    assert set(ReviewItem.objects.values_list("status", flat=True)) == {"pending"}


# --- single review ---------------------------------------------------------------------------


def test_it_decides_an_approval_and_makes_a_training_pair(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    outcome = decide(
        item, reviewer, "approve", error_category="tone", notes="fine", seconds_spent=12
    )
    item.refresh_from_db()
    assert (item.status, item.final_verdict, item.claimed_by) == ("done", "approve", None)
    pair = outcome.pair
    assert (pair.source, pair.input, pair.output, pair.rejected_output) == (
        "approve",
        item.interaction.input,
        item.interaction.output,
        "",
    )
    assert list(pair.reviewers.all()) == [reviewer]
    assert pair.error_category.slug == "tone"
    assert pair.agent_version == "v1"


def test_it_keeps_the_original_as_the_rejected_side_of_a_correction(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    outcome = decide(item, reviewer, "correct", corrected_output="Returns are free within 30 days.")
    assert (outcome.pair.output, outcome.pair.rejected_output) == (
        "Returns are free within 30 days.",
        item.interaction.output,
    )


def test_it_makes_no_pair_for_a_rejection(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    assert decide(item, reviewer, "reject", error_category="hallucination").pair is None
    assert not TrainingPair.objects.exists()


def test_it_requires_the_output_to_correct(reviewer, agent):
    item = ReviewItemFactory(interaction__agent=agent)
    with pytest.raises(InvalidDecision) as info:
        services.decision_validate(item=item, verdict="correct", corrected_output="  ")
    assert "corrected_output" in info.value.errors


def test_it_refuses_a_correction_identical_to_the_output(reviewer, agent):
    item = ReviewItemFactory(interaction__agent=agent)
    with pytest.raises(InvalidDecision, match="approve instead"):
        services.decision_validate(
            item=item, verdict="correct", corrected_output=item.interaction.output
        )


def test_it_refuses_an_unknown_verdict_and_category(agent):
    item = ReviewItemFactory(interaction__agent=agent)
    with pytest.raises(InvalidDecision) as info:
        services.decision_validate(item=item, verdict="maybe", error_category="nope")
    assert set(info.value.errors) == {"verdict", "error_category"}


def test_it_puts_a_skipped_item_back_for_someone_else(reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    decide(item, reviewer, "skip")
    item.refresh_from_db()
    assert item.status == "pending"
    assert services.item_claim(reviewer=reviewer) is None
    assert services.item_claim(reviewer=other_reviewer).pk == item.pk


def test_it_sends_an_escalation_to_adjudication(reviewer, lead, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    decide(item, reviewer, "escalate", notes="needs a lawyer")
    item.refresh_from_db()
    assert item.status == "disputed"
    outcome = services.item_adjudicate(
        item=item, admin=lead, decision=services.decision_validate(item=item, verdict="approve")
    )
    assert outcome.status == "done" and outcome.pair is not None


# --- four-eyes -------------------------------------------------------------------------------


@pytest.fixture
def legal():
    return AgentFactory(slug="legal-bot", domain="legal", required_reviews=2)


@pytest.fixture
def lawyers(db):
    return (
        UserFactory(username="lena", roles=["reviewer"], domains=["legal"]),
        UserFactory(username="lars", roles=["reviewer"], domains=["legal"]),
    )


def test_it_needs_a_second_review_from_someone_else(legal, lawyers):
    first, second = lawyers
    ReviewItemFactory(interaction__agent=legal, interaction__domain="legal")
    item = services.item_claim(reviewer=first)
    decide(item, first, "approve")
    item.refresh_from_db()
    assert item.status == "needs_second_review"
    assert services.item_claim(reviewer=first) is None
    assert services.item_claim(reviewer=second).pk == item.pk
    assert not TrainingPair.objects.exists()


def test_it_decides_when_two_reviewers_agree(legal, lawyers):
    first, second = lawyers
    ReviewItemFactory(interaction__agent=legal, interaction__domain="legal")
    decide(services.item_claim(reviewer=first), first, "correct", corrected_output="Draft A")
    outcome = decide(
        services.item_claim(reviewer=second), second, "correct", corrected_output="Draft B"
    )
    assert outcome.status == "done"
    assert outcome.pair.output == "Draft B"
    assert set(outcome.pair.reviewers.all()) == {first, second}


def test_it_disputes_when_two_reviewers_disagree_and_the_admin_decides(legal, lawyers, lead):
    first, second = lawyers
    ReviewItemFactory(interaction__agent=legal, interaction__domain="legal")
    decide(services.item_claim(reviewer=first), first, "approve")
    outcome = decide(services.item_claim(reviewer=second), second, "reject")
    assert outcome.status == "disputed"
    item = outcome.item
    final = services.item_adjudicate(
        item=item, admin=lead, decision=services.decision_validate(item=item, verdict="approve")
    )
    item.refresh_from_db()
    assert (item.status, item.final_verdict) == ("done", "approve")
    assert set(final.pair.reviewers.all()) == {first, lead}
    with pytest.raises(Conflict):
        services.item_adjudicate(
            item=item, admin=lead, decision=services.decision_validate(item=item, verdict="reject")
        )


def test_it_returns_an_expired_second_review_to_the_second_queue(legal, lawyers):
    first, second = lawyers
    ReviewItemFactory(interaction__agent=legal, interaction__domain="legal")
    decide(services.item_claim(reviewer=first), first, "approve")
    item = services.item_claim(reviewer=second)
    expire(item)
    services.leases_expire()
    item.refresh_from_db()
    assert item.status == "needs_second_review"


# --- invariants ------------------------------------------------------------------------------


def test_it_refuses_transitions_that_are_not_in_the_table(reviewer, agent):
    item = ReviewItemFactory(interaction__agent=agent)
    with pytest.raises(ValueError, match="not allowed"):
        services._transition(item, Status.DONE, actor=reviewer)


def test_it_raises_conflict_when_the_row_changed_underneath(agent):
    item = ReviewItemFactory(interaction__agent=agent)
    ReviewItem.objects.filter(pk=item.pk).update(status=Status.DONE)
    with pytest.raises(Conflict):
        services._transition(item, Status.CLAIMED, actor=None)


def test_it_says_an_item_was_already_decided(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = services.item_claim(reviewer=reviewer)
    decide(item, reviewer, "approve")
    with pytest.raises(Conflict, match="already decided"):
        decide(item, reviewer, "reject")


def test_it_returns_the_claimed_item_with_its_fields_set(reviewer, agent):
    made = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.25)
    item = services.item_claim(reviewer=reviewer)
    stored = ReviewItem.objects.get(pk=made.pk)
    for name in (
        "pk",
        "status",
        "version",
        "lease_expires_at",
        "confidence",
        "domain",
        "reason",
        "priority",
        "agent_id",
        "interaction_id",
        "required_reviews",
        "claimed_by_id",
    ):
        assert getattr(item, name) == getattr(stored, name), name
