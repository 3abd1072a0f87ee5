"""KPI statistics aggregated in the database, and the pure maths on them (calibration,
agreement). No views, no writes: `services.py` decides what to recompute and stores it.

Every aggregate is a GROUP BY over one agent's rows of the days asked for, so the database
does the work and only one row per (version, day[, bucket]) comes back; day windows are
ranges on the timestamp columns (index range scans on `(agent, created_at)` and friends),
never `date(column) IN (…)`, which no index serves. Days are UTC dates.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, Func, Max, Min, Q, Sum, Value
from django.db.models.functions import Cast, Floor, Least, TruncDate

from agents.models import FeedbackEvent, Interaction
from kpis.definitions import (
    ALL_VERSIONS,
    CAL_BUCKETS,
    CALIBRATION_REASONS,
    DECIDING,
    UNVERSIONED,
    Stats,
    combine,
    is_empty,
    top_refs,
)
from reviews.models import Review, ReviewItem

Key = tuple[str, date]  # (agent_version, day)


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
        q |= Q(**{f"{field}__gte": day_start(first), f"{field}__lt": day_start(last) + _DAY})
    return q


_DAY = timedelta(days=1)


def _day(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=UTC)


def _version(value: str | None) -> str:
    return value or UNVERSIONED


# --- the aggregates -----------------------------------------------------------------------------

# agent → the days to compute. Every query below covers a whole scope (all its agents at
# once: one scan per source table, like a hand-written report query) and groups by agent.
Scope = Mapping[int, frozenset[date]]
AgentKey = tuple[int, str, date]  # (agent, agent_version, day)


def scope_q(field: str, scope: Scope, agent_field: str) -> Q:
    """Rows of the scope's agents within their days: agents with the same days share one
    `agent IN (…) AND (time ranges)` clause, so a full or periodic run is a single clause."""
    groups: dict[frozenset[date], list[int]] = defaultdict(list)
    for agent_id, days in scope.items():
        groups[frozenset(days)].append(agent_id)
    q = Q(pk__in=[])
    for days, agents in groups.items():
        q |= Q(**{f"{agent_field}__in": sorted(agents)}) & window(field, days)
    return q


class Median(Aggregate):
    """PostgreSQL's exact median (percentile_cont); other databases compute it in Python."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _seconds_between(start: str, end: str) -> Func:
    return Func(
        F(end) - F(start), template="EXTRACT(EPOCH FROM %(expressions)s)", output_field=FloatField()
    )


_INTERACTION_SUMS = (
    "resolved",
    "resolved_n",
    "escalated",
    "escalated_n",
    "sentiment_n",
    "turns_n",
    "routed",
    "decided",
    "approved",
    "corrected",
    "rejected",
)
_INTERACTION_FLOATS = ("sentiment_sum", "sentiment_sq", "turns_sum", "turns_sq")


