"""Interval statistics shared by the apps that report shares (kpis, evals). Pure functions:
no database, no Django."""

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion: sound at 0% and 100% and for small n,
    where the normal approximation gives intervals outside [0, 1] or of zero width.
    (None, None) when n is 0."""
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
