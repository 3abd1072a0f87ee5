"""Review deadlines: working-hours arithmetic worked out by hand, due times set when items
are routed, and the priority rise of the sweep (frozen clock: time_machine)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from core.models import AuditEvent
from ingest.services import feedback_ingest, interactions_ingest
from reviews import deadlines, services, sla
from reviews.deadlines import Rule, add_working_time, parse_days, working_hours
from reviews.models import Deadline, ReviewItem
from tests import factories

LONDON = ZoneInfo("Europe/London")
WEEK = working_hours("Europe/London", "09:00", "17:00", "mon-fri")


def london(y, m, d, h, mi=0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=LONDON)


# --- working hours (pure) -------------------------------------------------------------------


def test_it_carries_working_hours_over_the_weekend():
    # Fri 4 Dec 2026 16:00: 1 h on Friday, 3 h on Monday 7 Dec → 12:00.
    assert add_working_time(london(2026, 12, 4, 16), timedelta(hours=4), WEEK) == london(
        2026, 12, 7, 12
    )


def test_it_starts_counting_at_the_next_opening():
    # Before opening, after closing, on a Saturday.
    assert add_working_time(london(2026, 12, 2, 7), timedelta(hours=2), WEEK) == london(
        2026, 12, 2, 11
    )
    assert add_working_time(london(2026, 12, 2, 18), timedelta(hours=2), WEEK) == london(
        2026, 12, 3, 11
    )
    assert add_working_time(london(2026, 12, 5, 10), timedelta(hours=1), WEEK) == london(
        2026, 12, 7, 10
    )


def test_it_ends_at_closing_time_rather_than_the_next_morning():
    assert add_working_time(london(2026, 12, 2, 9), timedelta(hours=8), WEEK) == london(
        2026, 12, 2, 17
    )
    # 8 h + 1 h: the next morning at 10:00.
    assert add_working_time(london(2026, 12, 2, 9), timedelta(hours=9), WEEK) == london(
        2026, 12, 3, 10
    )


def test_it_is_correct_across_a_clock_change():
    # Clocks go forward on Sun 29 Mar 2026 (GMT → BST). Fri 27 Mar 16:00 GMT (16:00 UTC)
    # + 4 working hours = Mon 30 Mar 12:00 BST = 11:00 UTC (wall-clock 68 h, real 67 h).
    due = add_working_time(london(2026, 3, 27, 16), timedelta(hours=4), WEEK)
    assert due == datetime(2026, 3, 30, 11, 0, tzinfo=UTC)
    assert due.astimezone(LONDON).hour == 12
    # Wall-clock deadlines are real elapsed time: 24 h later is 17:00 BST (16:00 UTC + 24 h).
    wall = Rule(24, working_hours=False).due(london(2026, 3, 28, 16), WEEK)
    assert wall == datetime(2026, 3, 29, 16, 0, tzinfo=UTC)
    assert wall.astimezone(LONDON).hour == 17


def test_it_reads_workday_lists_and_ranges():
    assert parse_days("mon-fri") == frozenset({0, 1, 2, 3, 4})
    assert parse_days("sun-thu") == frozenset({6, 0, 1, 2, 3})
    assert parse_days("mon,wed, fri") == frozenset({0, 2, 4})
    with pytest.raises(ValueError):
        parse_days("funday")


def test_it_prefers_the_most_specific_rule():
    rules = deadlines.DeadlineRules.from_rows(
        [
            (7, "legal", 2, True),
            (7, "", 8, True),
            (None, "legal", 4, True),
            (None, "tax", 1, False),
        ],
        agent_id=7,
    )
    assert rules.rule_for("legal") == Rule(2, True)  # agent + domain
    assert rules.rule_for("support") == Rule(8, True)  # agent
    no_default = deadlines.DeadlineRules.from_rows([(None, "tax", 1, False)], agent_id=7)
    assert no_default.rule_for("tax") == Rule(1, False)  # domain
    assert no_default.rule_for("support") is None
    assert deadlines.relative(timedelta(hours=2)) == "in 2 h"
    assert deadlines.relative(timedelta(hours=-3)) == "3 h overdue"


# --- due times on routing -------------------------------------------------------------------


def _ingest(lines: list[dict]) -> None:
    interactions_ingest(records=list(enumerate(lines, start=1)))


def _line(external_id: str, *, domain: str = "legal", confidence: float = 0.1) -> dict:
    return {
        "external_id": external_id,
        "agent": "law-bot",
        "input": "Can I break my lease?",
        "output": "Yes.",
        "confidence": confidence,
        "domain": domain,
    }


@pytest.fixture
def law_bot(db):
    return factories.AgentFactory(slug="law-bot", domain="legal", confidence_threshold=0.7)


@pytest.mark.django_db
def test_it_stamps_imported_items_with_their_due_time(law_bot, django_assert_max_num_queries):
    Deadline.objects.create(agent=law_bot, domain="legal", hours=4, working_hours=True)
    Deadline.objects.create(agent=None, domain="support", hours=2, working_hours=False)
    with time_machine.travel(london(2026, 12, 4, 16), tick=False):
        _ingest([_line("a"), _line("b"), _line("c", domain="support"), _line("d", domain="tax")])
    items = {i.interaction.external_id: i for i in ReviewItem.objects.select_related("interaction")}
    assert items["a"].due_at == items["b"].due_at == london(2026, 12, 7, 12)
    # 75% of 4 working hours (3 h) = Monday 11:00.
    assert items["a"].sla_near_at == london(2026, 12, 7, 11)
    assert items["c"].due_at == london(2026, 12, 4, 18)  # wall clock
    assert items["d"].due_at is None and items["d"].sla_near_at is None
    assert items["a"].sla_level == 0


@pytest.mark.django_db
def test_it_stamps_items_queued_by_feedback(law_bot):
    Deadline.objects.create(agent=law_bot, hours=1, working_hours=False)
    with time_machine.travel(datetime(2026, 12, 2, 10, tzinfo=UTC), tick=False):
        _ingest([_line("f", confidence=0.99)])
        assert not ReviewItem.objects.exists()
        feedback_ingest(
            records=[(1, {"agent": "law-bot", "external_id": "f", "kind": "thumbs_down"})]
        )
    item = ReviewItem.objects.get()
    assert item.due_at == datetime(2026, 12, 2, 11, tzinfo=UTC)


@pytest.mark.django_db
def test_it_leaves_items_without_a_deadline_undated(law_bot):
    _ingest([_line("x")])
    assert ReviewItem.objects.get().due_at is None


# --- the priority rise ----------------------------------------------------------------------


@pytest.fixture
def queued(law_bot, reviewer):
    """Three legal items routed Wed 2 Dec 09:00 London, due 13:00 (near at 12:00); one
    support item without a deadline, more confident but queued first."""
    reviewer.reviewer_profile.domains = ["legal"]
    reviewer.reviewer_profile.save()
    Deadline.objects.create(agent=law_bot, domain="legal", hours=4)
    with time_machine.travel(london(2026, 12, 2, 9), tick=False):
        _ingest([_line("plain", confidence=0.05, domain="legal")])
        ReviewItem.objects.update(due_at=None, sla_near_at=None)  # queued before the rule
        _ingest([_line("urgent", confidence=0.6)])
    return {i.interaction.external_id: i for i in ReviewItem.objects.select_related("interaction")}


@pytest.mark.django_db
def test_it_raises_the_priority_once_when_near_and_once_when_breached(queued):
    urgent = queued["urgent"]
    with time_machine.travel(london(2026, 12, 2, 11, 59), tick=False):
        assert sla.items_escalate().near == 0
    with time_machine.travel(london(2026, 12, 2, 12, 0), tick=False):
        first = sla.items_escalate()
        again = sla.items_escalate()
    assert (first.near, first.breached, again.near, again.breached) == (1, 0, 0, 0)
    urgent.refresh_from_db()
    assert (urgent.priority, urgent.sla_level) == (10, 1)
    with time_machine.travel(london(2026, 12, 2, 13, 0), tick=False):
        first = sla.items_escalate()
        again = sla.items_escalate()
    assert (first.breached, len(first.breach_ids), again.breached) == (1, 1, 0)
    urgent.refresh_from_db()
    assert (urgent.priority, urgent.sla_level) == (20, 2)
    queued["plain"].refresh_from_db()
    assert queued["plain"].priority == 0
    actions = list(
        AuditEvent.objects.filter(target_id=urgent.pk, action__startswith="item.sla")
        .order_by("pk")
        .values_list("action", "before", "after")
    )
    assert [a for a, _, _ in actions] == ["item.sla_near", "item.sla_breached"]
    assert actions[1][1]["priority"] == 10 and actions[1][2]["priority"] == 20


@pytest.mark.django_db
def test_it_changes_the_claim_order(queued, reviewer):
    # Before: the lower confidence ("plain", 0.05) comes first; after the rise, "urgent".
    with time_machine.travel(london(2026, 12, 2, 12, 30), tick=False):
        sla.items_escalate()
        claimed = services.item_claim(reviewer=reviewer)
    assert claimed.pk == queued["urgent"].pk


@pytest.mark.django_db
def test_it_never_escalates_an_item_decided_in_time(queued):
    ReviewItem.objects.filter(pk=queued["urgent"].pk).update(status="done")
    with time_machine.travel(london(2026, 12, 3, 9), tick=False):
        result = sla.items_escalate()
    assert (result.near, result.breached) == (0, 0)
