"""Review deadlines (SLA): working-hours arithmetic and due times. Pure: no database access.

A deadline is a number of hours, counted either on the wall clock or in working hours
(SLA_WORKDAY_START–SLA_WORKDAY_END on SLA_WORKDAYS in SLA_TIME_ZONE). "4 working hours"
from Friday 16:00 is Monday 12:00: one hour on Friday, three on Monday.

Time zones: the working day is a *local* window (09:00–17:00 London time, whatever the UTC
offset that day), built per date with zoneinfo, while durations are measured in real
elapsed time (UTC arithmetic). Python's arithmetic on two aware datetimes of the same
tzinfo is wall-clock arithmetic, which would be an hour off on the day the clocks change,
so every difference and sum below is taken in UTC.

The rule that applies to an item is the most specific one: agent + domain, then the
agent's own, then the domain's (for any agent). `DeadlineRules` holds one agent's rules for
an import (loaded once with the agent's routing policy, `reviews.routing.Policy.of`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Past this many days without reaching the end (a deadline of years on one workday a week)
# something is misconfigured: stop rather than loop for ever.
_MAX_DAYS = 3700


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """The working week: a local daily window on some weekdays (0 = Monday)."""

    tz: ZoneInfo
    start: time
    end: time
    days: frozenset[int]

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("SLA_WORKDAYS names no day")
        if self.start >= self.end:
            raise ValueError("SLA_WORKDAY_START must be before SLA_WORKDAY_END")

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's working window in UTC, or None on a day off. A bound that falls in the
        hour skipped by a spring-forward change is read with the offset before it (fold=0)."""
        if day.weekday() not in self.days:
            return None
        start = datetime.combine(day, self.start, tzinfo=self.tz).astimezone(UTC)
        end = datetime.combine(day, self.end, tzinfo=self.tz).astimezone(UTC)
        return start, end


