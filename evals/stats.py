"""The statistics of the evals: proportions with their 95% Wilson interval
(`core.stats.wilson`, the one kpis uses too)."""

from core.stats import wilson


def proportion(successes: int, n: int) -> dict[str, float | int | None]:
    """`{"value", "low", "high", "n", "successes"}`: a share and its interval (value None
    when n is 0), the shape the API and the KPI page show."""
    low, high = wilson(successes, n)
    return {
        "value": successes / n if n > 0 else None,
        "low": low,
        "high": high,
        "n": n,
        "successes": successes,
    }


def percent_text(share: dict) -> str:
    """`71% [64–77%]` (whole percents), or `–` when there is nothing to show."""
    if share.get("value") is None:
        return "–"
    value, low, high = (round(100 * share[k]) for k in ("value", "low", "high"))
    return f"{value}% [{low}–{high}%]"
