"""16 reviewers working one queue of 2,000 items at once, on PostgreSQL."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from core.models import AuditEvent
from ingest.services import interactions_ingest
from retraining.models import TrainingPair
from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

N_ITEMS = 2000
N_REVIEWERS = 16


def test_it_decides_every_item_exactly_once_under_16_concurrent_reviewers():
    AgentFactory(slug="support-bot", domain="support", audit_rate=0)
    AgentFactory(slug="legal-bot", domain="legal", audit_rate=0, required_reviews=2)
    records = [
        {
            "external_id": f"t-{i}",
            "agent": "legal-bot" if i % 4 == 0 else "support-bot",
            "input": f"Question {i}",
            "output": f"Answer {i}",
            "confidence": (i % 60) / 100,
        }
        for i in range(N_ITEMS)
    ]
    assert interactions_ingest(records=enumerate(records)).routed == N_ITEMS
    reviewers = [
        UserFactory(username=f"r{i}", roles=["reviewer"], domains=["support", "legal"])
        for i in range(N_REVIEWERS)
    ]
    errors: list[BaseException] = []
    decided_by: Counter = Counter()

    def work(reviewer) -> None:
        try:
            idle_since = None
            while True:
                item = services.item_claim(reviewer=reviewer)
                if item is None:
                    # Four-eyes items this reviewer already saw may still be waiting for others.
                    if not ReviewItem.objects.exclude(status="done").exists():
                        return
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 30:
                        raise TimeoutError("queue did not drain")
                    time.sleep(0.01)
                    continue
                idle_since = None
                decision = services.decision_validate(item=item, verdict="approve", seconds_spent=1)
                services.review_submit(
                    item=item, reviewer=reviewer, decision=decision, expected_version=item.version
                )
                decided_by[reviewer.username] += 1
        except BaseException as exc:  # reported below; a thread must not die silently
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    assert errors == []
    assert ReviewItem.objects.exclude(status="done").count() == 0
    reviews_per_item = Counter(Review.objects.values_list("item_id", flat=True))
    four_eyes = set(ReviewItem.objects.filter(required_reviews=2).values_list("pk", flat=True))
    assert len(four_eyes) == N_ITEMS // 4
    assert all(reviews_per_item[pk] == 2 for pk in four_eyes)
    assert all(n == 1 for pk, n in reviews_per_item.items() if pk not in four_eyes)
    assert len(reviews_per_item) == N_ITEMS
    pairs_of_reviewers = Review.objects.filter(item_id__in=four_eyes).values_list(
        "item_id", "reviewer_id"
    )
    reviewers_per_item: dict[int, set[int]] = {}
    for item_id, reviewer_id in pairs_of_reviewers:
        reviewers_per_item.setdefault(item_id, set()).add(reviewer_id)
    assert all(len(people) == 2 for people in reviewers_per_item.values())
    # Every decision is there: no review lost, one training pair per decided item.
    assert sum(decided_by.values()) == Review.objects.count() == N_ITEMS + len(four_eyes)
    assert TrainingPair.objects.count() == N_ITEMS
    assert AuditEvent.objects.filter(action="item.claimed").count() == Review.objects.count()
    assert len(decided_by) > 1  # the work really was shared
