"""The statistics of the evals: proportions with their 95% Wilson interval.

The same formula as `kpis.definitions.wilson`, here because evals sits below kpis in the
layers (kpis may read evals, never the reverse); a test holds the two equal.
"""

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of `successes` out of `n`: sound at 0% and 100% and for
    small n, where the normal approximation leaves [0, 1] or has zero width. (None, None)
    when n is 0."""
    if n <= 0:
        return None, None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At 0% and 100% one bound is exactly 0 or 1 (rounding would give 1e-17 or 0.999…).
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


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
