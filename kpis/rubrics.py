"""Rubric KPIs: per criterion (of one rubric version), agent version and day, the pass rate
of a pass / fail criterion with its Wilson interval, or the mean of a 1–5 scale with its
normal interval, and n.

Computed live from the scores with one aggregate query (grouped by criterion, agent version
and UTC day of the review); the period's figures are sums of the days' (count, sum, sum of
squares), so no second query is needed for them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate

from agents.models import Agent
from kpis.definitions import mean_interval, wilson
from reviews.models import Criterion, Score

PASS_FAIL = Criterion.Kind.PASS_FAIL


@dataclass
class Figure:
    """One cell: n scores, their sum and sum of squares, and what they say."""

    kind: str
    n: int = 0
    total: int = 0
    squares: int = 0

    def add(self, n: int, total: int, squares: int) -> None:
        self.n += n
        self.total += total
        self.squares += squares

    @property
    def value(self) -> float | None:
        """The pass rate (pass / fail) or the mean (scale); None without scores."""
        return self.total / self.n if self.n else None

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """95%: Wilson for a pass rate, normal (sample variance) for a mean."""
        if self.kind == PASS_FAIL:
            return wilson(self.total, self.n)
        return mean_interval(self.total, self.squares, self.n)

    @property
    def low(self) -> float | None:
        return self.interval[0]

    @property
    def high(self) -> float | None:
        return self.interval[1]

    def api(self) -> dict[str, Any]:
        low, high = self.interval
        return {"value": self.value, "low": low, "high": high, "n": self.n}


@dataclass
class VersionRow:
    agent_version: str
    total: Figure
    days: dict[date, Figure] = field(default_factory=dict)


@dataclass
class CriterionKpis:
    key: str
    name: str
    kind: str
    rubric_version: int
    position: int
    versions: list[VersionRow]

    @property
    def measure(self) -> str:
        return "pass rate" if self.kind == PASS_FAIL else "mean (1–5)"


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants of `start` 00:00 and the day after `end` 00:00."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def rubric_kpis(*, agent: Agent, start: date, end: date) -> list[CriterionKpis]:
    """The figures of every criterion of `agent`'s rubric versions that was scored in the
    reviews made from `start` to `end` (UTC days, both included), newest rubric version
    first, then in the rubric's order; per criterion one row per agent version (the agent's
    release that gave the answer; "" unknown). One query."""
    first, after = _bounds(start, end)
    rows = (
        Score.objects.filter(
            criterion__rubric__agent=agent,
            review__created_at__gte=first,
            review__created_at__lt=after,
        )
        .values(
            "criterion_id",
            key=F("criterion__key"),
            name=F("criterion__name"),
            kind=F("criterion__kind"),
            position=F("criterion__position"),
            rubric_version=F("criterion__rubric__version"),
            agent_version=F("review__item__interaction__agent_version"),
            day=TruncDate("review__created_at", tzinfo=UTC),
        )
        .annotate(n=Count("pk"), total=Sum("value"), squares=Sum(F("value") * F("value")))
        .order_by()
    )
    criteria: dict[int, CriterionKpis] = {}
    versions: dict[int, dict[str, VersionRow]] = defaultdict(dict)
    for row in rows:
        cid = row["criterion_id"]
        if cid not in criteria:
            criteria[cid] = CriterionKpis(
                key=row["key"],
                name=row["name"],
                kind=row["kind"],
                rubric_version=row["rubric_version"],
                position=row["position"],
                versions=[],
            )
        kind = row["kind"]
        version = versions[cid].get(row["agent_version"])
        if version is None:
            version = versions[cid][row["agent_version"]] = VersionRow(
                row["agent_version"], Figure(kind)
            )
        version.total.add(row["n"], row["total"], row["squares"])
        day = version.days.setdefault(row["day"], Figure(kind))
        day.add(row["n"], row["total"], row["squares"])
    for cid, kpis in criteria.items():
        kpis.versions = sorted(versions[cid].values(), key=lambda v: v.agent_version)
    return sorted(criteria.values(), key=lambda c: (-c.rubric_version, c.position, c.key))


def api_rows(kpis: list[CriterionKpis], dates: list[date]) -> list[dict[str, Any]]:
    """The API's shape: per criterion and agent version, the period's figure and every day's
    (days without scores have n 0 and null values)."""
    return [
        {
            "criterion": c.key,
            "name": c.name,
            "kind": c.kind,
            "rubric_version": c.rubric_version,
            "agent_version": v.agent_version or None,
            "period": v.total.api(),
            "days": [{"date": d.isoformat(), **v.days.get(d, Figure(c.kind)).api()} for d in dates],
        }
        for c in kpis
        for v in c.versions
    ]