def _interaction_rows(scope: Scope) -> dict[AgentKey, Stats]:
    """Interactions with their review item (LEFT JOIN: one scan serves the outcome, review
    and verdict rates and the calibration buckets), grouped by agent, version, day and
    confidence bucket. A confidence on a bucket edge belongs to the bucket above (the
    epsilon keeps a value stored a hair under the edge, e.g. 0.6999999999, in the bucket a
    person reads)."""
    bucket = Least(
        Floor(F("confidence") * CAL_BUCKETS + Value(1e-9)),
        Value(float(CAL_BUCKETS - 1)),
        output_field=FloatField(),
    )
    decided = Q(review_item__final_verdict__in=DECIDING)
    calibration = decided & Q(review_item__reason__in=CALIBRATION_REASONS)
    turns = Cast("turns", FloatField())
    rows = (
        Interaction.objects.filter(scope_q("created_at", scope, "agent_id"))
        .values("agent_id", "agent_version", day=_day("created_at"), bucket=bucket)
        .annotate(
            s_n=Count("pk"),
            s_resolved=Count("pk", filter=Q(resolved=True)),
            s_resolved_n=Count("resolved"),
            s_escalated=Count("pk", filter=Q(escalated=True)),
            s_escalated_n=Count("escalated"),
            s_sentiment_sum=Sum("sentiment"),
            s_sentiment_sq=Sum(F("sentiment") * F("sentiment"), output_field=FloatField()),
            s_sentiment_n=Count("sentiment"),
            s_turns_sum=Sum(turns),
            s_turns_sq=Sum(turns * turns, output_field=FloatField()),
            s_turns_n=Count("turns"),
            s_routed=Count("review_item"),
            s_decided=Count("review_item", filter=decided),
            s_approved=Count("review_item", filter=Q(review_item__final_verdict="approve")),
            s_corrected=Count("review_item", filter=Q(review_item__final_verdict="correct")),
            s_rejected=Count("review_item", filter=Q(review_item__final_verdict="reject")),
            s_cal_n=Count("review_item", filter=calibration),
            s_cal_approved=Count(
                "review_item", filter=calibration & Q(review_item__final_verdict="approve")
            ),
            s_cal_conf=Sum("confidence", filter=calibration),
        )
        .order_by()
    )
    out: dict[AgentKey, Stats] = {}
    for row in rows.iterator(chunk_size=5000):  # one dict per group, not a cached list
        key = (row["agent_id"], _version(row["agent_version"]), row["day"])
        stats = out.setdefault(key, {"cal": {}})
        stats["interactions"] = stats.get("interactions", 0) + row["s_n"]
        for name in _INTERACTION_SUMS:
            stats[name] = stats.get(name, 0) + row[f"s_{name}"]
        for name in _INTERACTION_FLOATS:
            stats[name] = stats.get(name, 0.0) + float(row[f"s_{name}"] or 0.0)
        stats["cal"][str(int(row["bucket"]))] = [
            row["s_n"],
            row["s_cal_n"],
            row["s_cal_approved"],
            float(row["s_cal_conf"] or 0.0),
        ]
    return out


def _feedback_rows(scope: Scope) -> dict[AgentKey, Stats]:
    """Click / skip signals by the day of the interaction they are about: interactions with
    any such event and with a click (distinct, so each counts once however many events it
    got; an interaction has one version, so these add up across versions), and the events."""
    kinds = (FeedbackEvent.Kind.CLICKED, FeedbackEvent.Kind.SKIPPED)
    # Filtered on the interaction's agent and time, so PostgreSQL can start from the
    # (agent, created_at) index of interactions (ten times faster than from feedback's).
    base = FeedbackEvent.objects.filter(
        scope_q("interaction__created_at", scope, "interaction__agent_id"), kind__in=kinds
    )
    key = {
        "agt": F("interaction__agent_id"),
        "ver": F("interaction__agent_version"),
        "day": _day("interaction__created_at"),
    }
    out: dict[AgentKey, Stats] = {}
    for row in (
        base.values(**key)
        .annotate(
            s_feedback_n=Count("interaction_id", distinct=True),
            s_clicked=Count("interaction_id", distinct=True, filter=Q(kind=kinds[0])),
            s_events=Count("pk"),
            s_skipped=Count("pk", filter=Q(kind=kinds[1])),
        )
        .order_by()
    ):
        out[(row["agt"], _version(row["ver"]), row["day"])] = {
            "feedback_n": row["s_feedback_n"],
            "clicked": row["s_clicked"],
            "feedback_events": row["s_events"],
            "skipped_events": row["s_skipped"],
        }
    refs: dict[AgentKey, dict[str, int]] = defaultdict(dict)
    for row in (
        base.filter(kind=kinds[1])
        .exclude(item_ref="")
        .values("item_ref", **key)
        .annotate(n=Count("pk"))
        .order_by()
    ):
        refs[(row["agt"], _version(row["ver"]), row["day"])][row["item_ref"]] = row["n"]
    for k, counts in refs.items():
        out.setdefault(k, {})["skipped_refs"] = top_refs(counts)
    return out


