"""The demo plan is pure: these tests have no `db` fixture, so pytest-django fails any of them
that touches the database."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from demo.plan import DAYS, MIN_AGE, demo_plan


def test_it_generates_the_same_demo_from_the_same_seed():
    now = timezone.now()

    first = demo_plan(n=50, seed=7, now=now)
    again = demo_plan(n=50, seed=7, now=now)
    other = demo_plan(n=50, seed=8, now=now)

    assert first == again
    assert [r["input"] for r in first.interactions] != [r["input"] for r in other.interactions]


def test_it_generates_record_i_independently_of_the_size():
    now = timezone.now()

    small = demo_plan(n=20, seed=7, now=now).interactions
    large = demo_plan(n=200, seed=7, now=now).interactions

    assert large[:20] == small


# Just after midnight is the edge: today's later slots move to yesterday.
@pytest.mark.parametrize("now", [datetime(2026, 3, 1, 0, 20, tzinfo=UTC), timezone.now()])
def test_it_plans_no_event_in_the_future(now):
    plan = demo_plan(n=400, seed=7, now=now)
    times = [datetime.fromisoformat(r["created_at"]) for r in plan.interactions]

    assert all(now - timedelta(days=DAYS + 1) <= t <= now - MIN_AGE for t in times)
    assert all(event.delay_s < MIN_AGE.total_seconds() for event in plan.feedback)
