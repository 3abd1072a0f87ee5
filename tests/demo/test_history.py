"""The demo's replayed weeks (issue "Day one"): on the first run every role finds a history
and work to do. One demo per module (`seeded_demo`, tests/demo/conftest.py), read only."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from accounts.models import ReviewerProfile
from agents.models import Interaction
from core.models import AuditEvent
from demo.reviewing import REVIEW_LAG_DAYS
from kpis.models import KpiRun, KpiSnapshot
from retraining.models import ExportBatch, TrainingPair
from reviews import selectors
from reviews.models import Review, ReviewItem

pytestmark = pytest.mark.usefixtures("db", "seeded_demo")


def test_it_gives_every_domain_at_least_two_reviewers_who_worked_it():
    for domain in ("legal", "support", "product"):
        pool = [p.user_id for p in ReviewerProfile.objects.all() if domain in p.domains]
        worked = (
            Review.objects.filter(item__domain=domain, reviewer__in=pool, is_adjudication=False)
            .values("reviewer")
            .distinct()
        )
        assert len(pool) >= 2, domain
        assert worked.count() >= 2, domain
    legal = [p for p in ReviewerProfile.objects.all() if "legal" in p.domains]
    assert len(legal) >= 3


def test_it_decides_items_with_every_verdict():
    verdicts = set(Review.objects.values_list("verdict", flat=True))
    finals = set(ReviewItem.objects.values_list("final_verdict", flat=True))

    assert {"approve", "correct", "reject", "escalate"} <= verdicts
    assert {"approve", "correct", "reject"} <= finals


def test_it_records_categories_notes_and_times_with_the_decisions():
    flagged = Review.objects.filter(verdict__in=["correct", "reject", "escalate"])

    assert flagged.exists()
    assert not flagged.filter(error_category__isnull=True).exists()
    assert not flagged.filter(notes="").exists()
    assert not Review.objects.filter(seconds_spent__isnull=True).exists()


def test_it_corrects_with_an_edited_output_from_the_texts():
    corrections = Review.objects.filter(verdict="correct").select_related("item__interaction")

    assert corrections.exists()
    for review in corrections:
        assert review.corrected_output.strip()
        assert review.corrected_output != review.item.interaction.output


def test_it_completes_four_eyes_items_with_two_agreeing_reviewers():
    done = (
        ReviewItem.objects.filter(required_reviews=2, status="done")
        .exclude(reviews__is_adjudication=True)
        .annotate(
            n=Count("reviews", filter=~Q(reviews__verdict="skip")),
            people=Count("reviews__reviewer", distinct=True),
        )
        .filter(n=2, people=2)
    )

    assert done.exists()
    for item in done[:20]:
        verdicts = {r.verdict for r in item.reviews.exclude(verdict="skip")}
        assert verdicts == {item.final_verdict}


def test_it_leaves_disagreements_to_a_lead_who_adjudicates_the_older_ones():
    adjudicated = Review.objects.filter(is_adjudication=True).select_related("item", "reviewer")

    assert adjudicated.exists()
    for review in adjudicated:
        assert review.reviewer.username == "admin"
        assert review.item.status == "done"
        assert review.item.final_verdict == review.verdict
        first = review.item.reviews.exclude(pk=review.pk).aggregate(last=Max("created_at"))
        assert first["last"] < review.created_at


def test_it_makes_a_training_pair_of_every_approved_or_corrected_item():
    made = ReviewItem.objects.filter(status="done", final_verdict__in=["approve", "correct"])

    assert TrainingPair.objects.count() == made.count() > 0
    corrected = TrainingPair.objects.filter(source="correct").select_related("interaction")
    assert corrected.exists()
    assert all(p.rejected_output == p.interaction.output for p in corrected)


def test_it_builds_ready_batches_for_the_ml_engineer():
    batches = list(ExportBatch.objects.order_by("pk").select_related("created_by"))

    assert batches
    for batch in batches:
        assert batch.status == "ready"
        assert batch.created_by.username == "mia"
        assert batch.row_count > 0
        assert default_storage.exists(batch.file.name)
        assert batch.manifest["created_at"] == batch.created_at.isoformat()
        assert batch.created_at < timezone.now() - timedelta(days=REVIEW_LAG_DAYS - 1)
    assert batches[0].trained_agent_version  # it trained the agent's next release


def test_it_recomputes_the_kpis_with_agreement_and_calibration_data():
    stats = list(KpiSnapshot.objects.filter(agent_version="").values_list("stats", flat=True))

    assert KpiRun.objects.filter(state="done", mode="full").exists()
    assert any(s.get("fe_pairs") for s in stats)
    assert any(n for s in stats for n, *_ in (s.get("cal") or {}).values())
    assert any((s.get("decisions") or {}).get("approve") for s in stats)


def test_it_leaves_pending_work_in_every_reviewers_queue():
    reviewers = get_user_model().objects.filter(reviewer_profile__isnull=False)

    assert reviewers.count() >= 7
    for user in reviewers:
        assert selectors.claimable_items(user).exists(), user.username


def test_it_spreads_the_decisions_over_past_weeks_in_office_hours():
    reviews = Review.objects.filter(is_adjudication=False)
    times = list(reviews.values_list("created_at", flat=True))
    last_day = (timezone.now() - timedelta(days=REVIEW_LAG_DAYS)).astimezone(UTC).date()

    assert len({t.date() for t in times}) >= 15
    assert all(t.astimezone(UTC).date() <= last_day for t in times)
    assert all(7 <= t.astimezone(UTC).hour < 20 for t in times)
    assert all(t.astimezone(UTC).weekday() < 5 for t in times)


def test_it_decides_items_only_after_they_arrived():
    late = ReviewItem.objects.annotate(
        first=Min("reviews__created_at"), last=Max("reviews__created_at")
    )
    for item in late.filter(first__isnull=False).select_related("interaction"):
        assert item.interaction.created_at <= item.created_at < item.first
        if item.decided_at:
            assert item.decided_at == item.last


def test_it_dates_the_audit_log_like_the_history():
    item = (
        ReviewItem.objects.filter(status="done", required_reviews=1)
        .annotate(n=Count("reviews"))
        .filter(n=1)
        .first()
    )
    events = AuditEvent.objects.filter(target_type="review_item", target_id=item.pk)

    decided = events.get(action="item.decided")
    assert decided.created_at == item.decided_at == item.reviews.get().created_at
    assert events.get(action="item.claimed").created_at <= decided.created_at
    assert decided.created_at < datetime.now(UTC) - timedelta(days=REVIEW_LAG_DAYS - 1)


def test_it_queues_the_newest_items_untouched():
    open_items = ReviewItem.objects.filter(status__in=ReviewItem.OPEN_STATUSES)
    newest = Interaction.objects.filter(created_at__gte=timezone.now() - timedelta(hours=12))

    assert open_items.count() >= 10
    assert newest.filter(review_item__isnull=False).exists()
    assert not Review.objects.filter(item__interaction__in=newest).exists()