def _review_rows(scope: Scope) -> dict[AgentKey, Stats]:
    """Reviewer decisions by the day they were made."""
    out: dict[AgentKey, Stats] = {}
    for row in (
        Review.objects.filter(scope_q("created_at", scope, "item__agent_id"))
        .values(
            "verdict",
            agt=F("item__agent_id"),
            ver=F("item__interaction__agent_version"),
            day=_day("created_at"),
        )
        .annotate(n=Count("pk"))
        .order_by()
    ):
        key = (row["agt"], _version(row["ver"]), row["day"])
        out.setdefault(key, {"decisions": {}})["decisions"][row["verdict"]] = row["n"]
    return out


def _ttr_rows(scope: Scope) -> dict[AgentKey, Stats]:
    """Time to review (queued → decided) of the items decided each day: count and exact
    median, per version and over all versions (version "": a median does not combine)."""
    base = ReviewItem.objects.filter(
        scope_q("decided_at", scope, "agent_id"), decided_at__isnull=False
    )
    out: dict[AgentKey, Stats] = {}
    if connection.vendor == "postgresql":
        seconds = _seconds_between("created_at", "decided_at")
        for row in (
            base.values("agent_id", ver=F("interaction__agent_version"), day=_day("decided_at"))
            .annotate(n=Count("pk"), median=Median(seconds))
            .order_by()
        ):
            out[(row["agent_id"], _version(row["ver"]), row["day"])] = {
                "ttr_n": row["n"],
                "ttr_median": row["median"],
            }
        for row in (
            base.values("agent_id", day=_day("decided_at"))
            .annotate(median=Median(seconds))
            .order_by()
        ):
            out[(row["agent_id"], ALL_VERSIONS, row["day"])] = {"ttr_median": row["median"]}
        return out
    durations: dict[AgentKey, list[float]] = defaultdict(list)
    for agent_id, version, queued, decided in base.values_list(
        "agent_id", "interaction__agent_version", "created_at", "decided_at"
    ):
        seconds_ = (decided - queued).total_seconds()
        durations[(agent_id, _version(version), utc_day(decided))].append(seconds_)
        durations[(agent_id, ALL_VERSIONS, utc_day(decided))].append(seconds_)
    for key, values in durations.items():
        out[key] = {"ttr_median": statistics.median(values)}
        if key[1] != ALL_VERSIONS:
            out[key]["ttr_n"] = len(values)
    return out


def _backlog_rows(scope: Scope, *, now: datetime) -> dict[AgentKey, Stats]:
    """Items queued and not yet decided at the end of each day, and the age of the oldest.

    Counted backwards from now, so only items created or decided since the first day asked
    for are read: open at the end of D = open now + decided after D − created after D; the
    oldest open at the end of D is the oldest item created before the end of D among those
    decided after D or still open (one MIN per decision day, then a minimum over the days
    after D).
    """
    today = utc_day(now)
    wanted = {a: sorted(d for d in days if d <= today) for a, days in scope.items()}
    wanted = {a: days for a, days in wanted.items() if days}
    if not wanted:
        return {}
    since = day_start(min(days[0] for days in wanted.values())) + _DAY
    items = ReviewItem.objects.filter(agent_id__in=sorted(wanted))
    key = {"ver": F("interaction__agent_version")}
    created: dict[tuple[int, str], dict[date, int]] = defaultdict(dict)
    for row in (
        items.filter(created_at__gte=since)
        .values("agent_id", **key, day=_day("created_at"))
        .annotate(n=Count("pk"))
        .order_by()
    ):
        created[(row["agent_id"], _version(row["ver"]))][row["day"]] = row["n"]
    # decision day None: still open
    closed: dict[tuple[int, str], dict[date | None, tuple[int, datetime]]] = defaultdict(dict)
    for row in (
        items.filter(Q(decided_at__isnull=True) | Q(decided_at__gte=since))
        .values("agent_id", **key, day=_day("decided_at"))
        .annotate(n=Count("pk"), oldest=Min("created_at"))
        .order_by()
    ):
        closed[(row["agent_id"], _version(row["ver"]))][row["day"]] = (row["n"], row["oldest"])
    out: dict[AgentKey, Stats] = {}
    for agent_id, version in set(created) | set(closed):
        made, done = created[(agent_id, version)], closed[(agent_id, version)]
        open_now = done.get(None, (0, None))[0]
        for day in wanted[agent_id]:
            end = min(day_start(day) + _DAY, now)
            later = [(n, oldest) for d, (n, oldest) in done.items() if d is None or d > day]
            count = open_now + sum(n for d, (n, _) in done.items() if d is not None and d > day)
            count -= sum(n for d, n in made.items() if d > day)
            oldest = min((o for _, o in later if o < end), default=None)
            if count > 0:
                out[(agent_id, version, day)] = {
                    "backlog": count,
                    "backlog_oldest": (end - oldest).total_seconds() if oldest else None,
                }
    return out


