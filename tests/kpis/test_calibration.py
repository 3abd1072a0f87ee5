"""Calibration on a synthetic agent whose true approval probability per confidence is known.

The agent's responses have a uniform confidence; a reviewer approves a response with
probability 0.30 below confidence 0.5, 0.60 from 0.5 to 0.8 and 0.99 from 0.8 on. As in
production, everything below the 0.7 threshold is reviewed and a 25% audit sample above
it; on top, 300 confident responses drew complaints and were reviewed and rejected
(reason `feedback`): calibration must not count those.
"""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import transaction

from agents.models import Interaction
from kpis import compute, selectors, services
from kpis.models import KpiSnapshot
from reviews.models import ReviewItem
from tests import factories

# Marked so the test database is set up for this module (the module fixture uses it).
pytestmark = pytest.mark.django_db

N = 10_000
DAY = date(2026, 11, 2)
START = datetime(2026, 11, 2, tzinfo=UTC)


def true_approval(confidence: float) -> float:
    return 0.30 if confidence < 0.5 else 0.60 if confidence < 0.8 else 0.99


@pytest.fixture(scope="module")
def synthetic(django_db_setup, django_db_blocker):
    """Builds the data once for the module (10,000 responses), recomputes, and keeps what
    the tests read: the stored calibration counts and the calibration page's view. The
    rows are rolled back at the end."""
    with django_db_blocker.unblock(), transaction.atomic():
        agent = factories.AgentFactory(slug="synthetic", confidence_threshold=0.7)
        rng = random.Random(20261102)
        interactions = Interaction.objects.bulk_create(
            factories.InteractionFactory.build(
                agent=agent,
                external_id=f"s-{i}",
                input="q",
                output="a",
                domain="",
                confidence=rng.random(),
                created_at=START + timedelta(seconds=i),
            )
            for i in range(N)
        )
        items = []
        complaints = 0
        for interaction in interactions:
            c = interaction.confidence
            if c < 0.7:
                reason = ReviewItem.Reason.LOW_CONFIDENCE
            elif rng.random() < 0.25:
                reason = ReviewItem.Reason.AUDIT_SAMPLE
            elif c >= 0.9 and complaints < 300:
                complaints += 1
                items.append(_item(interaction, ReviewItem.Reason.FEEDBACK, "reject"))
                continue
            else:
                continue
            approved = rng.random() < true_approval(c)
            items.append(_item(interaction, reason, "approve" if approved else "correct"))
        ReviewItem.objects.bulk_create(items)
        services.kpis_recompute(agent_ids=[agent.pk], since=DAY, now=START + timedelta(days=1))
        filters = selectors.Filters(agent, "", DAY, DAY)
        view = selectors.calibration(filters, target=0.95)
        stats = KpiSnapshot.objects.get(agent=agent, agent_version="", date=DAY).stats
        complaints_stored = ReviewItem.objects.filter(agent=agent, reason="feedback").count()
        transaction.set_rollback(True)
    return {"cal": stats["cal"], "view": view, "complaints": complaints_stored}


def _item(interaction, reason, verdict):
    """A decided item, unsaved (the fixture inserts them in bulk)."""
    return factories.ReviewItemFactory.build(
        interaction=interaction,
        domain="support",
        reason=reason,
        done=True,
        final_verdict=verdict,
        decided_at=interaction.created_at + timedelta(minutes=5),
    )


def _calibration(synthetic, target=0.95):
    return compute.calibration(synthetic["cal"], target=target)


def test_it_recovers_the_true_approval_rate_of_every_bucket_within_its_interval(synthetic):
    result = _calibration(synthetic)
    assert len(result.buckets) == 10
    for bucket in result.buckets:
        truth = true_approval(bucket.low)
        assert bucket.rate_low <= truth <= bucket.rate_high, bucket
    # below the threshold every response is reviewed; above it about a quarter
    assert result.buckets[0].n == result.buckets[0].interactions
    assert 0.2 < result.buckets[9].n / result.buckets[9].interactions < 0.3


def test_it_leaves_complaint_items_out_of_calibration(synthetic):
    top = _calibration(synthetic).buckets[9]
    # with the 300 rejected complaints counted, the top bucket would sit near 0.76
    assert top.rate > 0.97
    assert synthetic["complaints"] == 300


def test_it_suggests_the_threshold_that_meets_the_target_approval(synthetic):
    result = _calibration(synthetic, target=0.95)
    # Above 0.8 responses are approved 99% of the time; above 0.75 a fifth of them come
    # from the 60% range: 0.2 × 0.60 + 0.8 × 0.99 = 0.912 < 0.95. So 0.8 is the lowest.
    assert result.suggested.threshold == 0.8
    assert result.suggested.approval == pytest.approx(0.99, abs=0.01)
    # every response below 0.8 would be reviewed: 80% of a uniform confidence
    assert result.suggested.load == pytest.approx(0.80, abs=0.01)
    below = next(p for p in result.curve if p.threshold == 0.75)
    assert below.approval < 0.95


def test_it_suggests_a_lower_threshold_for_a_lower_target(synthetic):
    result = _calibration(synthetic, target=0.5)
    # over all responses: 0.5 × 0.30 + 0.3 × 0.60 + 0.2 × 0.99 = 0.528 ≥ 0.5, so the
    # target is met without reviewing anything
    assert result.suggested.threshold == 0.0
    assert result.suggested.load == 0.0


def test_it_computes_the_expected_calibration_error(synthetic):
    result = _calibration(synthetic)
    # |approval − mean confidence| per bucket (uniform: each bucket holds a tenth):
    # .25 .15 .05 .05 .15 | .05 .05 .15 | .14 .04 → 1.08 / 10
    assert result.ece == pytest.approx(0.108, abs=0.01)


def test_it_estimates_the_current_thresholds_approval_and_load(synthetic):
    view = synthetic["view"]
    assert view["result"].suggested.threshold == 0.8
    assert view["current"].threshold == 0.7
    # above 0.7: a third from the 60% range, two thirds from the 99% range → 0.86
    assert view["current"].approval == pytest.approx(0.86, abs=0.02)
    assert view["current"].load == pytest.approx(0.70, abs=0.01)


def test_it_finds_no_threshold_when_no_range_meets_the_target():
    cal = {"19": [100, 100, 90, 97.5]}  # even the top bucket is approved 90% of the time
    result = compute.calibration(cal, target=0.95)
    assert result.suggested is None
    assert result.buckets[9].rate == 0.9
