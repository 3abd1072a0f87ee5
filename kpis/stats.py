"""KPI statistics aggregated in the database: the daily sufficient statistics of a scope
(agents and their days) that `services.py` stores as snapshots. Reads only, no writes.

Every aggregate is one GROUP BY over the scope's rows of the days asked for, so the database
does the work and only one row per (agent, version, day[, bucket]) comes back to Python,
never a row per interaction. Day windows and the median come from `kpis/periods.py`; the
maths on stored statistics (KPI values, calibration, agreement) is pure and lives in
`kpis/definitions.py` and `kpis/compute.py`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime

from django.db import connection
from django.db.models import Count, F, FloatField, Min, Q, Sum, Value
from django.db.models.functions import Cast, Floor, Least

from agents.models import FeedbackEvent, Interaction
from core.db import chunked
from kpis.definitions import (
    ALL_VERSIONS,
    CAL_BUCKETS,
    CALIBRATION_REASONS,
    DECIDING,
    Stats,
    combine,
    is_empty,
    top_refs,
)
from kpis.periods import (
    DAY,
    Median,
    day_of,
    day_start,
    seconds_between,
    utc_day,
    version_key,
    window,
)
from reviews.models import Review, ReviewItem

Key = tuple[str, date]  # (agent_version, day)

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


# --- the aggregates -----------------------------------------------------------------------------

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
        .values("agent_id", "agent_version", day=day_of("created_at"), bucket=bucket)
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
    for row in chunked(rows, 5000):  # one dict per group, not a cached list
        key = (row["agent_id"], version_key(row["agent_version"]), row["day"])
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
        "day": day_of("interaction__created_at"),
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
        out[(row["agt"], version_key(row["ver"]), row["day"])] = {
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
        refs[(row["agt"], version_key(row["ver"]), row["day"])][row["item_ref"]] = row["n"]
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
            day=day_of("created_at"),
        )
        .annotate(n=Count("pk"))
        .order_by()
    ):
        key = (row["agt"], version_key(row["ver"]), row["day"])
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
        seconds = seconds_between("created_at", "decided_at")
        for row in (
            base.values("agent_id", ver=F("interaction__agent_version"), day=day_of("decided_at"))
            .annotate(n=Count("pk"), median=Median(seconds))
            .order_by()
        ):
            out[(row["agent_id"], version_key(row["ver"]), row["day"])] = {
                "ttr_n": row["n"],
                "ttr_median": row["median"],
            }
        for row in (
            base.values("agent_id", day=day_of("decided_at"))
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
        durations[(agent_id, version_key(version), utc_day(decided))].append(seconds_)
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

    "Open" and "age" are those of reviews/metrics.py: undecided is `decided_at IS NULL`
    (the same items as metrics.BACKLOG_STATUSES, as only the move to done sets it), aged from
    metrics.QUEUED_AT; so today's row equals the workload page's backlog.
    """
    today = utc_day(now)
    wanted = {a: sorted(d for d in days if d <= today) for a, days in scope.items()}
    wanted = {a: days for a, days in wanted.items() if days}
    if not wanted:
        return {}
    since = day_start(min(days[0] for days in wanted.values())) + DAY
    items = ReviewItem.objects.filter(agent_id__in=sorted(wanted))
    key = {"ver": F("interaction__agent_version")}
    created: dict[tuple[int, str], dict[date, int]] = defaultdict(dict)
    for row in (
        items.filter(created_at__gte=since)
        .values("agent_id", **key, day=day_of("created_at"))
        .annotate(n=Count("pk"))
        .order_by()
    ):
        created[(row["agent_id"], version_key(row["ver"]))][row["day"]] = row["n"]
    # decision day None: still open
    closed: dict[tuple[int, str], dict[date | None, tuple[int, datetime]]] = defaultdict(dict)
    for row in (
        items.filter(Q(decided_at__isnull=True) | Q(decided_at__gte=since))
        .values("agent_id", **key, day=day_of("decided_at"))
        .annotate(n=Count("pk"), oldest=Min("created_at"))
        .order_by()
    ):
        closed[(row["agent_id"], version_key(row["ver"]))][row["day"]] = (row["n"], row["oldest"])
    out: dict[AgentKey, Stats] = {}
    for agent_id, version in set(created) | set(closed):
        made, done = created[(agent_id, version)], closed[(agent_id, version)]
        open_now = done.get(None, (0, None))[0]
        for day in wanted[agent_id]:
            end = min(day_start(day) + DAY, now)
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
    for item_id, agent_id, reviewer_id, verdict, created_at, version in chunked(reviews, 5000):
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
            (agent_id, version_key(version), day),
            {"fe_pairs": 0, "fe_agree": 0, "fe_matrix": [0] * 9, "fe_by_pair": {}},
        )
        stats["fe_pairs"] += 1
        stats["fe_agree"] += int(first_verdict == verdict)
        stats["fe_matrix"][3 * index[first_verdict] + index[verdict]] += 1
        (a, va), (b, vb) = sorted([(first_reviewer, first_verdict), (reviewer_id, verdict)])
        cell = stats["fe_by_pair"].setdefault(f"{a}-{b}", [0] * 9)
        cell[3 * index[va] + index[vb]] += 1
    return out


# --- a scope's statistics ----------------------------------------------------------------------

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
