"""A small hand-built data set whose KPIs are worked out by hand in the tests.

Agent `shop-bot`, versions v1 and v2, days (UTC) Mon 2 Nov, Tue 3 Nov (nothing happens),
Wed 4 Nov; "now" is Thu 5 Nov 12:00.

Interactions (UTC; resolved / escalated / sentiment / turns / confidence), and their item:
- i1 2 Nov 09:00 v1  yes / no / 0.5 / 4 / 0.90   audit, queued 09:10, approved 09:40
- i2 2 Nov 10:00 v1  no / yes / -0.5 / 6 / 0.30  low conf., queued 10:05, approved 11:05
- i3 2 Nov 11:00 v1  yes / no / 1.0 / 2 / 0.60   low conf., queued 11:00, corrected 4 Nov 11:00
- i4 2 Nov 12:00 v1  – / – / – / – / 0.20         low conf., queued 12:10, open (skipped 13:00)
- i5 2 Nov 13:00 v2  yes / no / 0.0 / 3 / 0.95
- i6 2 Nov 14:00 v2  yes / no / 0.5 / 5 / 0.85
- i7 4 Nov 00:00 v2  no / no / -1.0 / 8 / 0.10
- i8 4 Nov 10:00 v2  yes / no / 0.5 / 2 / 0.75

Feedback: i1 clicked P9; i5 clicked P1, skipped P2, skipped P3 (sent 4 Nov), thumbs_up;
i6 skipped P2. Version v2 has no reviews at all.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from agents.models import Agent, FeedbackEvent, Interaction
from reviews.models import Review, ReviewItem
from tests import factories

NOW = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


@dataclass
class Dataset:
    agent: Agent
    interactions: dict[str, Interaction]
    items: dict[str, ReviewItem]
    reviewer: object


def make_interaction(agent, version, created_at, **fields) -> Interaction:
    return factories.InteractionFactory(
        agent=agent, agent_version=version, created_at=created_at, **fields
    )


def make_item(interaction, *, reason, queued, decided=None, verdict="approve") -> ReviewItem:
    """A review item with the given queue and decision times (auto_now_add fields are set
    after the insert, as the ORM ignores values passed for them)."""
    item = factories.ReviewItemFactory(
        interaction=interaction,
        reason=reason,
        status=ReviewItem.Status.DONE if decided else ReviewItem.Status.PENDING,
        final_verdict=verdict if decided else "",
        decided_at=decided,
    )
    ReviewItem.objects.filter(pk=item.pk).update(created_at=queued, updated_at=decided or queued)
    item.refresh_from_db()
    return item


def make_review(item, reviewer, verdict, created_at, *, adjudication=False) -> Review:
    review = Review.objects.create(
        item=item,
        reviewer=reviewer,
        verdict=verdict,
        corrected_output="A better answer." if verdict == "correct" else "",
        is_adjudication=adjudication,
    )
    Review.objects.filter(pk=review.pk).update(created_at=created_at)
    return review


def make_feedback(interaction, kind, created_at, item_ref="") -> FeedbackEvent:
    return FeedbackEvent.objects.create(
        interaction=interaction,
        agent=interaction.agent,
        kind=kind,
        item_ref=item_ref,
        created_at=created_at,
        dedupe_key=f"{interaction.pk}-{kind}-{item_ref}-{created_at.isoformat()}",
    )


@pytest.fixture
def dataset(db) -> Dataset:
    agent = factories.AgentFactory(slug="shop-bot", name="Shop bot", confidence_threshold=0.7)
    reviewer = factories.UserFactory(username="rex", roles=["reviewer"], domains=["support"])
    rows = {
        "i1": ("v1", at(2, 9), True, False, 0.5, 4, 0.90),
        "i2": ("v1", at(2, 10), False, True, -0.5, 6, 0.30),
        "i3": ("v1", at(2, 11), True, False, 1.0, 2, 0.60),
        "i4": ("v1", at(2, 12), None, None, None, None, 0.20),
        "i5": ("v2", at(2, 13), True, False, 0.0, 3, 0.95),
        "i6": ("v2", at(2, 14), True, False, 0.5, 5, 0.85),
        "i7": ("v2", at(4, 0), False, False, -1.0, 8, 0.10),
        "i8": ("v2", at(4, 10), True, False, 0.5, 2, 0.75),
    }
    fields = ("resolved", "escalated", "sentiment", "turns", "confidence")
    interactions = {
        key: make_interaction(agent, version, created, **dict(zip(fields, values, strict=True)))
        for key, (version, created, *values) in rows.items()
    }
    i = interactions
    audit, low = ReviewItem.Reason.AUDIT_SAMPLE, ReviewItem.Reason.LOW_CONFIDENCE
    items = {
        "i1": make_item(i["i1"], reason=audit, queued=at(2, 9, 10), decided=at(2, 9, 40)),
        "i2": make_item(i["i2"], reason=low, queued=at(2, 10, 5), decided=at(2, 11, 5)),
        "i3": make_item(
            i["i3"], reason=low, queued=at(2, 11), decided=at(4, 11), verdict="correct"
        ),
        "i4": make_item(i["i4"], reason=low, queued=at(2, 12, 10)),
    }
    make_review(items["i1"], reviewer, "approve", at(2, 9, 40))
    make_review(items["i2"], reviewer, "approve", at(2, 11, 5))
    make_review(items["i3"], reviewer, "correct", at(4, 11))
    make_review(items["i4"], reviewer, "skip", at(2, 13))
    make_feedback(i["i1"], "clicked", at(2, 9, 30), "P9")
    make_feedback(i["i5"], "clicked", at(2, 13, 5), "P1")
    make_feedback(i["i5"], "skipped", at(4, 8), "P2")
    make_feedback(i["i5"], "skipped", at(4, 8), "P3")
    make_feedback(i["i5"], "thumbs_up", at(2, 13, 6))
    make_feedback(i["i6"], "skipped", at(2, 14, 5), "P2")
    return Dataset(agent=agent, interactions=interactions, items=items, reviewer=reviewer)


@pytest.fixture
def fresh_celery_pool():
    """Forgets Celery's broker pools before and after a test that uses `celery_worker`
    (request it *before* `celery_worker`), so a pool closed by an earlier worker test can
    never be reused: see tests/conftest.py `_drop_celery_pools`."""
    from config.celery import app
    from tests.conftest import _drop_celery_pools

    _drop_celery_pools(app)
    yield
    _drop_celery_pools(app)
