"""The pairwise review queue's services: claim order and leases, votes, four-eyes,
adjudication, assignment, conflicts."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import AuditEvent
from core.transitions import transition
from evals import claims, services
from evals.models import Comparison, ComparisonVote
from evals.signals import comparison_decided
from tests.evals.factories import ComparisonFactory
from tests.factories import AgentFactory, UserFactory

Status = Comparison.Status


@pytest.fixture
def decided():
    """The comparisons `comparison_decided` was sent for, with their outcome at the time."""
    seen: list[tuple[int, str, str]] = []

    def receiver(sender, comparison, **kwargs):
        seen.append((comparison.pk, comparison.status, comparison.outcome))

    comparison_decided.connect(receiver, dispatch_uid="test-pairwise")
    yield seen
    comparison_decided.disconnect(dispatch_uid="test-pairwise")


@pytest.fixture
def four_eyes_agent(db):
    return AgentFactory(slug="legal-bot", domain="support", required_reviews=2)


def claim(user) -> Comparison:
    comparison = claims.comparison_claim(reviewer=user)
    assert comparison is not None
    return comparison


def vote(user, comparison: Comparison, choice: str, **kwargs):
    return services.comparison_decide(
        reviewer=user,
        comparison_id=comparison.pk,
        choice=choice,
        version=comparison.version,
        **kwargs,
    )


def expire(comparison: Comparison) -> None:
    Comparison.objects.filter(pk=comparison.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def status_of(comparison: Comparison) -> str:
    return Comparison.objects.values_list("status", flat=True).get(pk=comparison.pk)


# --- claiming -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_claims_assigned_first_then_by_priority_then_oldest(reviewer, other_reviewer):
    old = ComparisonFactory()
    new = ComparisonFactory()
    urgent = ComparisonFactory(priority=5)
    mine = ComparisonFactory(assigned_to=reviewer, priority=-1)
    ComparisonFactory(assigned_to=other_reviewer, priority=9)  # someone else's
    ComparisonFactory(domain="legal", priority=9)  # not my domain
    Comparison.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    Comparison.objects.filter(pk=new.pk).update(created_at=timezone.now() - timedelta(days=1))

    order = []
    while (c := claims.comparison_claim(reviewer=reviewer)) is not None:
        order.append(c.pk)
        vote(reviewer, c, "a")

    assert order == [mine.pk, urgent.pk, old.pk, new.pk]


@pytest.mark.django_db
def test_it_breaks_ties_by_id(reviewer):
    first, second = ComparisonFactory(), ComparisonFactory()
    Comparison.objects.update(created_at=timezone.now())  # the same instant for both

    assert claim(reviewer).pk == first.pk
    assert second.pk > first.pk


@pytest.mark.django_db
def test_it_holds_the_claim_with_a_lease_and_records_it(reviewer, settings):
    settings.REVIEW_LEASE_SECONDS = 600
    c = ComparisonFactory()
    before = timezone.now()

    claimed = claim(reviewer)

    stored = Comparison.objects.get(pk=c.pk)
    assert (stored.status, stored.claimed_by_id, stored.version) == ("claimed", reviewer.pk, 1)
    assert before + timedelta(seconds=590) < stored.lease_expires_at
    assert stored.lease_expires_at <= timezone.now() + timedelta(seconds=600)
    assert claimed.version == stored.version
    event = AuditEvent.objects.get(target_type="comparison", target_id=c.pk)
    assert (event.action, event.actor_id) == ("comparison.claimed", reviewer.pk)


@pytest.mark.django_db
def test_it_gives_back_the_held_comparison_when_claiming_again(reviewer):
    ComparisonFactory.create_batch(2)
    held = claim(reviewer)

    assert claim(reviewer).pk == held.pk
    assert Comparison.objects.filter(status="claimed").count() == 1


@pytest.mark.django_db
def test_it_returns_none_when_nothing_is_claimable(reviewer):
    ComparisonFactory(domain="legal")
    assert claims.comparison_claim(reviewer=reviewer) is None


@pytest.mark.django_db
def test_two_reviewers_never_hold_the_same_comparison(reviewer, other_reviewer):
    c = ComparisonFactory()

    assert claim(reviewer).pk == c.pk
    assert claims.comparison_claim(reviewer=other_reviewer) is None
    assert Comparison.objects.get(pk=c.pk).claimed_by_id == reviewer.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_a_row_another_claim_has_locked_instead_of_waiting():
    """Two claims at once: the first holds its row lock (its transaction is still open); the
    second neither waits for it (a lock timeout would raise) nor takes the same row."""
    rita = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    oscar = UserFactory(username="oscar", roles=["reviewer"], domains=["support"])
    first, second = ComparisonFactory(), ComparisonFactory()
    locked, release = threading.Event(), threading.Event()
    got: dict[str, int | None] = {}

    def rita_claims() -> None:
        try:
            with transaction.atomic():
                got["rita"] = claim(rita).pk
                locked.set()
                release.wait(10)
        finally:
            locked.set()
            connection.close()

    worker = threading.Thread(target=rita_claims)
    worker.start()
    assert locked.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        oscar_got = claims.comparison_claim(reviewer=oscar)
    finally:
        release.set()
        worker.join(10)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert got["rita"] == first.pk
    assert oscar_got is not None and oscar_got.pk == second.pk
    holders = dict(Comparison.objects.values_list("pk", "claimed_by__username"))
    assert holders == {first.pk: "rita", second.pk: "oscar"}


# --- leases ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sweep_returns_expired_holds_to_their_queue_once(reviewer):
    c = ComparisonFactory()
    claim(reviewer)
    expire(c)

    assert claims.comparison_leases_expire() == 1
    assert claims.comparison_leases_expire() == 0

    stored = Comparison.objects.get(pk=c.pk)
    assert (stored.status, stored.claimed_by_id, stored.lease_expires_at) == ("pending", None, None)
    event = AuditEvent.objects.filter(target_id=c.pk, action="comparison.released").get()
    assert event.after["lease_expired"] is True


@pytest.mark.django_db
def test_the_sweep_leaves_live_holds_alone(reviewer):
    c = ComparisonFactory()
    claim(reviewer)

    assert claims.comparison_leases_expire() == 0
    assert status_of(c) == "claimed"


@pytest.mark.django_db
def test_an_expired_first_half_goes_back_to_the_second_review_queue(
    reviewer, other_reviewer, four_eyes_agent
):
    c = ComparisonFactory(agent=four_eyes_agent)
    vote(reviewer, claim(reviewer), "a")
    claim(other_reviewer)
    expire(c)

    assert claims.comparison_leases_expire() == 1
    assert status_of(c) == "needs_second_review"


@pytest.mark.django_db
def test_a_claim_that_finds_nothing_sweeps_lapsed_holds_first(reviewer, other_reviewer):
    c = ComparisonFactory()
    claim(reviewer)
    expire(c)

    assert claim(other_reviewer).pk == c.pk


@pytest.mark.django_db
def test_it_renews_a_live_lease_and_refuses_a_lapsed_one(reviewer, settings):
    settings.REVIEW_LEASE_SECONDS = 600
    c = ComparisonFactory()
    claim(reviewer)
    Comparison.objects.filter(pk=c.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=30)
    )

    renewed = claims.comparison_renew_lease(reviewer=reviewer, comparison_id=c.pk)
    assert renewed.lease_expires_at > timezone.now() + timedelta(seconds=590)

    expire(c)
    with pytest.raises(services.LeaseLost):
        claims.comparison_renew_lease(reviewer=reviewer, comparison_id=c.pk)


# --- voting ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_vote_decides_a_single_review_comparison(reviewer, decided):
    c = ComparisonFactory(a_on_left=False)
    held = claim(reviewer)

    outcome = vote(reviewer, held, "b", reason="clearer", seconds_spent=12)

    stored = Comparison.objects.get(pk=c.pk)
    assert (stored.status, stored.outcome, stored.claimed_by_id) == ("done", "b", None)
    assert stored.decided_at is not None
    assert outcome.status == "done"
    v = ComparisonVote.objects.get(comparison=c)
    assert (v.reviewer_id, v.choice, v.a_on_left, v.reason, v.seconds_spent) == (
        reviewer.pk,
        "b",
        False,
        "clearer",
        12,
    )
    assert decided == [(c.pk, "done", "b")]


@pytest.mark.django_db
def test_the_vote_copies_the_side_order_of_the_comparison(reviewer):
    c = ComparisonFactory(a_on_left=True)
    vote(reviewer, claim(reviewer), "tie")
    assert ComparisonVote.objects.get(comparison=c).a_on_left is True


@pytest.mark.django_db
def test_four_eyes_agreeing_votes_decide(reviewer, other_reviewer, four_eyes_agent, decided):
    c = ComparisonFactory(agent=four_eyes_agent)
    assert c.required_reviews == 2

    first = vote(reviewer, claim(reviewer), "both_bad")
    assert first.status == "needs_second_review"
    assert Comparison.objects.get(pk=c.pk).claimed_by_id is None
    assert decided == []

    second = vote(other_reviewer, claim(other_reviewer), "both_bad")

    assert second.status == "done"
    assert Comparison.objects.get(pk=c.pk).outcome == "both_bad"
    assert decided == [(c.pk, "done", "both_bad")]
    assert ComparisonVote.objects.filter(comparison=c).count() == 2


@pytest.mark.django_db
def test_four_eyes_disagreeing_votes_dispute(reviewer, other_reviewer, four_eyes_agent, decided):
    c = ComparisonFactory(agent=four_eyes_agent)
    vote(reviewer, claim(reviewer), "a")

    outcome = vote(other_reviewer, claim(other_reviewer), "b")

    stored = Comparison.objects.get(pk=c.pk)
    assert (outcome.status, stored.status, stored.outcome, stored.decided_at) == (
        "disputed",
        "disputed",
        "",
        None,
    )
    assert decided == []


@pytest.mark.django_db
def test_an_admin_adjudicates_a_dispute(reviewer, other_reviewer, lead, four_eyes_agent, decided):
    c = ComparisonFactory(agent=four_eyes_agent)
    vote(reviewer, claim(reviewer), "a")
    vote(other_reviewer, claim(other_reviewer), "b")

    outcome = services.comparison_adjudicate(
        admin=lead, comparison_id=c.pk, choice="b", reason="B cites the policy"
    )

    stored = Comparison.objects.get(pk=c.pk)
    assert (outcome.status, stored.status, stored.outcome) == ("done", "done", "b")
    final = ComparisonVote.objects.get(comparison=c, is_adjudication=True)
    assert (final.reviewer_id, final.choice) == (lead.pk, "b")
    assert decided == [(c.pk, "done", "b")]
    assert AuditEvent.objects.filter(target_id=c.pk, action="comparison.adjudicated").exists()


@pytest.mark.django_db
def test_only_an_admin_adjudicates_and_only_a_dispute(reviewer, lead):
    c = ComparisonFactory()
    with pytest.raises(services.Conflict, match="not awaiting adjudication"):
        services.comparison_adjudicate(admin=lead, comparison_id=c.pk, choice="a")
    with pytest.raises(PermissionDenied):
        services.comparison_adjudicate(admin=reviewer, comparison_id=c.pk, choice="a")
    assert not ComparisonVote.objects.exists()


@pytest.mark.django_db
def test_a_reviewer_is_never_offered_a_comparison_they_voted_on(
    reviewer, other_reviewer, four_eyes_agent
):
    c = ComparisonFactory(agent=four_eyes_agent)
    vote(reviewer, claim(reviewer), "a")

    assert claims.comparison_claim(reviewer=reviewer) is None
    assert claim(other_reviewer).pk == c.pk


@pytest.mark.django_db
def test_the_same_reviewer_cannot_vote_twice(reviewer, four_eyes_agent):
    c = ComparisonFactory(agent=four_eyes_agent)
    vote(reviewer, claim(reviewer), "a")
    # Back in the first reviewer's hands by some other path than the claim (which never
    # offers it to them): the vote itself refuses.
    c.refresh_from_db()
    transition(
        services.COMPARISON_STATES,
        c,
        Status.CLAIMED,
        changes={"claimed_by": reviewer, "lease_expires_at": timezone.now() + timedelta(hours=1)},
    )

    with pytest.raises(services.AlreadyVoted):
        vote(reviewer, c, "a")

    assert ComparisonVote.objects.filter(comparison=c).count() == 1
    assert status_of(c) == "claimed"


@pytest.mark.django_db
def test_a_stale_version_is_refused_and_nothing_is_recorded(reviewer):
    c = ComparisonFactory()
    held = claim(reviewer)

    with pytest.raises(services.StalePage, match="out of date"):
        services.comparison_decide(
            reviewer=reviewer, comparison_id=c.pk, choice="a", version=held.version - 1
        )

    assert not ComparisonVote.objects.exists()
    assert status_of(c) == "claimed"


@pytest.mark.django_db
def test_a_vote_after_the_hold_was_swept_is_refused(reviewer, other_reviewer):
    c = ComparisonFactory()
    held = claim(reviewer)
    expire(c)
    claim(other_reviewer)  # sweeps the lapsed hold and takes the comparison

    with pytest.raises(services.NotHeld):
        vote(reviewer, held, "a")

    assert not ComparisonVote.objects.exists()
    assert Comparison.objects.get(pk=c.pk).claimed_by_id == other_reviewer.pk


@pytest.mark.django_db
def test_a_vote_on_a_lapsed_hold_not_yet_swept_is_refused(reviewer):
    c = ComparisonFactory()
    held = claim(reviewer)
    expire(c)

    with pytest.raises(services.LeaseLost):
        vote(reviewer, held, "a")
    assert not ComparisonVote.objects.exists()


@pytest.mark.django_db
def test_a_vote_on_a_decided_comparison_is_refused(reviewer):
    c = ComparisonFactory()
    held = claim(reviewer)
    vote(reviewer, held, "a")

    with pytest.raises(services.NotHeld):
        services.comparison_decide(
            reviewer=reviewer, comparison_id=c.pk, choice="b", version=held.version
        )
    assert Comparison.objects.get(pk=c.pk).outcome == "a"


@pytest.mark.django_db
def test_it_refuses_an_unknown_choice_and_an_unknown_comparison(reviewer):
    ComparisonFactory()
    held = claim(reviewer)
    with pytest.raises(services.InvalidVote) as refused:
        vote(reviewer, held, "left")
    assert set(refused.value.errors) == {"choice"}
    with pytest.raises(services.ComparisonNotFound):
        services.comparison_decide(reviewer=reviewer, comparison_id=10**9, choice="a", version=1)


# --- skip and assignment --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_skip_gives_the_comparison_back(reviewer, other_reviewer):
    c = ComparisonFactory()
    held = claim(reviewer)

    with pytest.raises(services.NotHeld):
        claims.comparison_release(reviewer=other_reviewer, comparison_id=c.pk)
    claims.comparison_release(reviewer=reviewer, comparison_id=held.pk)

    stored = Comparison.objects.get(pk=c.pk)
    assert (stored.status, stored.claimed_by_id) == ("pending", None)
    assert claims.comparison_claim(reviewer=reviewer, exclude=(c.pk,)) is None
    assert claim(other_reviewer).pk == c.pk


@pytest.mark.django_db
def test_assignment_puts_a_comparison_first_for_its_reviewer_only(reviewer, other_reviewer, lead):
    low = ComparisonFactory(priority=-5)
    high = ComparisonFactory(priority=5)
    legal = ComparisonFactory(domain="legal")
    middle = ComparisonFactory()
    vote(reviewer, claim(reviewer), "a")  # `high`, decided by rita
    assert status_of(high) == "done"

    result = services.comparison_assign(
        admin=lead, comparison_ids=[low.pk, legal.pk, high.pk], reviewer=other_reviewer
    )

    assert result.changed == 1
    assert result.skipped == {"not open": 1, "outside the reviewer's domains": 1}
    assert Comparison.objects.get(pk=low.pk).assigned_to_id == other_reviewer.pk
    assert claim(reviewer).pk == middle.pk  # rita never gets oscar's assignment
    assert claim(other_reviewer).pk == low.pk
    assert AuditEvent.objects.filter(action="comparison.assigned", target_id=low.pk).exists()


# --- round trips ----------------------------------------------------------------------------------


def _claim_and_vote_queries(user) -> int:
    with CaptureQueriesContext(connection) as claimed:
        held = claim(user)
    with CaptureQueriesContext(connection) as voted:
        vote(user, held, "a")
    return len(claimed) + len(voted)


@pytest.mark.django_db
def test_claim_and_vote_cost_the_same_whatever_the_queue_size(
    reviewer, other_reviewer, django_assert_max_num_queries
):
    ComparisonFactory.create_batch(2)
    small = _claim_and_vote_queries(reviewer)
    ComparisonFactory.create_batch(60)
    with django_assert_max_num_queries(small):
        _claim_and_vote_queries(other_reviewer)
    # held check, assigned candidate, domain candidate, the move; lock, votes, vote, move
    # (+ savepoints of the nested atomics in a test transaction)
    assert small <= 14
