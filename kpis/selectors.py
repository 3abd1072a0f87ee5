"""Reads of the KPI app: the dashboard, calibration and agreement views, the API rows and the
CSV, all from stored snapshots. Each function runs a fixed number of queries whatever the
number of days, versions or agents (the view tests assert it)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Min, Q
from django.utils import timezone

from agents.models import Agent
from core.spreadsheet import safe_cell
from kpis import compute
from kpis.definitions import (
    ALL_VERSIONS,
    BY_KEY,
    KPIS,
    Kpi,
    KpiValue,
    Stats,
    api_row,
    combine,
    format_duration,
    format_value,
)
from kpis.models import Alert, KpiRun, KpiSnapshot
from kpis.periods import period_medians

RANGE_CHOICES = (7, 14, 30, 90, 180, 365)
DEFAULT_RANGE = 30


@dataclass(frozen=True)
class Filters:
    agent: Agent
    version: str  # "" = all versions
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def previous(self) -> tuple[date, date]:
        """The period of the same length just before."""
        return self.start - timedelta(days=self.days), self.start - timedelta(days=1)

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


def agent_list() -> list[Agent]:
    return list(Agent.objects.order_by("slug").only("pk", "slug", "name", "kind"))


def agent_versions(agent: Agent) -> list[str]:
    """The versions with snapshots, newest release first (by the first day seen)."""
    first = dict(
        KpiSnapshot.objects.filter(agent=agent)
        .exclude(agent_version=ALL_VERSIONS)
        .values_list("agent_version")
        .annotate(first=Min("date"))
        .order_by()
    )
    return sorted(first, key=lambda v: (first[v], v), reverse=True)


def _rows(agent: Agent, first: date, last: date) -> list[KpiSnapshot]:
    return list(
        KpiSnapshot.objects.filter(agent=agent, date__gte=first, date__lte=last)
        .only("agent_version", "date", "stats")
        .order_by("date", "agent_version")
    )


def _combine_days(
    rows: list[KpiSnapshot], version: str, first: date, last: date, median: float | None
) -> Stats:
    return combine(
        (r.stats for r in rows if r.agent_version == version and first <= r.date <= last),
        across="days",
        medians=median,
    )


# --- headline cards -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    kpi: Kpi
    current: KpiValue
    previous: KpiValue
    symbol: str  # ▲ ▼ ▶ — the change is readable without colour
    change: str  # e.g. "+2.3 pts"
    tone: str  # "better", "worse", "neutral"
    significant: bool  # the two intervals do not overlap

    @property
    def value_text(self) -> str:
        return format_value(self.kpi, self.current.value)

    @property
    def interval_text(self) -> str:
        if self.kpi.kind == "rate" and self.current.low is not None:
            low, high = self.current.low * 100, self.current.high * 100
            return f"95% CI {low:.1f}–{high:.1f}%, n = {self.current.n:,}"
        if self.kpi.kind == "mean" and self.current.low is not None:
            return (
                f"95% CI {self.current.low:.2f} to {self.current.high:.2f}, n = {self.current.n:,}"
            )
        if self.kpi.kind in ("mean", "rate", "duration") and self.current.n:
            return f"n = {self.current.n:,}"
        return ""

    @property
    def tone_text(self) -> str:
        if self.tone == "neutral":
            return "no change" if self.symbol == "▶" else ""
        return self.tone if self.significant else f"{self.tone}, within noise"


def _card(kpi: Kpi, current: KpiValue, previous: KpiValue) -> Card:
    a, b = current.value, previous.value
    if a is None or b is None or not isinstance(a, int | float):
        return Card(kpi, current, previous, "▶" if a == b else "·", "", "neutral", False)
    delta = a - b
    symbol = "▲" if delta > 0 else "▼" if delta < 0 else "▶"
    if kpi.unit == "share":
        change = f"{delta * 100:+.1f} pts"
    elif kpi.unit == "seconds":
        change = ("+" if delta >= 0 else "−") + format_duration(abs(delta))
    elif kpi.kind == "count":
        change = f"{delta:+,}" + (f" ({delta / b:+.0%})" if b else "")
    else:
        change = f"{delta:+.2f}"
    sign = (delta > 0) - (delta < 0)
    tone = {1: "better", -1: "worse"}.get(sign * kpi.direction, "neutral")
    significant = (
        current.low is not None
        and previous.low is not None
        and (current.low > previous.high or current.high < previous.low)
    )
    return Card(kpi, current, previous, symbol, change, tone, significant)


# --- charts -------------------------------------------------------------------------------------

CHARTS = (
    ("rates", "Outcome and review rates", ("resolution_rate", "escalation_rate", "review_rate")),
    (
        "verdicts",
        "Verdicts on decided items",
        ("approval_rate", "correction_rate", "rejection_rate"),
    ),
    ("volume", "Volume and backlog", ("interactions", "backlog")),
    ("experience", "Sentiment and conversation length", ("mean_sentiment", "mean_turns")),
    ("review_speed", "Median time to review (hours)", ("median_time_to_review",)),
    ("recommendations", "Click-through and skip rate", ("click_through_rate", "skip_rate")),
)


def _series(by_day: dict[date, Stats], dates: list[date]) -> dict[str, Any]:
    """Chart.js data: one dataset per KPI with its interval and n per day (null when there
    is no data: a gap, not a zero). Charts without any data are left out."""
    values = {d: {k.key: k.of(by_day.get(d, {})) for k in KPIS} for d in dates}
    charts = []
    for chart_id, title, keys in CHARTS:
        datasets = []
        for key in keys:
            kpi = BY_KEY[key]
            scale = 1 / 3600 if kpi.unit == "seconds" else 100 if kpi.unit == "share" else 1
            points = [values[d][key] for d in dates]
            data = [None if p.value is None else round(p.value * scale, 4) for p in points]
            if kpi.kind == "count" and key != "backlog":
                data = [
                    p.value if d in by_day else None for p, d in zip(points, dates, strict=True)
                ]
            datasets.append(
                {
                    "key": key,
                    "label": kpi.label,
                    "unit": kpi.unit,
                    "data": data,
                    "low": [None if p.low is None else round(p.low * scale, 4) for p in points],
                    "high": [None if p.high is None else round(p.high * scale, 4) for p in points],
                    "n": [p.n for p in points],
                }
            )
        if any(v is not None and v != 0 for ds in datasets for v in ds["data"]):
            charts.append({"id": chart_id, "title": title, "datasets": datasets})
    return {"labels": [d.isoformat() for d in dates], "charts": charts}


# --- the dashboard ------------------------------------------------------------------------------

COMPARED = (
    "interactions",
    "resolution_rate",
    "escalation_rate",
    "mean_sentiment",
    "review_rate",
    "approval_rate",
    "correction_rate",
    "rejection_rate",
    "click_through_rate",
    "median_time_to_review",
)


def dashboard(filters: Filters) -> dict[str, Any]:
    """Everything the dashboard shows for one agent, version (or all) and date range."""
    agent, version = filters.agent, filters.version
    prev_start, prev_end = filters.previous
    rows = _rows(agent, prev_start, filters.end)
    medians = period_medians(
        agent.pk, {"cur": (filters.start, filters.end), "prev": (prev_start, prev_end)}
    )
    current = _combine_days(
        rows, version, filters.start, filters.end, medians.get(("cur", version))
    )
    previous = _combine_days(rows, version, prev_start, prev_end, medians.get(("prev", version)))
    cards = [
        _card(k, k.of(current), k.of(previous))
        for k in KPIS
        if k.headline and k.kind != "breakdown"
    ]
    cards = [c for c in cards if c.current.value is not None or c.previous.value is not None]

    by_day = {
        r.date: r.stats for r in rows if r.agent_version == version and r.date >= filters.start
    }
    versions_in_range = sorted(
        {
            r.agent_version
            for r in rows
            if r.agent_version != ALL_VERSIONS and r.date >= filters.start
        }
    )
    # The retraining batches each version was trained on (marked on the Exports page).
    from retraining.models import ExportBatch

    trained_on: dict[str, list[int]] = {}
    for batch_id, trained_version in (
        ExportBatch.objects.filter(
            agent=filters.agent,
            status=ExportBatch.Status.READY,
            trained_agent_version__in=versions_in_range,
        )
        .order_by("pk")
        .values_list("pk", "trained_agent_version")
    ):
        trained_on.setdefault(trained_version, []).append(batch_id)
    comparison = []
    for v in versions_in_range:
        stats = _combine_days(rows, v, filters.start, filters.end, medians.get(("cur", v)))
        first = min(r.date for r in rows if r.agent_version == v and r.date >= filters.start)
        comparison.append(
            {
                "version": v,
                "first_day": first,
                "values": _compared(stats),
                "batches": trained_on.get(v, []),
            }
        )
    comparison.sort(key=lambda c: (c["first_day"], c["version"]))
    comparison_rows = [
        {"kpi": BY_KEY[key], "cells": [c["values"][i] for c in comparison]}
        for i, key in enumerate(COMPARED)
    ]
    table = [
        {"date": d, "values": {k.key: k.of(by_day.get(d, {})) for k in KPIS}}
        for d in reversed(filters.dates())
    ]
    return {
        "filters": filters,
        "cards": cards,
        "decisions": BY_KEY["reviewer_decisions"].of(current),
        "top_skipped": BY_KEY["top_skipped_refs"].of(current),
        "chart_data": _series(by_day, filters.dates()),
        "comparison": comparison,
        "comparison_rows": comparison_rows,
        "table": table,
        "table_kpis": [k for k in KPIS if k.kind not in ("list", "breakdown")],
    }


def _compared(stats: Stats) -> list[dict[str, Any]]:
    out = []
    for key in COMPARED:
        kpi = BY_KEY[key]
        value = kpi.of(stats)
        bar = None
        if kpi.kind == "rate" and value.value is not None:
            bar = {
                "low": round(value.low * 100, 2),
                "width": round((value.high - value.low) * 100, 2),
                "value": round(value.value * 100, 2),
            }
        out.append({"kpi": kpi, "value": value, "text": format_value(kpi, value.value), "bar": bar})
    return out


def alerts_for(agent: Agent | None, *, resolved_days: int = 14) -> dict[str, list[Alert]]:
    """Open alerts (of every agent, the selected one first) and recently resolved ones."""
    since = timezone.now() - timedelta(days=resolved_days)
    alerts = list(
        Alert.objects.filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=since))
        .select_related("agent")
        .order_by("-raised_at")
    )
    for alert in alerts:
        alert.kpi_def = BY_KEY.get(alert.kpi)
    open_ = sorted(
        (a for a in alerts if a.resolved_at is None),
        key=lambda a: (agent is None or a.agent_id != agent.pk, -a.raised_at.timestamp()),
    )
    return {"open": open_, "resolved": [a for a in alerts if a.resolved_at is not None]}


def last_runs() -> dict[str, KpiRun | None]:
    runs = list(KpiRun.objects.order_by("-created_at", "-pk")[:20])
    return {
        "active": next((r for r in runs if r.active), None),
        "finished": next((r for r in runs if r.state == KpiRun.State.DONE), None),
    }


def run_get(pk: int) -> KpiRun | None:
    return KpiRun.objects.filter(pk=pk).select_related("requested_by").first()


# --- calibration --------------------------------------------------------------------------------


def calibration(filters: Filters, *, target: float, buckets: int = 10) -> dict[str, Any]:
    rows = _rows(filters.agent, filters.start, filters.end)
    stats = _combine_days(rows, filters.version, filters.start, filters.end, None)
    result = compute.calibration(stats.get("cal") or {}, target=target, buckets=buckets)
    threshold = filters.agent.confidence_threshold
    current = min(result.curve, key=lambda p: abs(p.threshold - threshold))
    chart = {
        "labels": [f"{b.low:.1f}–{b.high:.1f}" for b in result.buckets],
        "observed": [None if b.rate is None else round(b.rate * 100, 2) for b in result.buckets],
        "interval": [
            None if b.rate is None else [round(b.rate_low * 100, 2), round(b.rate_high * 100, 2)]
            for b in result.buckets
        ],
        "ideal": [
            round(
                (b.mean_confidence if b.mean_confidence is not None else (b.low + b.high) / 2)
                * 100,
                2,
            )
            for b in result.buckets
        ],
        "n": [b.n for b in result.buckets],
    }
    return {
        "filters": filters,
        "result": result,
        "current": current,
        "threshold": threshold,
        "chart": chart,
    }


# --- agreement ----------------------------------------------------------------------------------


def agreement(start: date, end: date, agent: Agent | None) -> dict[str, Any]:
    """Four-eyes agreement per agent and, for `agent`, per reviewer pair."""
    rows = KpiSnapshot.objects.filter(
        agent_version=ALL_VERSIONS, date__gte=start, date__lte=end, stats__has_key="fe_pairs"
    ).only("agent_id", "date", "stats")
    by_agent: dict[int, list[Stats]] = defaultdict(list)
    for row in rows.order_by("date"):
        by_agent[row.agent_id].append(row.stats)
    agents = {a.pk: a for a in Agent.objects.filter(pk__in=list(by_agent))}
    per_agent = []
    pairs: dict[str, list[int]] = {}
    for agent_id, stats_list in by_agent.items():
        stats = combine(stats_list, across="days")
        per_agent.append(
            {"agent": agents[agent_id], "agreement": compute.agreement(stats.get("fe_matrix"))}
        )
        if agent is not None and agent_id == agent.pk:
            pairs = stats.get("fe_by_pair") or {}
    per_agent.sort(key=lambda r: r["agent"].slug)
    ids = {int(i) for key in pairs for i in key.split("-")}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    per_pair = []
    for key, matrix in pairs.items():
        a, b = (int(i) for i in key.split("-"))
        per_pair.append(
            {
                "a": names.get(a, f"user {a}"),
                "b": names.get(b, f"user {b}"),
                "agreement": compute.agreement(matrix),
                "matrix": [matrix[0:3], matrix[3:6], matrix[6:9]],
            }
        )
    per_pair.sort(key=lambda r: (-r["agreement"].pairs, r["a"], r["b"]))
    return {"per_agent": per_agent, "per_pair": per_pair}


# --- the API and the CSV ------------------------------------------------------------------------


def daily_stats(filters: Filters) -> list[tuple[date, Stats]]:
    """The selection's stats for every day of the range (an empty dict on empty days)."""
    rows = KpiSnapshot.objects.filter(
        agent=filters.agent,
        agent_version=filters.version,
        date__gte=filters.start,
        date__lte=filters.end,
    ).values_list("date", "stats")
    by_day = dict(rows)
    return [(d, by_day.get(d, {})) for d in filters.dates()]


def api_rows(filters: Filters) -> dict[str, Any]:
    """GET /api/v1/kpis: one row per day of the range (empty days included, their KPIs
    null), for the version asked for or over all versions (agent_version null)."""
    version = filters.version or None
    rows = [
        {
            "date": day.isoformat(),
            "agent": filters.agent.slug,
            "agent_version": version,
            **api_row(s),
        }
        for day, s in daily_stats(filters)
    ]
    return {"rows": rows, "versions": agent_versions(filters.agent)}


def csv_text(filters: Filters) -> str:
    import pandas as pd

    frame = compute.stats_rows_to_frame(
        (day, filters.version or "all", stats) for day, stats in daily_stats(filters)
    )
    frame.insert(0, "agent", filters.agent.slug)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(safe_cell)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue()