def _four_eyes_rows(scope: Scope) -> dict[AgentKey, Stats]:
    """Agreement of the first two deciding reviews of each four-eyes item, on the day of the
    second. Reads only the reviews of items reviewed on the days asked for."""
    touched = Review.objects.filter(
        scope_q("created_at", scope, "item__agent_id"), item__required_reviews=2
    ).values("item_id")
    reviews = (
        Review.objects.filter(item_id__in=touched, is_adjudication=False, verdict__in=DECIDING)
        .order_by("item_id", "created_at", "pk")
        .values_list(
            "item_id",
            "item__agent_id",
            "reviewer_id",
            "verdict",
            "created_at",
            "item__interaction__agent_version",
        )
    )
    firsts: dict[int, tuple[int, str]] = {}
    paired: set[int] = set()
    out: dict[AgentKey, Stats] = {}
    index = {v: i for i, v in enumerate(DECIDING)}
    for item_id, agent_id, reviewer_id, verdict, created_at, version in reviews.iterator(5000):
        if item_id in paired:
            continue
        if item_id not in firsts:
            firsts[item_id] = (reviewer_id, verdict)
            continue
        paired.add(item_id)
        day = utc_day(created_at)
        if day not in scope.get(agent_id, ()):
            continue
        first_reviewer, first_verdict = firsts.pop(item_id)
        stats = out.setdefault(
            (agent_id, _version(version), day),
            {"fe_pairs": 0, "fe_agree": 0, "fe_matrix": [0] * 9, "fe_by_pair": {}},
        )
        stats["fe_pairs"] += 1
        stats["fe_agree"] += int(first_verdict == verdict)
        stats["fe_matrix"][3 * index[first_verdict] + index[verdict]] += 1
        (a, va), (b, vb) = sorted([(first_reviewer, first_verdict), (reviewer_id, verdict)])
        cell = stats["fe_by_pair"].setdefault(f"{a}-{b}", [0] * 9)
        cell[3 * index[va] + index[vb]] += 1
    return out


STEPS = 6  # the queries of scope_stats, for progress


