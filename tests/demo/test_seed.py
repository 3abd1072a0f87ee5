import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents.models import Agent, FeedbackEvent, Interaction
from core.models import AuditEvent
from demo.content import AGENT_SLUGS
from kpis.models import KpiSnapshot
from retraining.models import ExportBatch, TrainingPair
from reviews.models import Review, ReviewItem
from tests.demo.conftest import N, seed

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture
def seeded(seeded_demo):
    return seeded_demo


def test_it_creates_the_three_agents_with_their_review_policy(seeded):
    agents = {a.slug: a for a in Agent.objects.all()}

    support = agents["support-bot"]
    assert (support.kind, support.domain) == ("chat", "support")
    assert (support.confidence_threshold, support.audit_rate) == (0.7, 0.03)
    assert support.required_reviews == 1
    assert support.guidelines.startswith("## ")
    legal = agents["legal-bot"]
    assert (legal.kind, legal.domain, legal.confidence_threshold) == ("chat", "legal", 0.8)
    assert legal.required_reviews == 2
    assert legal.review_intents == ["contract_termination"]
    assert legal.guidelines
    recommender = agents["product-recommender"]
    assert (recommender.kind, recommender.domain) == ("recommender", "product")
    assert recommender.confidence_threshold == 0.6


def test_it_creates_the_demo_users_with_their_roles(seeded):
    users = {u.username: u for u in get_user_model().objects.prefetch_related("groups")}

    def roles(name):
        return {g.name for g in users[name].groups.all()}

    assert roles("admin") == {"admin"}
    assert users["admin"].is_staff and users["admin"].is_superuser
    assert roles("lena") == {"reviewer"}
    assert users["lena"].reviewer_profile.domains == ["legal"]
    assert roles("sam") == {"reviewer"}
    assert users["sam"].reviewer_profile.domains == ["support", "product"]
    assert roles("mia") == {"ml"}
    assert not users["mia"].is_staff
    for name in ("omar", "priya"):
        assert roles(name) == {"reviewer"}
        assert users[name].reviewer_profile.domains == ["legal"]
    for name in ("jonas", "ines"):
        assert users[name].reviewer_profile.domains == ["support"]
    assert users["kai"].reviewer_profile.domains == ["product"]
    for name in ("admin", "lena", "sam", "mia", "omar", "priya", "jonas", "ines", "kai"):
        assert users[name].check_password("coachdesk-demo"), name
    assert roles("pipeline") == {"agent"}
    assert not users["pipeline"].has_usable_password()


def test_it_prints_the_logins(seeded):
    assert "password coachdesk-demo" in seeded
    for name in ("admin", "lena", "omar", "priya", "sam", "jonas", "ines", "kai", "mia"):
        assert f"{name} (" in seeded
    assert "pipeline" in seeded


def test_it_prints_what_the_history_left(seeded):
    reviews = Review.objects.count()
    pairs = TrainingPair.objects.count()

    assert f"Review history (replayed now): {reviews} reviews by 7 reviewers" in seeded
    assert f"Training pairs: {pairs}; export batches: #" in seeded
    assert "support-bot jsonl ready" in seeded
    assert "Open for review: legal " in seeded


def test_it_prints_the_redactions_and_the_deadlines(seeded):
    emails = sum(
        r.get("email", 0)
        for r in Interaction.objects.filter(agent__slug="support-bot").values_list(
            "redactions", flat=True
        )
    )
    open_due = ReviewItem.objects.filter(
        agent__slug="legal-bot", status__in=ReviewItem.OPEN_STATUSES, due_at__isnull=False
    ).count()

    assert emails > 0
    assert f"Personal data redacted at ingest (support-bot's policy): email {emails}," in seeded
    assert open_due > 0
    assert f"Review deadlines (legal-bot, 4 working hours): {open_due} open, " in seeded


def test_it_spreads_interactions_over_the_last_30_days(seeded):
    now = timezone.now()
    times = list(Interaction.objects.values_list("created_at", flat=True))

    assert len(times) == N
    assert all(now - timedelta(days=30) <= t <= now for t in times)
    assert len({t.date() for t in times}) >= 20


def test_it_gives_each_agent_several_versions(seeded):
    for slug in AGENT_SLUGS:
        versions = Interaction.objects.filter(agent__slug=slug).values("agent_version")
        assert versions.distinct().count() >= 2, slug


def test_it_routes_items_for_more_than_one_reason(seeded):
    reasons = set(ReviewItem.objects.values_list("reason", flat=True))

    assert {"low_confidence", "rule", "feedback"} <= reasons


def test_it_queues_legal_items_for_two_reviewers(seeded):
    legal = ReviewItem.objects.filter(agent__slug="legal-bot")

    assert legal.exists()
    assert set(legal.values_list("required_reviews", flat=True)) == {2}
    assert legal.filter(reason="rule", interaction__intent="contract_termination").exists()


def test_it_records_recommender_feedback_on_the_recommended_products(seeded):
    events = FeedbackEvent.objects.filter(agent__slug="product-recommender").select_related(
        "interaction"
    )

    assert {e.kind for e in events} == {"clicked", "skipped"}
    for event in events:
        assert re.fullmatch(r"P-\d{5}", event.item_ref)
        assert event.item_ref in event.interaction.output
        assert event.created_at > event.interaction.created_at


def test_it_records_chat_feedback(seeded):
    kinds = set(
        FeedbackEvent.objects.filter(agent__slug__in=["support-bot", "legal-bot"]).values_list(
            "kind", flat=True
        )
    )

    assert {"thumbs_up", "thumbs_down", "resolved", "escalated"} <= kinds


def test_it_includes_untrusted_text_for_the_ui(seeded):
    assert Interaction.objects.filter(output__contains="<script>alert(1)</script>").exists()
    assert Interaction.objects.filter(input__contains="מחזיר").exists()  # Hebrew
    assert Interaction.objects.filter(input__contains="طلبي").exists()  # Arabic


def test_it_writes_through_the_ingest_path(seeded):
    ingests = AuditEvent.objects.filter(action="interactions.ingested")

    assert ingests.exists()
    assert {e.after["source"] for e in ingests} == {"demo"}


def _counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (
            Interaction,
            ReviewItem,
            FeedbackEvent,
            get_user_model(),
            Agent,
            Review,
            TrainingPair,
            ExportBatch,
        )
    )


def test_it_creates_no_duplicates_when_run_twice(seeded):
    counts = _counts()
    statuses = list(ReviewItem.objects.order_by("pk").values_list("status", flat=True))

    output = seed()

    assert f"imported 0, duplicates {N}, rejected 0" in output
    assert "Review history (kept as it was)" in output
    assert _counts() == counts
    assert list(ReviewItem.objects.order_by("pk").values_list("status", flat=True)) == statuses


def test_it_recomputes_the_kpis_once_seeded(seeded):
    assert KpiSnapshot.objects.filter(agent_version="", stats__has_key="decisions").exists()
    assert "KPI snapshots: " in seeded