def parse_days(text: str) -> frozenset[int]:
    """`mon-fri`, `sun-thu`, `mon,wed,fri`, `mon-wed,sat` → weekday numbers (0 = Monday).
    A range wraps past Sunday (`fri-mon`). ValueError on an unknown name."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first[:3])
            b = DAY_NAMES.index(last[:3]) if last else a
        except ValueError:
            raise ValueError(f"unknown day in {text!r} (use mon … sun)") from None
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    if not days:
        raise ValueError(f"no day in {text!r}")
    return frozenset(days)


def parse_time(text: str) -> time:
    """`09:00` or `9` → 09:00 (ValueError otherwise)."""
    hour, _, minute = text.strip().partition(":")
    return time(int(hour), int(minute or 0))


@functools.lru_cache(maxsize=8)
def working_hours(tz: str, start: str, end: str, days: str) -> WorkingHours:
    return WorkingHours(ZoneInfo(tz), parse_time(start), parse_time(end), parse_days(days))


def working_hours_from_settings() -> WorkingHours:
    """The working week of the SLA settings (parsed once per distinct value)."""
    from django.conf import settings

    return working_hours(
        settings.SLA_TIME_ZONE,
        settings.SLA_WORKDAY_START,
        settings.SLA_WORKDAY_END,
        settings.SLA_WORKDAYS,
    )


def add_working_time(start: datetime, duration: timedelta, week: WorkingHours) -> datetime:
    """The moment `duration` of working time after `start` (aware), in UTC. Time before the
    first window, between windows and on days off does not count; a duration that ends
    exactly at a window's end ends there (not at the next window's start)."""
    if start.tzinfo is None:
        raise ValueError("start must be aware")
    cursor = start.astimezone(UTC)
    left = duration
    day = cursor.astimezone(week.tz).date()
    if left <= timedelta(0):
        return cursor
    for _ in range(_MAX_DAYS):
        bounds = week.window(day)
        if bounds is not None:
            open_, close = bounds
            cursor = max(cursor, open_)
            if cursor < close:
                available = close - cursor
                if left <= available:
                    return cursor + left
                left -= available
                cursor = close
        day += timedelta(days=1)
    raise ValueError(f"no end within {_MAX_DAYS} days: check the SLA working hours")


@dataclass(frozen=True, slots=True)
class Rule:
    """One deadline: `hours` on the wall clock, or in working hours."""

    hours: float
    working_hours: bool = True

    def due(self, created: datetime, week: WorkingHours, *, share: float = 1.0) -> datetime:
        """When `share` of the deadline has passed since `created` (1.0: the due time)."""
        duration = timedelta(hours=self.hours * share)
        if self.working_hours:
            return add_working_time(created, duration, week)
        return created.astimezone(UTC) + duration


@functools.lru_cache(maxsize=4096)
def due_times(
    rule: Rule, created: datetime, week: WorkingHours, near_share: float
) -> tuple[datetime, datetime]:
    """(near_at, due_at) of an item created at `created`: `near_at` is when only
    `near_share` of the deadline is left. Cached: an import stamps every item of a batch
    with the same creation time, so each (rule, batch) is worked out once."""
    near = rule.due(created, week, share=max(0.0, 1.0 - near_share))
    return near, rule.due(created, week)


@dataclass(frozen=True, slots=True)
class DeadlineRules:
    """The deadlines that may apply to one agent's items: its own per domain, its own for
    any domain, and the domains' rules for any agent."""

    agent_domains: Mapping[str, Rule] = field(default_factory=dict)
    agent_default: Rule | None = None
    domains: Mapping[str, Rule] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.agent_domains or self.agent_default or self.domains)

    def rule_for(self, domain: str) -> Rule | None:
        """The most specific rule: agent + domain > agent > domain."""
        rule = self.agent_domains.get(domain)
        if rule is None:
            rule = self.agent_default
        if rule is None:
            rule = self.domains.get(domain)
        return rule

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[int | None, str, Any, bool]], agent_id: int | None
    ) -> DeadlineRules:
        """From (agent_id, domain, hours, working_hours) rows of the agent and of no agent."""
        agent_domains: dict[str, Rule] = {}
        domains: dict[str, Rule] = {}
        default = None
        for owner, domain, hours, working in rows:
            rule = Rule(float(hours), bool(working))
            if owner is not None and owner == agent_id:
                if domain:
                    agent_domains[domain] = rule
                else:
                    default = rule
            elif owner is None and domain:
                domains[domain] = rule
        return cls(agent_domains, default, domains)


NO_RULES = DeadlineRules()


def item_due(
    rules: DeadlineRules, domain: str, created: datetime
) -> tuple[datetime | None, datetime | None]:
    """(near_at, due_at) of an item of `domain` created at `created` under `rules`, with
    the SLA settings; (None, None) when no deadline applies (and nothing is computed)."""
    if not rules:
        return None, None
    rule = rules.rule_for(domain)
    if rule is None:
        return None, None
    from django.conf import settings

    return due_times(rule, created, working_hours_from_settings(), settings.SLA_NEAR_SHARE)


def relative(delta: timedelta) -> str:
    """`in 2 h`, `in 35 min`, `3 h overdue`, `2 d overdue` for a due time `delta` away."""
    seconds = delta.total_seconds()
    span = abs(seconds)
    if span < 3600:
        text = f"{max(1, round(span / 60))} min"
    elif span < 2 * 86400:
        text = f"{round(span / 3600)} h"
    else:
        text = f"{round(span / 86400)} d"
    return f"in {text}" if seconds >= 0 else f"{text} overdue"


def sla_local_text(moment: datetime) -> str:
    """`Mon 07 Dec 12:00 GMT`: a due time in the SLA time zone (SLA_TIME_ZONE)."""
    from django.conf import settings

    return moment.astimezone(ZoneInfo(settings.SLA_TIME_ZONE)).strftime("%a %d %b %H:%M %Z")
