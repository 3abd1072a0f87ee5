"""Undo: a reviewer takes back their latest decision for a minute after making it, unless
they decided again, someone else acted on the item, or its training pair was exported."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from core.models import AuditEvent
from retraining import build
from retraining.models import BatchPair, TrainingPair
from reviews import selectors, services
from reviews.models import Review, ReviewItem
from reviews.services import Conflict, UndoRefused
from tests.conftest import wait_for
from tests.factories import AgentFactory, ExportBatchFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db
Status = ReviewItem.Status


@pytest.fixture
def agent(db):
    return AgentFactory(slug="support-bot", domain="support")


@pytest.fixture
def four_eyes(db):
    return AgentFactory(slug="legal-bot", domain="support", required_reviews=2)


def claim(reviewer, **kwargs):
    item = services.item_claim(reviewer=reviewer, **kwargs)
    assert item is not None
    return item


def decide(item, reviewer, verdict="approve", **fields):
    decision = services.decision_validate(item=item, verdict=verdict, **fields)
    return services.review_submit(item=item, reviewer=reviewer, decision=decision)


def age(review_or_outcome, seconds: int) -> None:
    review = getattr(review_or_outcome, "review", review_or_outcome)
    Review.objects.filter(pk=review.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def stored(item) -> ReviewItem:
    return ReviewItem.objects.get(pk=item.pk)


# --- what undo restores ------------------------------------------------------------------------


def test_it_gives_an_approved_item_back_to_its_reviewer_without_review_or_pair(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    outcome = decide(item, reviewer, "approve")
    assert outcome.pair is not None

    undone = services.review_undo(item=item, reviewer=reviewer)

    item = stored(item)
    assert (item.status, item.claimed_by, item.final_verdict, item.decided_at) == (
        "claimed",
        reviewer,
        "",
        None,
    )
    assert item.lease_expires_at > timezone.now() + timedelta(minutes=14)
    assert undone.pk == item.pk and undone.status == "claimed"
    assert not Review.objects.exists()
    assert not TrainingPair.objects.exists()


def test_it_lets_the_reviewer_decide_again_after_an_undo(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    item = services.review_undo(item=item, reviewer=reviewer)

    outcome = decide(item, reviewer, "correct", corrected_output="A better answer.")

    assert (outcome.status, outcome.pair.source) == ("done", "correct")
    assert Review.objects.get().verdict == "correct"


def test_it_records_the_undo_with_a_copy_of_the_review(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    outcome = decide(item, reviewer, "correct", corrected_output="Fixed.", notes="Why")
    pair_id, review_id = outcome.pair.pk, outcome.review.pk

    services.review_undo(item=item, reviewer=reviewer)

    moved, undone = AuditEvent.objects.filter(target_id=item.pk).order_by("-pk")[:2][::-1]
    assert (moved.action, moved.actor, moved.before["status"], moved.after["status"]) == (
        "item.undone",
        reviewer,
        "done",
        "claimed",
    )
    assert moved.after["undone_review"] == review_id
    assert (undone.action, undone.actor, undone.target_type) == (
        "review.undone",
        reviewer,
        "review_item",
    )
    assert {k: undone.before[k] for k in ("review", "verdict", "corrected_output", "notes")} == {
        "review": review_id,
        "verdict": "correct",
        "corrected_output": "Fixed.",
        "notes": "Why",
    }
    assert undone.after == {"status": "claimed", "pair": pair_id}


def test_it_takes_a_skipped_item_back_from_the_queue(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "skip")
    assert stored(item).status == "pending"

    services.review_undo(item=item, reviewer=reviewer)

    assert (stored(item).status, stored(item).claimed_by) == ("claimed", reviewer)
    assert not Review.objects.exists()
    claims = AuditEvent.objects.filter(target_id=item.pk, action="item.claimed").order_by("pk")
    assert [e.after.get("undone_review") is not None for e in claims] == [False, True]


def test_it_takes_back_an_escalation(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "escalate")

    services.review_undo(item=item, reviewer=reviewer)

    assert (stored(item).status, stored(item).claimed_by) == ("claimed", reviewer)


def test_it_takes_back_a_first_four_eyes_review_before_anyone_picks_it_up(reviewer, four_eyes):
    ReviewItemFactory(interaction__agent=four_eyes)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    assert stored(item).status == "needs_second_review"

    services.review_undo(item=item, reviewer=reviewer)

    assert (stored(item).status, stored(item).claimed_by) == ("claimed", reviewer)
    assert not Review.objects.exists()


def test_it_takes_back_a_second_review_and_keeps_the_first(reviewer, other_reviewer, four_eyes):
    ReviewItemFactory(interaction__agent=four_eyes)
    item = claim(other_reviewer)
    first = decide(item, other_reviewer, "approve").review
    item = claim(reviewer)
    outcome = decide(item, reviewer, "approve")
    assert (outcome.status, TrainingPair.objects.count()) == ("done", 1)

    services.review_undo(item=item, reviewer=reviewer)

    assert (stored(item).status, stored(item).claimed_by) == ("claimed", reviewer)
    assert list(Review.objects.all()) == [first]
    assert not TrainingPair.objects.exists()


# --- when undo is refused ----------------------------------------------------------------------


def assert_untouched(item, status: str, reviews: int, pairs: int) -> None:
    assert stored(item).status == status
    assert Review.objects.count() == reviews
    assert TrainingPair.objects.count() == pairs
    assert not AuditEvent.objects.filter(action="review.undone").exists()


def test_it_refuses_after_the_minute(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    age(decide(item, reviewer, "approve"), seconds=61)

    with pytest.raises(UndoRefused, match="Too late to undo your decision on item"):
        services.review_undo(item=item, reviewer=reviewer)

    assert_untouched(item, "done", reviews=1, pairs=1)


def test_it_refuses_once_the_reviewer_decided_again(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    first = claim(reviewer)
    decide(first, reviewer, "approve")
    decide(claim(reviewer), reviewer, "reject")

    with pytest.raises(UndoRefused, match="only your latest decision can be undone"):
        services.review_undo(item=first, reviewer=reviewer)

    assert stored(first).status == "done"
    assert Review.objects.count() == 2


def test_it_does_not_reopen_an_earlier_decision_by_undoing_a_later_one(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    first = claim(reviewer)
    decide(first, reviewer, "approve")
    second = claim(reviewer)
    decide(second, reviewer, "approve")
    services.review_undo(item=second, reviewer=reviewer)

    with pytest.raises(UndoRefused, match="only your latest decision"):
        services.review_undo(item=first, reviewer=reviewer)
    assert selectors.undoable_decision(reviewer) is None


def test_it_refuses_a_second_undo(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    services.review_undo(item=item, reviewer=reviewer)

    with pytest.raises(UndoRefused, match="Nothing to undo"):
        services.review_undo(item=item, reviewer=reviewer)


def test_it_refuses_someone_elses_decision(reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "approve")

    with pytest.raises(UndoRefused, match="Nothing to undo"):
        services.review_undo(item=item, reviewer=other_reviewer)

    assert_untouched(item, "done", reviews=1, pairs=1)


def test_it_refuses_once_another_reviewer_picked_the_item_up(reviewer, other_reviewer, four_eyes):
    ReviewItemFactory(interaction__agent=four_eyes)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    assert claim(other_reviewer).pk == item.pk

    with pytest.raises(UndoRefused, match="has moved on since your decision"):
        services.review_undo(item=item, reviewer=reviewer)

    assert (stored(item).status, stored(item).claimed_by) == ("claimed", other_reviewer)
    assert Review.objects.count() == 1


def test_it_refuses_once_a_second_reviewer_reviewed_the_item(reviewer, other_reviewer, four_eyes):
    ReviewItemFactory(interaction__agent=four_eyes)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    decide(claim(other_reviewer), other_reviewer, "reject")

    with pytest.raises(UndoRefused, match="Another reviewer has reviewed item"):
        services.review_undo(item=item, reviewer=reviewer)

    assert_untouched(item, "disputed", reviews=2, pairs=0)


def test_it_refuses_once_a_lead_assigned_the_skipped_item_elsewhere(
    reviewer, other_reviewer, lead, agent
):
    from console import services as console

    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "skip")
    console.items_assign(
        items=ReviewItem.objects.filter(pk=item.pk), reviewer=other_reviewer, actor=lead
    )

    with pytest.raises(UndoRefused, match="has moved on"):
        services.review_undo(item=item, reviewer=reviewer)

    assert stored(item).status == "pending"


def test_it_refuses_when_the_training_pair_is_in_an_export_batch(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    pair = decide(item, reviewer, "approve").pair
    batch = ExportBatchFactory(agent=agent, ready=True)
    BatchPair.objects.create(batch=batch, pair=pair)

    with pytest.raises(UndoRefused, match=f"already in export batch #{batch.pk}"):
        services.review_undo(item=item, reviewer=reviewer)

    assert_untouched(item, "done", reviews=1, pairs=1)


def test_it_refuses_a_leads_adjudication(reviewer, other_reviewer, lead, four_eyes):
    ReviewItemFactory(interaction__agent=four_eyes)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    decide(claim(other_reviewer), other_reviewer, "reject")
    decision = services.decision_validate(item=item, verdict="reject")
    services.item_adjudicate(item=stored(item), admin=lead, decision=decision)

    with pytest.raises(UndoRefused, match="Nothing to undo"):
        services.review_undo(item=item, reviewer=lead)

    assert stored(item).status == "done"


def test_it_writes_nothing_when_the_item_moved_before_the_swap(reviewer, agent):
    """The compare-and-swap on the version the decision left: the pair removed by the
    receiver comes back with everything else."""
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    ReviewItem.objects.filter(pk=item.pk).update(version=99)

    with pytest.raises(Conflict):
        services.review_undo(item=item, reviewer=reviewer)

    assert_untouched(item, "done", reviews=1, pairs=1)
    assert stored(item).claimed_by is None


# --- what the pages are told ------------------------------------------------------------------


def test_it_offers_the_latest_decision_for_a_minute(reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    outcome = decide(item, reviewer, "approve")

    offered = selectors.undoable_decision(reviewer)
    assert (offered.pk, offered.item_id) == (outcome.review.pk, item.pk)
    assert offered.undo_until == offered.created_at + timedelta(minutes=1)
    age(outcome, seconds=61)
    assert selectors.undoable_decision(reviewer) is None


def test_it_offers_nothing_once_another_reviewer_holds_the_item(
    reviewer, other_reviewer, four_eyes
):
    ReviewItemFactory(interaction__agent=four_eyes)
    item = claim(reviewer)
    decide(item, reviewer, "approve")
    claim(other_reviewer)

    assert selectors.undoable_decision(reviewer) is None


# --- under concurrency (PostgreSQL) -------------------------------------------------------------


def race(*callables) -> list:
    """Runs the callables at once in threads (own connections); returns what each returned
    or raised."""
    barrier = threading.Barrier(len(callables))
    results: list = [None] * len(callables)

    def run(i, fn):
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(callables)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_undoes_once_when_undo_is_sent_twice_at_once():
    agent = AgentFactory(slug="support-bot", domain="support")
    rita = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    for _ in range(5):
        ReviewItemFactory(interaction__agent=agent)
        item = claim(rita)
        decide(item, rita, "approve")

        results = race(*[lambda item=item: services.review_undo(item=item, reviewer=rita)] * 4)

        assert sum(isinstance(r, ReviewItem) for r in results) == 1
        assert all(isinstance(r, ReviewItem | UndoRefused) for r in results), results
        assert (stored(item).status, stored(item).claimed_by) == ("claimed", rita)
        decide(stored(item), rita, "reject")  # done, so the next round gets a new item
    assert AuditEvent.objects.filter(action="review.undone").count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_lets_either_the_undo_or_a_second_reviewers_claim_win_never_both():
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    rita = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    oscar = UserFactory(username="oscar", roles=["reviewer"], domains=["support"])
    for _ in range(8):
        ReviewItemFactory(interaction__agent=agent)
        item = claim(rita)
        decide(item, rita, "approve")

        undone, claimed = race(
            lambda item=item: services.review_undo(item=item, reviewer=rita),
            lambda: services.item_claim(reviewer=oscar),
        )

        item = stored(item)
        if isinstance(undone, ReviewItem):
            assert claimed is None
            assert (item.claimed_by, Review.objects.filter(item=item).count()) == (rita, 0)
            decide(item, rita, "reject")
            decide(claim(oscar), oscar, "reject")
        else:
            assert isinstance(undone, UndoRefused), undone
            assert claimed.pk == item.pk
            assert (item.claimed_by, Review.objects.filter(item=item).count()) == (oscar, 1)
            decide(item, oscar, "approve")
        assert item.status == "claimed"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_waits_for_a_running_selection_and_then_refuses_the_exported_pair():
    """A batch selecting the agent's pairs holds the removal lock: the undo waits for it,
    then sees the pair in the batch and refuses, instead of deleting a pair the batch holds
    (BatchPair has no foreign key to stop it)."""
    agent = AgentFactory(slug="support-bot", domain="support")
    rita = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    ReviewItemFactory(interaction__agent=agent)
    item = claim(rita)
    pair = decide(item, rita, "approve").pair
    batch = ExportBatchFactory(agent=agent, building=True)
    selecting, finish = threading.Event(), threading.Event()

    def selection():
        from django.db import transaction

        with transaction.atomic():
            build.pair_removal_lock(agent.pk, exclusive=False)
            selecting.set()
            finish.wait(30)
            BatchPair.objects.create(batch=batch, pair_id=pair.pk)

    def waiting_for_lock() -> bool:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            return cursor.fetchone()[0] > 0

    results: list = []
    selector = threading.Thread(target=lambda: race(selection))
    selector.start()
    selecting.wait(30)
    undo = threading.Thread(
        target=lambda: results.extend(race(lambda: services.review_undo(item=item, reviewer=rita)))
    )
    undo.start()
    wait_for(waiting_for_lock)
    finish.set()
    selector.join(30)
    undo.join(30)

    assert isinstance(results[0], UndoRefused), results
    assert f"export batch #{batch.pk}" in str(results[0])
    assert TrainingPair.objects.filter(pk=pair.pk).exists()
    assert stored(item).status == "done"