def scope_stats(
    scope: Scope, *, now: datetime, on_step: Callable[[], None] | None = None
) -> dict[int, dict[Key, Stats]]:
    """The statistics of the scope's agents and days: {agent: {(version, day): stats}}, per
    version and over all versions (version ""). Days without anything are left out.
    `on_step()` is called after each of the STEPS aggregates."""
    scope = {agent_id: frozenset(days) for agent_id, days in scope.items() if days}
    step = on_step or (lambda: None)
    parts = []
    for compute_part in (
        _interaction_rows,
        _feedback_rows,
        _review_rows,
        _ttr_rows,
        lambda s: _backlog_rows(s, now=now),
        _four_eyes_rows,
    ):
        parts.append(compute_part(scope) if scope else {})
        step()
    rows: dict[int, dict[Key, Stats]] = defaultdict(dict)
    all_medians: dict[tuple[int, date], float | None] = {}
    for part in parts:
        for (agent_id, version, day), stats in part.items():
            if version == ALL_VERSIONS:  # only the over-all-versions median comes this way
                all_medians[(agent_id, day)] = stats["ttr_median"]
                continue
            rows[agent_id].setdefault((version, day), {}).update(stats)
    out: dict[int, dict[Key, Stats]] = {}
    for agent_id in scope:
        agent_rows = rows.get(agent_id, {})
        by_day: dict[date, list[Stats]] = defaultdict(list)
        for (_, day), stats in agent_rows.items():
            stats.setdefault("backlog", 0)
            by_day[day].append(stats)
        for day, version_rows in by_day.items():
            agent_rows[(ALL_VERSIONS, day)] = combine(
                version_rows, across="versions", medians=all_medians.get((agent_id, day))
            )
        out[agent_id] = {k: s for k, s in agent_rows.items() if not is_empty(s)}
    return out


def agent_stats(agent_id: int, days: Iterable[date], *, now: datetime) -> dict[Key, Stats]:
    """One agent's statistics of `days` (see scope_stats)."""
    return scope_stats({agent_id: frozenset(days)}, now=now)[agent_id]


# --- what changed since the last run ------------------------------------------------------------

SOURCES = ("interaction", "feedback", "reviewitem", "review")


def touched_since(source: str, floor: int) -> tuple[set[tuple[int, date]], int]:
    """(agent, day) pairs whose statistics rows of `source` with an id above `floor` change,
    and the highest id seen (a primary-key range scan, then one GROUP BY)."""
    touched: set[tuple[int, date]] = set()
    top = floor
    if source == "interaction":
        rows = (
            Interaction.objects.filter(pk__gt=floor)
            .values("agent_id", d1=_day("created_at"))
            .annotate(top=Max("pk"))
        )
    elif source == "feedback":
        rows = (
            FeedbackEvent.objects.filter(pk__gt=floor)
            .values("agent_id", d1=_day("interaction__created_at"))
            .annotate(top=Max("pk"))
        )
    elif source == "reviewitem":
        # The response's day (review rate) and the day it was queued (backlog).
        rows = (
            ReviewItem.objects.filter(pk__gt=floor)
            .values("agent_id", d1=_day("source_created_at"), d2=_day("created_at"))
            .annotate(top=Max("pk"))
        )
    elif source == "review":
        # A review is written in the transaction that moves its item, so it stands for the
        # decision too: the response's day (verdict rates), the review's day (decisions,
        # agreement) and the decision's day (time to review, backlog).
        rows = (
            Review.objects.filter(pk__gt=floor)
            .values(
                agent_id=F("item__agent_id"),
                d1=_day("item__source_created_at"),
                d2=_day("created_at"),
                d3=_day("item__decided_at"),
            )
            .annotate(top=Max("pk"))
        )
    else:
        raise ValueError(f"unknown source {source!r}")
    for row in rows.order_by():
        top = max(top, row["top"])
        for key in ("d1", "d2", "d3"):
            if row.get(key) is not None:
                touched.add((row["agent_id"], row[key]))
    return touched, top


def source_max_id(source: str) -> int:
    model = {
        "interaction": Interaction,
        "feedback": FeedbackEvent,
        "reviewitem": ReviewItem,
        "review": Review,
    }[source]
    return model.objects.aggregate(top=Max("pk"))["top"] or 0


def agents_with_open_items() -> set[int]:
    """Agents whose backlog changes with the clock alone (the age of the oldest item)."""
    return set(
        ReviewItem.objects.filter(decided_at__isnull=True)
        .values_list("agent_id", flat=True)
        .distinct()
        .order_by()
    )


