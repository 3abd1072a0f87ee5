"""The KPI list: name, formula, unit and direction of every KPI, and how each is derived from
the sufficient statistics a snapshot stores (kpis/README.md documents the same list; a test
keeps the two in step).

Statistics are counts and sums, so a KPI over any set of days (or of versions) is computed
from the *sum* of their statistics, never from an average of daily values: resolution over a
week is Σ resolved / Σ outcomes known. Pure functions only: no database, no Django.

Day attribution (all days are UTC dates):
- what the agent did (interactions, outcomes, sentiment, turns, review rate, verdict rates,
  calibration, click-through / skip) belongs to the day the interaction was created, so a
  day's approval rate is the verdict on *that day's responses*, filled in as reviews arrive;
- the review work (decisions made, time to review, backlog, four-eyes agreement) belongs to
  the day it happened: the review's day, the decision's day, the end of the day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.stats import Z95, wilson

UNVERSIONED = "(unversioned)"  # agent_version of the rows of interactions sent without one
ALL_VERSIONS = ""  # agent_version of the row over all versions

VERDICTS = ("approve", "correct", "reject", "escalate", "skip")
DECIDING = ("approve", "correct", "reject")
# What counts as reviewed (reviews/metrics.py REVIEWED_VERDICTS, mirrored here to keep this
# module free of Django; tests/reviews/test_metrics.py keeps them equal): every verdict but a
# skip, adjudications included. The queue and workload pages count "reviewed today" the same
# way over the same UTC day.
REVIEWED = ("approve", "correct", "reject", "escalate")
# Items whose reason samples responses without looking at them: below the threshold every
# response is reviewed, above it the audit sample is random. Rule and feedback items are
# chosen for what they are (an intent, a complaint), so they would bias calibration.
CALIBRATION_REASONS = ("low_confidence", "audit_sample")
CAL_BUCKETS = 20  # stored confidence buckets of width 0.05; pages may show fewer
TOP_REFS = 50  # skipped item refs kept per row

Stats = dict[str, Any]


# --- intervals ----------------------------------------------------------------------------------


def mean_interval(
    total: float, squares: float, n: int, z: float = Z95
) -> tuple[float | None, float | None]:
    """Normal interval of a mean from its sum and sum of squares (sample variance)."""
    if n < 2:
        return None, None
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    half = z * math.sqrt(variance / n)
    return mean - half, mean + half


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiValue:
    """A KPI over some days: `value` None when there is no data (n = 0)."""

    value: Any = None
    n: int | None = None
    low: float | None = None
    high: float | None = None

    def api(self, kind: str) -> dict[str, Any]:
        """The API shape (DESIGN.md): rates carry their interval and n, means their n."""
        if kind == "rate":
            return {"value": self.value, "low": self.low, "high": self.high, "n": self.n or 0}
        if kind in ("mean", "duration"):
            return {"value": self.value, "n": self.n or 0}
        if kind == "breakdown":
            return {"value": self.value, "n": self.n or 0}
        return {"value": self.value}


def _rate(successes: str, total: str) -> Callable[[Stats], KpiValue]:
    def derive(stats: Stats) -> KpiValue:
        n = int(stats.get(total) or 0)
        if not n:
            return KpiValue(None, 0)
        k = int(stats.get(successes) or 0)
        low, high = wilson(k, n)
        return KpiValue(k / n, n, low, high)

    return derive


def _mean(prefix: str) -> Callable[[Stats], KpiValue]:
    def derive(stats: Stats) -> KpiValue:
        n = int(stats.get(f"{prefix}_n") or 0)
        if not n:
            return KpiValue(None, 0)
        total = float(stats.get(f"{prefix}_sum") or 0.0)
        low, high = mean_interval(total, float(stats.get(f"{prefix}_sq") or 0.0), n)
        return KpiValue(total / n, n, low, high)

    return derive


def _count(key: str) -> Callable[[Stats], KpiValue]:
    return lambda stats: KpiValue(int(stats.get(key) or 0))


def _median_ttr(stats: Stats) -> KpiValue:
    n = int(stats.get("ttr_n") or 0)
    median = stats.get("ttr_median")
    return KpiValue(None if median is None else float(median), n)


def _backlog(stats: Stats) -> KpiValue:
    return KpiValue(int(stats["backlog"]) if stats.get("backlog") is not None else None)


def _backlog_oldest(stats: Stats) -> KpiValue:
    age = stats.get("backlog_oldest")
    return KpiValue(None if age is None else float(age), int(stats.get("backlog") or 0))


def _decisions(stats: Stats) -> KpiValue:
    """The reviews by verdict (skips shown too); n = the items reviewed (skips not counted)."""
    counts = {v: int((stats.get("decisions") or {}).get(v, 0)) for v in VERDICTS}
    return KpiValue(counts, sum(counts[v] for v in REVIEWED))


def _top_refs(stats: Stats, limit: int = 10) -> KpiValue:
    refs = stats.get("skipped_refs") or {}
    top = sorted(refs.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return KpiValue([{"ref": ref, "n": n} for ref, n in top], sum(refs.values()))


@dataclass(frozen=True)
class Kpi:
    key: str  # the API field
    label: str
    formula: str
    unit: str  # "share", "interactions", "score", "turns", "seconds", "items", "reviews"
    direction: int  # +1 higher is better, -1 lower is better, 0 neither
    kind: str  # "rate", "mean", "count", "duration", "breakdown", "list"
    derive: Callable[[Stats], KpiValue] = field(repr=False, compare=False)
    headline: bool = True  # a card on the dashboard

    def of(self, stats: Stats) -> KpiValue:
        return self.derive(stats)

    @property
    def direction_text(self) -> str:
        return {1: "higher is better", -1: "lower is better"}.get(self.direction, "neutral")


KPIS: tuple[Kpi, ...] = (
    Kpi(
        "interactions",
        "Interactions",
        "count of interactions created that day",
        "interactions",
        0,
        "count",
        _count("interactions"),
    ),
    Kpi(
        "resolution_rate",
        "Resolution rate",
        "resolved = true / interactions whose outcome is known (resolved not null)",
        "share",
        1,
        "rate",
        _rate("resolved", "resolved_n"),
    ),
    Kpi(
        "escalation_rate",
        "Escalation rate",
        "escalated = true / interactions whose escalation flag is known",
        "share",
        -1,
        "rate",
        _rate("escalated", "escalated_n"),
    ),
    Kpi(
        "mean_sentiment",
        "Mean sentiment",
        "Σ sentiment / interactions with a sentiment (−1 … 1)",
        "score",
        1,
        "mean",
        _mean("sentiment"),
    ),
    Kpi(
        "mean_turns",
        "Mean conversation length",
        "Σ turns / interactions with a turn count",
        "turns",
        -1,
        "mean",
        _mean("turns"),
    ),
    Kpi(
        "review_rate",
        "Review rate",
        "interactions routed to review (any reason) / interactions",
        "share",
        -1,
        "rate",
        _rate("routed", "interactions"),
    ),
    Kpi(
        "approval_rate",
        "Approval rate",
        "items decided approve / decided items (final verdict approve, correct or reject)",
        "share",
        1,
        "rate",
        _rate("approved", "decided"),
    ),
    Kpi(
        "correction_rate",
        "Correction rate",
        "items decided correct / decided items",
        "share",
        -1,
        "rate",
        _rate("corrected", "decided"),
    ),
    Kpi(
        "rejection_rate",
        "Rejection rate",
        "items decided reject / decided items",
        "share",
        -1,
        "rate",
        _rate("rejected", "decided"),
    ),
    Kpi(
        "click_through_rate",
        "Click-through rate",
        "interactions with ≥ 1 `clicked` event / interactions with ≥ 1 `clicked` or "
        "`skipped` event",
        "share",
        1,
        "rate",
        _rate("clicked", "feedback_n"),
    ),
    Kpi(
        "skip_rate",
        "Skip rate",
        "`skipped` events / (`clicked` + `skipped` events): the share of recommended items "
        "passed over",
        "share",
        -1,
        "rate",
        _rate("skipped_events", "feedback_events"),
    ),
    Kpi(
        "top_skipped_refs",
        "Top skipped item refs",
        "`skipped` events per item_ref, most first (ten shown)",
        "events",
        0,
        "list",
        _top_refs,
        headline=False,
    ),
    Kpi(
        "reviewer_decisions",
        "Reviewer decisions",
        "reviews made that day (UTC), by verdict; reviewed = all but skips",
        "reviews",
        0,
        "breakdown",
        _decisions,
    ),
    Kpi(
        "median_time_to_review",
        "Median time to review",
        "median of decided_at − queued (ReviewItem.created_at) over items decided that day",
        "seconds",
        -1,
        "duration",
        _median_ttr,
    ),
    Kpi(
        "backlog",
        "Backlog",
        "items queued and not yet decided (pending, claimed, awaiting a second review or "
        "disputed) at the end of the day (now, for today)",
        "items",
        -1,
        "count",
        _backlog,
    ),
    Kpi(
        "backlog_oldest_age",
        "Age of oldest open item",
        "end of the day (now, for today) − queued time (ReviewItem.created_at) of the oldest "
        "undecided item",
        "seconds",
        -1,
        "duration",
        _backlog_oldest,
    ),
    Kpi(
        "four_eyes_agreement_rate",
        "Four-eyes agreement rate",
        "four-eyes items whose first two deciding reviews agree / four-eyes items with two "
        "deciding reviews (counted on the day of the second)",
        "share",
        1,
        "rate",
        _rate("fe_agree", "fe_pairs"),
    ),
)
BY_KEY: dict[str, Kpi] = {k.key: k for k in KPIS}


def values(stats: Stats) -> dict[str, KpiValue]:
    """Every KPI of one set of statistics."""
    return {k.key: k.of(stats) for k in KPIS}


def api_row(stats: Stats) -> dict[str, Any]:
    return {k.key: k.of(stats).api(k.kind) for k in KPIS}


# --- statistics ---------------------------------------------------------------------------------

# Every statistic a snapshot may hold, with how it combines. "sum" adds (numbers, and
# dicts / lists element-wise); across days the end-of-day state keeps the latest day's value
# ("last"); across versions the oldest open item is the oldest of any version ("max" age).
# The median cannot be combined: it is recomputed from the items for any other grouping.
STAT_KEYS: dict[str, tuple[str, str]] = {
    # key: (across versions, across days)
    "interactions": ("sum", "sum"),
    "resolved": ("sum", "sum"),
    "resolved_n": ("sum", "sum"),
    "escalated": ("sum", "sum"),
    "escalated_n": ("sum", "sum"),
    "sentiment_sum": ("sum", "sum"),
    "sentiment_sq": ("sum", "sum"),
    "sentiment_n": ("sum", "sum"),
    "turns_sum": ("sum", "sum"),
    "turns_sq": ("sum", "sum"),
    "turns_n": ("sum", "sum"),
    "routed": ("sum", "sum"),
    "decided": ("sum", "sum"),
    "approved": ("sum", "sum"),
    "corrected": ("sum", "sum"),
    "rejected": ("sum", "sum"),
    # calibration: bucket → [interactions, decided (calibration reasons), approved, Σ conf]
    "cal": ("sum", "sum"),
    "feedback_n": ("sum", "sum"),  # interactions with a click or skip event
    "clicked": ("sum", "sum"),  # … with a click
    "feedback_events": ("sum", "sum"),  # click and skip events
    "skipped_events": ("sum", "sum"),
    "skipped_refs": ("sum", "sum"),
    "decisions": ("sum", "sum"),
    "ttr_n": ("sum", "sum"),
    "ttr_median": ("median", "median"),
    "backlog": ("sum", "last"),
    "backlog_oldest": ("max", "last"),
    "fe_pairs": ("sum", "sum"),
    "fe_agree": ("sum", "sum"),
    # 3 × 3 verdict matrix (DECIDING order), first review × second review
    "fe_matrix": ("sum", "sum"),
    # "reviewer id-reviewer id" (lower id first) → 3 × 3 matrix, lower id × higher id
    "fe_by_pair": ("sum", "sum"),
}


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _add(out.get(key), value)
        return out
    if isinstance(a, list):
        if len(a) < len(b):
            a = a + [0] * (len(b) - len(a))
        return [_add(x, b[i]) if i < len(b) else x for i, x in enumerate(a)]
    return a + b


def combine(rows: Iterable[Stats], *, across: str, medians: float | None = None) -> Stats:
    """One set of statistics from several: `across` "versions" (the same day) or "days" (rows
    in date order, oldest first). `medians` is the median time to review of the combination,
    computed by the caller from the items (it cannot be combined from medians)."""
    position = 0 if across == "versions" else 1
    out: Stats = {}
    for stats in rows:
        for key, value in stats.items():
            rule = STAT_KEYS.get(key, ("sum", "sum"))[position]
            if rule == "sum":
                out[key] = _add(out.get(key), value)
            elif rule == "last":
                out[key] = value
            elif rule == "max":
                current = out.get(key)
                out[key] = value if current is None or (value or 0) > current else current
    out["ttr_median"] = medians
    if "skipped_refs" in out and across == "versions":
        out["skipped_refs"] = top_refs(out["skipped_refs"])
    return out


def top_refs(refs: Mapping[str, int], limit: int = TOP_REFS) -> dict[str, int]:
    top = sorted(refs.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return dict(top)


def is_empty(stats: Stats) -> bool:
    """A row worth storing has something in it."""
    return not any(
        stats.get(key)
        for key in ("interactions", "decisions", "ttr_n", "backlog", "fe_pairs", "feedback_n")
    )


# --- alert thresholds ---------------------------------------------------------------------------

THRESHOLD_KEYS = {"below", "above", "days", "min_n"}
ALERTABLE = tuple(k.key for k in KPIS if k.kind in ("rate", "mean", "count", "duration"))


def thresholds_validate(thresholds: Any) -> list[str]:
    """Problems of an Agent.alert_thresholds value, one message each (empty when valid).
    Shape: {kpi: {"below" | "above": number, "days": 1-366, "min_n": ≥ 0}}."""
    if not isinstance(thresholds, dict):
        return ["must be an object of KPI name → threshold"]
    problems = []
    for key, spec in thresholds.items():
        if key not in ALERTABLE:
            problems.append(f"{key}: unknown KPI (one of {', '.join(ALERTABLE)})")
            continue
        if not isinstance(spec, dict):
            problems.append(f'{key}: must be an object like {{"below": 0.7, "days": 7}}')
            continue
        unknown = set(spec) - THRESHOLD_KEYS
        if unknown:
            problems.append(f"{key}: unknown fields {', '.join(sorted(unknown))}")
        bounds = [b for b in ("below", "above") if b in spec]
        if not bounds:
            problems.append(f"{key}: needs a bound, below or above")
        for b in bounds:
            if not isinstance(spec[b], int | float) or isinstance(spec[b], bool):
                problems.append(f"{key}.{b}: must be a number")
        days = spec.get("days", 7)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
            problems.append(f"{key}.days: must be a whole number of days from 1 to 366")
        min_n = spec.get("min_n", 0)
        if not isinstance(min_n, int) or isinstance(min_n, bool) or min_n < 0:
            problems.append(f"{key}.min_n: must be a whole number ≥ 0")
    return problems


def threshold_crossed(spec: Mapping[str, Any], value: KpiValue) -> bool | None:
    """True when crossed, False when within bounds, None when there is too little data to
    say (no value, or fewer than min_n observations): an open alert then stays open."""
    if value.value is None or not isinstance(value.value, int | float):
        return None
    n = value.n if value.n is not None else value.value
    if n < spec.get("min_n", 0):
        return None
    below, above = spec.get("below"), spec.get("above")
    return bool(
        (below is not None and value.value < below) or (above is not None and value.value > above)
    )


# --- formatting (pages and CSV) -----------------------------------------------------------------


def format_value(kpi: Kpi, value: Any) -> str:
    if value is None:
        return "—"
    if kpi.unit == "share":
        return f"{value * 100:.1f}%"
    if kpi.unit == "seconds":
        return format_duration(value)
    if kpi.kind == "count":
        return f"{int(value):,}"
    if kpi.kind == "mean":
        return f"{value:.2f}"
    return str(value)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
