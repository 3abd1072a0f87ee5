"""Pure maths on stored KPI statistics: the calibration of an agent's confidence (reliability
diagram, expected calibration error, suggested review threshold), reviewer agreement
(percent and Cohen's kappa) and the CSV frame of daily KPI values.

No database and no Django here: the inputs are the statistics the snapshots store (SQL
aggregation is `kpis/stats.py`), so these functions are tested with hand-made numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from kpis.definitions import CAL_BUCKETS, KPIS, wilson

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
    import pandas as pd  # imported when a CSV is asked for, not with the module

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