def first_day(agent_id: int) -> date | None:
    first = Interaction.objects.filter(agent_id=agent_id).aggregate(m=Min("created_at"))["m"]
    queued = ReviewItem.objects.filter(agent_id=agent_id).aggregate(m=Min("created_at"))["m"]
    moments = [m for m in (first, queued) if m is not None]
    return utc_day(min(moments)) if moments else None


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
        q |= Q(decided_at__gte=day_start(first), decided_at__lt=day_start(last) + _DAY)
    base = base.filter(q)
    out: dict[tuple[str, str], float | None] = {}
    if connection.vendor == "postgresql":
        from django.db.models import Case, CharField, When

        period = Case(
            *(
                When(
                    decided_at__gte=day_start(first),
                    decided_at__lt=day_start(last) + _DAY,
                    then=Value(name),
                )
                for name, (first, last) in periods.items()
            ),
            output_field=CharField(),
        )
        seconds = _seconds_between("created_at", "decided_at")
        for row in (
            base.values(period=period, ver=F("interaction__agent_version"))
            .annotate(median=Median(seconds))
            .order_by()
        ):
            out[(row["period"], _version(row["ver"]))] = row["median"]
        for row in base.values(period=period).annotate(median=Median(seconds)).order_by():
            out[(row["period"], ALL_VERSIONS)] = row["median"]
        return out
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for version_, queued, decided in base.values_list(
        "interaction__agent_version", "created_at", "decided_at"
    ):
        for name, (first, last) in periods.items():
            if first <= utc_day(decided) <= last:
                seconds_ = (decided - queued).total_seconds()
                durations[(name, _version(version_))].append(seconds_)
                durations[(name, ALL_VERSIONS)].append(seconds_)
    return {key: statistics.median(values) for key, values in durations.items()}


# --- calibration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    low: float  # confidence range [low, high)
    high: float
    interactions: int  # every response in the range (the population)
    n: int  # decided items of the calibration reasons
    approved: int
    mean_confidence: float | None
    rate: float | None
    rate_low: float | None
    rate_high: float | None


@dataclass(frozen=True)
class ThresholdPoint:
    threshold: float
    approval: float | None  # estimated approval rate of the responses at or above it
    load: float  # share of responses below it (queued for review)
    evidence: int  # decided items behind the estimate


@dataclass(frozen=True)
class Calibration:
    buckets: list[Bucket]
    ece: float | None
    decided: int
    interactions: int
    curve: list[ThresholdPoint]
    target: float
    suggested: ThresholdPoint | None


