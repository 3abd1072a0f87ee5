"""The demo plan is pure: these tests have no `db` fixture, so pytest-django fails any of them
that touches the database."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from demo.content_specials import SPECIALS
from demo.plan import DAYS, MIN_AGE, SPECIAL_AT, demo_plan


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


def test_it_knows_the_better_output_of_every_weak_answer():
    plan = demo_plan(n=400, seed=7, now=timezone.now())
    outputs = {r["external_id"]: r["output"] for r in plan.interactions}

    assert 10 <= len(plan.fixes) < len(outputs) / 2
    for external_id, fix in plan.fixes.items():
        assert fix.strip() and fix != outputs[external_id]
    recommended = [
        r
        for r in plan.interactions
        if r["external_id"] in plan.fixes and r["agent"] == "product-recommender"
    ]
    assert recommended
    for record in recommended:  # the same number of products, one of them replaced
        fixed = plan.fixes[record["external_id"]].splitlines()
        assert len(fixed) == len(record["output"].splitlines())
        assert len(set(fixed) - set(record["output"].splitlines())) == 1


def test_it_makes_the_hand_written_specials_the_newest_interactions():
    now = timezone.now()
    plan = demo_plan(n=200, seed=7, now=now)
    special_ids = {plan.interactions[i]["external_id"] for i in SPECIAL_AT}
    times = {r["external_id"]: datetime.fromisoformat(r["created_at"]) for r in plan.interactions}

    assert len(special_ids) == len(SPECIALS)
    assert all(now - timedelta(hours=6) <= times[i] <= now - MIN_AGE for i in special_ids)
    assert not special_ids & set(plan.fixes)
    others = [t for i, t in times.items() if i not in special_ids]
    assert sum(t > now - timedelta(hours=6) for t in others) < len(others) / 10
