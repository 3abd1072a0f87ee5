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

from agents.models import Agent, Interaction
from reviews.models import ReviewItem
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
        key: factories.InteractionFactory(
            agent=agent,
            agent_version=version,
            created_at=created,
            **dict(zip(fields, values, strict=True)),
        )
        for key, (version, created, *values) in rows.items()
    }
    i = interactions
    audit, low = ReviewItem.Reason.AUDIT_SAMPLE, ReviewItem.Reason.LOW_CONFIDENCE
    Item = factories.ReviewItemFactory
    items = {
        "i1": Item(
            interaction=i["i1"], reason=audit, created_at=at(2, 9, 10), done=True,
            decided_at=at(2, 9, 40),
        ),
        "i2": Item(
            interaction=i["i2"], reason=low, created_at=at(2, 10, 5), done=True,
            decided_at=at(2, 11, 5),
        ),
        "i3": Item(
            interaction=i["i3"], reason=low, created_at=at(2, 11), done=True,
            decided_at=at(4, 11), final_verdict="correct",
        ),
        "i4": Item(interaction=i["i4"], reason=low, created_at=at(2, 12, 10)),
    }  # fmt: skip
    Review = factories.ReviewFactory
    Review(item=items["i1"], reviewer=reviewer, verdict="approve", created_at=at(2, 9, 40))
    Review(item=items["i2"], reviewer=reviewer, verdict="approve", created_at=at(2, 11, 5))
    Review(item=items["i3"], reviewer=reviewer, verdict="correct", created_at=at(4, 11))
    Review(item=items["i4"], reviewer=reviewer, verdict="skip", created_at=at(2, 13))
    Feedback = factories.FeedbackEventFactory
    Feedback(interaction=i["i1"], kind="clicked", created_at=at(2, 9, 30), item_ref="P9")
    Feedback(interaction=i["i5"], kind="clicked", created_at=at(2, 13, 5), item_ref="P1")
    Feedback(interaction=i["i5"], kind="skipped", created_at=at(4, 8), item_ref="P2")
    Feedback(interaction=i["i5"], kind="skipped", created_at=at(4, 8), item_ref="P3")
    Feedback(interaction=i["i5"], kind="thumbs_up", created_at=at(2, 13, 6))
    Feedback(interaction=i["i6"], kind="skipped", created_at=at(2, 14, 5), item_ref="P2")
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