def calibration(cal: Mapping[str, list], *, target: float, buckets: int = 10) -> Calibration:
    """A reliability diagram, the expected calibration error and the review threshold that
    meets `target` approval, from the stored calibration counts (`cal` statistics).

    Reviews sample responses unevenly: every response below the threshold, a small audit
    sample above it. Each bucket's approval rate is estimated from its own decided items,
    and anything over several buckets (ECE, the approval rate above a threshold) weights the
    buckets by how many responses they hold, not by how many were reviewed.
    """
    from kpis.definitions import wilson

    if CAL_BUCKETS % buckets:
        raise ValueError(f"buckets must divide {CAL_BUCKETS}")
    per = CAL_BUCKETS // buckets
    merged = [[0, 0, 0, 0.0] for _ in range(buckets)]
    for key, (population, n, approved, conf_sum) in cal.items():
        cell = merged[int(key) // per]
        cell[0] += population
        cell[1] += n
        cell[2] += approved
        cell[3] += conf_sum
    out: list[Bucket] = []
    for i, (population, n, approved, conf_sum) in enumerate(merged):
        low, high = wilson(approved, n)
        out.append(
            Bucket(
                low=i / buckets,
                high=(i + 1) / buckets,
                interactions=population,
                n=n,
                approved=approved,
                mean_confidence=conf_sum / n if n else None,
                rate=approved / n if n else None,
                rate_low=low,
                rate_high=high,
            )
        )
    known = [b for b in out if b.n]
    weight = sum(b.interactions for b in known)
    ece = (
        sum(b.interactions * abs(b.rate - b.mean_confidence) for b in known) / weight
        if weight
        else None
    )
    # Thresholds on the fine (stored) buckets, so a suggestion can be 0.85, not only 0.8.
    fine = [[0, 0, 0] for _ in range(CAL_BUCKETS)]
    for key, (population, n, approved, _) in cal.items():
        fine[int(key)] = [population, n, approved]
    total = sum(c[0] for c in fine)
    curve = []
    for t in range(CAL_BUCKETS + 1):
        above = [c for c in fine[t:] if c[1]]
        pop = sum(c[0] for c in above)
        approval = sum(c[0] * c[2] / c[1] for c in above) / pop if pop else None
        load = sum(c[0] for c in fine[:t]) / total if total else 0.0
        curve.append(
            ThresholdPoint(
                threshold=round(t / CAL_BUCKETS, 4),
                approval=approval,
                load=load,
                evidence=sum(c[1] for c in fine[t:]),
            )
        )
    # The lowest threshold (least review) whose estimated approval above it meets the target.
    suggested = next(
        (p for p in curve if p.approval is not None and p.approval >= target - 1e-12), None
    )
    return Calibration(
        buckets=out,
        ece=ece,
        decided=sum(b.n for b in out),
        interactions=total,
        curve=curve,
        target=target,
        suggested=suggested,
    )


# --- agreement ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    pairs: int
    agree: int
    percent: float | None
    low: float | None
    high: float | None
    kappa: float | None


def agreement(matrix: list[int] | None) -> Agreement:
    """Percent agreement and Cohen's kappa of a 3 × 3 verdict matrix (rater A × rater B, in
    DECIDING order). Kappa is None when chance agreement is total (both raters always gave
    the same single verdict): it is 0 / 0 there."""
    from kpis.definitions import wilson

    cells = list(matrix or [0] * 9)
    n = sum(cells)
    if not n:
        return Agreement(0, 0, None, None, None, None)
    agree = cells[0] + cells[4] + cells[8]
    rows = [sum(cells[3 * i : 3 * i + 3]) for i in range(3)]
    cols = [sum(cells[i::3]) for i in range(3)]
    p_o = agree / n
    p_e = sum(rows[i] * cols[i] for i in range(3)) / (n * n)
    kappa = None if math.isclose(p_e, 1.0) else (p_o - p_e) / (1 - p_e)
    low, high = wilson(agree, n)
    return Agreement(n, agree, p_o, low, high, kappa)


def stats_rows_to_frame(rows: Iterable[tuple[date, str, Mapping[str, Any]]]):
    """Daily KPI values as a pandas DataFrame (one row per day and version), for the CSV
    download: flattening nested values into columns is tabular work pandas does clearly."""
    import pandas as pd

    from kpis.definitions import KPIS

    records = []
    for day, version, stats in rows:
        record: dict[str, Any] = {"date": day.isoformat(), "agent_version": version}
        for kpi in KPIS:
            value = kpi.of(stats)
            if kpi.kind == "breakdown":
                for verdict, n in (value.value or {}).items():
                    record[f"{kpi.key}_{verdict}"] = n
            elif kpi.kind == "list":
                record[kpi.key] = "; ".join(f"{r['ref']} ({r['n']})" for r in value.value or [])
            else:
                record[kpi.key] = value.value
                if kpi.kind == "rate":
                    record[f"{kpi.key}_low"] = value.low
                    record[f"{kpi.key}_high"] = value.high
                if kpi.kind in ("rate", "mean", "duration"):
                    record[f"{kpi.key}_n"] = value.n or 0
        records.append(record)
    return pd.DataFrame.from_records(records)
