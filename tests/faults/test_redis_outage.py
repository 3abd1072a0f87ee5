"""Redis dies in the middle of a 10,000-interaction ingest and comes back.

Ingest keeps answering 200, /healthz says "degraded", and once Redis is back the outbox
sweep sends the follow-up work the broker missed: every routed item is there and assigned.
"""

import random

import pytest

from accounts.models import ReviewerProfile
from agents.models import Interaction
from core import outbox, tasks
from core.models import OutboxMessage
from reviews.models import ReviewItem
from tests.conftest import wait_for
from tests.factories import AgentFactory, UserFactory

pytestmark = [
    pytest.mark.faults,
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery_worker,
]

TOTAL = 10_000
PER_REQUEST = 500
THRESHOLD = 0.3


def _records(start: int, n: int, rng: random.Random) -> list[dict]:
    return [
        {
            "external_id": f"outage-{i}",
            "agent": "support-bot",
            "input": f"Question {i}?",
            "output": f"Answer {i}.",
            "confidence": round(rng.random(), 4),
        }
        for i in range(start, start + n)
    ]


def _review_one(reviewer_api) -> tuple[int, int]:
    """Claims the next item and approves it through the API: (claim status, decision status)."""
    claim = reviewer_api.post("/api/v1/queue/claim", {})
    if claim.status_code != 200:
        return claim.status_code, 0
    item_id = claim.json()["item"]["id"]
    decision = reviewer_api.post(f"/api/v1/items/{item_id}/decision", {"verdict": "approve"})
    return claim.status_code, decision.status_code


@pytest.fixture
def auto_assigning_pool(transactional_db):
    agent = AgentFactory(
        slug="support-bot", domain="support", confidence_threshold=THRESHOLD, auto_assign=True
    )
    reviewers = [
        UserFactory(username=f"pool-{n}", roles=["reviewer"], domains=["support"]) for n in range(4)
    ]
    ReviewerProfile.objects.filter(user__in=reviewers).update(daily_capacity=5000)
    return agent, reviewers


def test_ingest_and_follow_up_work_survive_a_redis_outage(
    private_redis, private_worker, auto_assigning_pool, api_client, pipeline, client, settings
):
    settings.OUTBOX_GRACE_SECONDS = 1  # the sweep may take a kept message a second later
    agent, reviewers = auto_assigning_pool
    rng = random.Random(7)
    ingest = api_client(pipeline)
    statuses = []
    health_during = None
    for n, start in enumerate(range(0, TOTAL, PER_REQUEST)):
        if n == 6:
            private_redis.stop()  # mid-ingest, like a crash
        if n == 14:
            health_during = client.get("/healthz").json()
            decided_during = _review_one(api_client(reviewers[0]))
            private_redis.start()
        response = ingest.post("/api/v1/interactions", _records(start, PER_REQUEST, rng))
        statuses.append(response.status_code)
        assert response.json()["errors"] == []

    # Ingest never stopped answering, and the health check saw the outage.
    assert statuses == [200] * (TOTAL // PER_REQUEST)
    assert health_during["status"] == "degraded"
    assert health_during["redis"].startswith("down")
    assert health_during["outbox"]["pending"] > 0  # follow-ups waiting for the broker
    assert decided_during == (200, 200)  # reviewing went on too

    # Every interaction is stored, and exactly the low-confidence ones are routed.
    assert Interaction.objects.count() == TOTAL
    expected = set(
        Interaction.objects.filter(confidence__lt=THRESHOLD).values_list("pk", flat=True)
    )
    assert set(ReviewItem.objects.values_list("interaction_id", flat=True)) == expected
    assert len(expected) > 2000

    # Redis is back: the periodic sweep (sent through the broker, as beat would) publishes
    # what was kept, and the worker assigns every routed item.
    def beat_tick() -> bool:
        tasks.outbox_sweep.delay()
        return not OutboxMessage.objects.exists()

    wait_for(beat_tick, timeout=90, interval=2)

    def all_assigned() -> bool:
        if ReviewItem.objects.filter(assigned_to__isnull=True, status="pending").exists():
            tasks.outbox_sweep.delay()  # beat keeps ticking
            return False
        return True

    wait_for(all_assigned, timeout=90, interval=2)
    loads = sorted(
        ReviewItem.objects.filter(assigned_to__isnull=False)
        .values_list("assigned_to", flat=True)
        .distinct()
    )
    assert len(loads) == 4  # spread over the whole pool
    assert outbox.outbox_backlog() == {"pending": 0, "oldest_seconds": None}
    assert client.get("/healthz").json()["status"] == "ok"
