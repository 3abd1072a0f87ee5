"""The transactional outbox (reviews/outbox.py): work is recorded with the change that needs
it, sent after the commit, kept while the broker is down and swept later."""

import os
import uuid
from datetime import timedelta

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from core import outbox
from core.models import OutboxMessage
from ingest.services import interactions_ingest
from reviews.models import ReviewItem
from tests.conftest import celery_eager, celery_sends_to
from tests.factories import AgentFactory, OutboxMessageFactory, ReviewItemFactory, UserFactory

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture(autouse=True)
def _closed_breaker():
    outbox._Breaker.reset()
    yield
    outbox._Breaker.reset()


def _record(external_id, confidence):
    return {
        "external_id": external_id,
        "agent": "support-bot",
        "input": "Q?",
        "output": "A.",
        "confidence": confidence,
    }


def test_a_rolled_back_change_sends_nothing(transactional_db):
    with (
        celery_sends_to(DEAD_BROKER, "unused"),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outbox.outbox_enqueue("console.tasks.items_autoassign")
        raise RuntimeError("the change fails")
    assert not OutboxMessage.objects.exists()


def test_a_message_the_broker_cannot_take_is_kept_with_the_reason(transactional_db):
    with celery_sends_to(DEAD_BROKER, "unused"), transaction.atomic():
        outbox.outbox_enqueue("console.tasks.items_autoassign")
    message = OutboxMessage.objects.get()
    assert message.attempts == 1
    assert "Error" in message.last_error or "refused" in message.last_error.lower()


def test_after_a_failure_the_process_stops_trying_for_a_while(transactional_db):
    with celery_sends_to(DEAD_BROKER, "unused"):
        with transaction.atomic():
            outbox.outbox_enqueue("console.tasks.items_autoassign")
        with transaction.atomic():
            outbox.outbox_enqueue("console.tasks.items_autoassign")
    second = OutboxMessage.objects.order_by("pk").last()
    assert "waiting before the next attempt" in second.last_error


@pytest.mark.redis
def test_the_sweep_sends_kept_messages_once_the_broker_answers(transactional_db):
    queue = f"outbox-{uuid.uuid4().hex[:8]}"
    OutboxMessageFactory(due=True)
    OutboxMessageFactory(due=True, task="kpis.tasks.run_recompute", args=[7])
    broker = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    try:
        with celery_sends_to(os.environ["TEST_REDIS_URL"], queue):
            assert outbox.outbox_sweep() == {"sent": 2, "kept": 0}
            assert outbox.outbox_sweep() == {"sent": 0, "kept": 0}
        assert broker.llen(queue) == 2  # two messages wait in the worker's queue
        assert not OutboxMessage.objects.exists()
    finally:
        broker.delete(queue)


def test_the_sweep_leaves_fresh_messages_to_the_commit_hook(transactional_db):
    OutboxMessageFactory()  # due in 30 s
    with celery_sends_to(DEAD_BROKER, "unused"):
        assert outbox.outbox_sweep() == {"sent": 0, "kept": 0}
    assert OutboxMessage.objects.get().attempts == 0


def test_the_sweep_stops_at_the_first_failure_and_keeps_the_rest(transactional_db):
    past = timezone.now() - timedelta(minutes=1)
    for _ in range(3):
        OutboxMessageFactory(next_attempt_at=past)
    with celery_sends_to(DEAD_BROKER, "unused"):
        assert outbox.outbox_sweep() == {"sent": 0, "kept": 3}
    assert sorted(OutboxMessage.objects.values_list("attempts", flat=True)) == [0, 0, 1]


def test_embedded_mode_runs_the_work_in_process_and_forgets_the_message(transactional_db):
    AgentFactory(slug="support-bot", domain="support", auto_assign=True)
    reviewer = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    item = ReviewItemFactory(interaction__agent__slug="support-bot")
    with celery_eager(), transaction.atomic():  # no broker: like `make run`
        outbox.outbox_enqueue("console.tasks.items_autoassign")
    assert not OutboxMessage.objects.exists()
    assert ReviewItem.objects.get(pk=item.pk).assigned_to == reviewer


def test_health_is_degraded_while_messages_wait_too_long(client, db, settings):
    assert client.get("/healthz").json()["outbox"] == {"pending": 0, "oldest_seconds": None}
    OutboxMessageFactory(
        task="t", next_attempt_at=timezone.now(), created_at=timezone.now() - timedelta(minutes=5)
    )
    settings.OUTBOX_STALE_SECONDS = 120
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["outbox"]["pending"] == 1 and body["outbox"]["oldest_seconds"] >= 300


def test_ingest_sends_the_assignment_follow_up_only_for_auto_assigning_agents(
    transactional_db, pipeline
):
    agent = AgentFactory(slug="support-bot", domain="support", confidence_threshold=0.5)
    with celery_sends_to(DEAD_BROKER, "unused"):
        interactions_ingest(records=enumerate([_record("a", 0.1)]), actor_id=pipeline.pk)
        assert not OutboxMessage.objects.exists()  # routed, but nobody auto-assigns
        agent.auto_assign = True
        agent.save()
        interactions_ingest(records=enumerate([_record("b", 0.9)]), actor_id=pipeline.pk)
        assert not OutboxMessage.objects.exists()  # auto-assigns, but nothing routed
        interactions_ingest(records=enumerate([_record("c", 0.1)]), actor_id=pipeline.pk)
    assert list(OutboxMessage.objects.values_list("task", "args")) == [
        ("console.tasks.items_autoassign", [])
    ]
