"""UTC days and periods as time ranges: the day windows every KPI aggregate filters on, and
the median time to review over whole periods.

A day window is a range on a timestamp column (an index range scan on `(agent, created_at)`
and friends), never `date(column) IN (…)`, which no index serves. Days are UTC dates.

Medians do not combine from daily rows, so a period's median time to review (alerts, the
dashboard's range totals) is asked of the database here; the daily medians come with the
other statistics (`kpis/stats.py`, which shares `Median` and `seconds_between`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection
from django.db.models import Aggregate, F, FloatField, Func, Q, Value
from django.db.models.functions import TruncDate

from kpis.definitions import ALL_VERSIONS, UNVERSIONED
from reviews.models import ReviewItem

DAY = timedelta(days=1)


# --- day windows --------------------------------------------------------------------------------


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Sorted days as [first, last] runs of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def window(field: str, days: Iterable[date] | None) -> Q:
    """`field` within the days (OR of ranges); everything when `days` is None."""
    if days is None:
        return Q()
    q = Q(pk__in=[])  # no days: nothing
    for first, last in day_ranges(days):
        q |= Q(**{f"{field}__gte": day_start(first), f"{field}__lt": day_start(last) + DAY})
    return q


def day_of(field: str) -> TruncDate:
    """The UTC date of a timestamp column, for grouping."""
    return TruncDate(field, tzinfo=UTC)


def version_key(value: str | None) -> str:
    """The version a row is keyed by: interactions sent without one share UNVERSIONED."""
    return value or UNVERSIONED


# --- medians ------------------------------------------------------------------------------------


class Median(Aggregate):
    """PostgreSQL's exact median (percentile_cont); other databases compute it in Python."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def seconds_between(start: str, end: str) -> Func:
    return Func(
        F(end) - F(start), template="EXTRACT(EPOCH FROM %(expressions)s)", output_field=FloatField()
    )


def period_medians(
    agent_id: int, periods: Mapping[str, tuple[date, date]], *, version: str | None = None
) -> dict[tuple[str, str], float | None]:
    """Median time to review over whole periods (inclusive date ranges), per version and
    over all versions: {(period name, version or ""): seconds}. One query on PostgreSQL."""
    if not periods:
        return {}
    base = ReviewItem.objects.filter(agent_id=agent_id, decided_at__isnull=False)
    if version is not None:
        base = base.filter(interaction__agent_version="" if version == UNVERSIONED else version)
    q = Q(pk__in=[])
    for first, last in periods.values():
        q |= Q(decided_at__gte=day_start(first), decided_at__lt=day_start(last) + DAY)
    base = base.filter(q)
    out: dict[tuple[str, str], float | None] = {}
    if connection.vendor == "postgresql":
        from django.db.models import Case, CharField, When

        period = Case(
            *(
                When(
                    decided_at__gte=day_start(first),
                    decided_at__lt=day_start(last) + DAY,
                    then=Value(name),
                )
                for name, (first, last) in periods.items()
            ),
            output_field=CharField(),
        )
        seconds = seconds_between("created_at", "decided_at")
        for row in (
            base.values(period=period, ver=F("interaction__agent_version"))
            .annotate(median=Median(seconds))
            .order_by()
        ):
            out[(row["period"], version_key(row["ver"]))] = row["median"]
        for whole in base.values(period=period).annotate(median=Median(seconds)).order_by():
            out[(whole["period"], ALL_VERSIONS)] = whole["median"]
        return out
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for version_, queued, decided in base.values_list(
        "interaction__agent_version", "created_at", "decided_at"
    ):
        if decided is None:  # the base query keeps decided items only
            continue
        for name, (first, last) in periods.items():
            if first <= utc_day(decided) <= last:
                seconds_ = (decided - queued).total_seconds()
                durations[(name, version_key(version_))].append(seconds_)
                durations[(name, ALL_VERSIONS)].append(seconds_)
    return {key: statistics.median(values) for key, values in durations.items()}
