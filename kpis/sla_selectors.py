"""Review deadlines (SLA): the reads behind the KPI page's "Deadlines" section, the API and
the daily digest. Each function is one aggregate query (its cost does not grow with the
number of agents, domains or reviewers listed).

Buckets are of an open item's age, from when it was routed (`ReviewItem.created_at`):
< 1 h, 1–4 h, 4–24 h, 1–3 d, > 3 d; "overdue" counts the open items past their due time
whatever their age. "Reviewed within the deadline" is per agent and UTC day of the
decision (like the other KPIs): decided items that had a deadline, and of those the ones
decided by their due time and never breached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Min, Q
from django.db.models.functions import TruncDate

from accounts.models import Role
from core.stats import wilson
from kpis.periods import day_start
from reviews.models import Review, ReviewItem, SlaBreach

BUCKETS = (
    ("lt_1h", "< 1 h", timedelta(0), timedelta(hours=1)),
    ("1h_4h", "1–4 h", timedelta(hours=1), timedelta(hours=4)),
    ("4h_24h", "4–24 h", timedelta(hours=4), timedelta(hours=24)),
    ("1d_3d", "1–3 d", timedelta(days=1), timedelta(days=3)),
    ("gt_3d", "> 3 d", timedelta(days=3), None),
)
BUCKET_LABELS = [(key, label) for key, label, _, _ in BUCKETS]


def _bucket_counts(now: datetime) -> dict[str, Count]:
    counts = {}
    for key, _label, young, old in BUCKETS:
        # Age in [young, old): created in (now - old, now - young].
        q = Q(created_at__lte=now - young)
        if old is not None:
            q &= Q(created_at__gt=now - old)
        counts[key] = Count("pk", filter=q)
    counts["overdue"] = Count("pk", filter=Q(due_at__lte=now))
    counts["total"] = Count("pk")
    return counts


@dataclass(frozen=True)
class BacklogRow:
    agent: str
    domain: str
    buckets: dict[str, int]
    overdue: int
    total: int
    next_due: datetime | None

    @property
    def cells(self) -> list[int]:
        return [self.buckets[key] for key, _ in BUCKET_LABELS]

    @property
    def labelled(self) -> list[tuple[str, int]]:
        return [(label, self.buckets[key]) for key, label in BUCKET_LABELS]


def backlog(now: datetime, *, agent_id: int | None = None) -> list[BacklogRow]:
    """Open items by agent and domain, counted by age bucket, with the overdue count and the
    next due time. One query."""
    rows = ReviewItem.objects.filter(status__in=ReviewItem.SLA_OPEN_STATUSES)
    if agent_id is not None:
        rows = rows.filter(agent_id=agent_id)
    grouped = (
        rows.values("agent__slug", "domain")
        .annotate(**_bucket_counts(now), next_due=Min("due_at", filter=Q(due_at__gt=now)))
        .order_by("agent__slug", "domain")
    )
    # Annotations named at run time (the buckets): read as plain dicts.
    found: list[dict[str, Any]] = [dict(r) for r in grouped]
    return [
        BacklogRow(
            agent=r["agent__slug"],
            domain=r["domain"],
            buckets={key: r[key] for key, _ in BUCKET_LABELS},
            overdue=r["overdue"],
            total=r["total"],
            next_due=r["next_due"],
        )
        for r in found
    ]


def backlog_totals(rows: list[BacklogRow]) -> dict[str, int]:
    totals = {key: sum(r.buckets[key] for r in rows) for key, _ in BUCKET_LABELS}
    totals["overdue"] = sum(r.overdue for r in rows)
    totals["total"] = sum(r.total for r in rows)
    return totals


@dataclass(frozen=True)
class WithinRow:
    day: date
    agent: str
    decided: int
    within: int

    @property
    def share(self) -> float | None:
        return self.within / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float | None, float | None] | None:
        return wilson(self.within, self.decided) if self.decided else None


def within_deadline(start: date, end: date, *, agent_id: int | None = None) -> list[WithinRow]:
    """Per agent and UTC day of the decision (`start`..`end` inclusive): decided items that
    had a deadline, and how many were decided by their due time without a breach. One
    query (the `reviewitem_agent_decided` index)."""
    rows = ReviewItem.objects.filter(
        status=ReviewItem.Status.DONE,
        due_at__isnull=False,
        # A range on the column itself (not its date), so the index on decided_at applies.
        decided_at__gte=day_start(start),
        decided_at__lt=day_start(end + timedelta(days=1)),
    )
    if agent_id is not None:
        rows = rows.filter(agent_id=agent_id)
    grouped = (
        rows.annotate(day=TruncDate("decided_at"))
        .values("day", "agent__slug")
        .annotate(
            decided=Count("pk"),
            within=Count(
                "pk",
                filter=Q(decided_at__lte=F("due_at"))
                & Q(sla_level__lt=ReviewItem.SlaLevel.BREACHED),
            ),
        )
        .order_by("-day", "agent__slug")
    )
    return [WithinRow(r["day"], r["agent__slug"], r["decided"], r["within"]) for r in grouped]


def breaches_between(start: datetime, end: datetime) -> list[dict]:
    """Breaches recorded in [start, end), per agent and domain: one query."""
    return [
        dict(row)
        for row in SlaBreach.objects.filter(breached_at__gte=start, breached_at__lt=end)
        .values("agent__slug", "domain")
        .annotate(n=Count("pk"))
        .order_by("agent__slug", "domain")
    ]


def throughput_between(start: datetime, end: datetime) -> list[dict]:
    """Each reviewer's decisions (reviews other than `skip`) in [start, end): one query."""
    return [
        dict(row)
        for row in Review.objects.filter(created_at__gte=start, created_at__lt=end)
        .exclude(verdict=Review.Verdict.SKIP)
        .values("reviewer__username")
        .annotate(n=Count("pk"))
        .order_by("-n", "reviewer__username")
    ]


def leads():
    """Who gets breach alerts and the digest: active admins (the `admin` role, or
    superusers) with an e-mail address. Every lead gets every alert: a lead's pools are not
    modelled (pools are reviewers' domains), and a breach is rare enough to share."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name=Role.ADMIN) | Q(is_superuser=True))
        .exclude(email="")
        .distinct()
        .order_by("pk")
    )
