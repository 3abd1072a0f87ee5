"""evals.stats: the Wilson interval the evals report (core.stats.wilson, shared with kpis)."""

import pytest

from evals import stats
from kpis import definitions


@pytest.mark.parametrize(
    ("successes", "n"), [(0, 1), (1, 1), (7, 10), (3, 10), (0, 25), (25, 25), (71, 100), (1, 3)]
)
def test_it_equals_the_kpi_wilson(successes, n):
    assert stats.wilson(successes, n) == definitions.wilson(successes, n)


def test_it_gives_the_hand_computed_interval_of_7_of_10():
    # z = 1.96, z² = 3.8415; p = 0.7, n = 10: denominator 1 + 0.38415 = 1.38415,
    # centre (0.7 + 0.19207) / 1.38415 = 0.64449,
    # half 1.96 / 1.38415 × √(0.021 + 0.0096037) = 1.41601 × 0.174939 = 0.247718,
    # → [0.3968, 0.8922].
    low, high = stats.wilson(7, 10)

    assert low == pytest.approx(0.3968, abs=1e-4)
    assert high == pytest.approx(0.8922, abs=1e-4)


def test_it_pins_the_bounds_at_0_and_100_percent():
    # 0 of 4: low exactly 0; high = centre + half = 2 × (z²/8) / (1 + z²/4) = 0.96037 / 1.96037.
    assert stats.wilson(0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))
    assert stats.wilson(4, 4) == (pytest.approx(0.5101, abs=1e-4), 1.0)


def test_it_has_no_interval_without_observations():
    assert stats.wilson(0, 0) == (None, None)
    assert stats.proportion(0, 0)["value"] is None
    assert stats.percent_text(stats.proportion(0, 0)) == "–"


def test_it_writes_a_share_as_whole_percents():
    assert stats.percent_text(stats.proportion(7, 10)) == "70% [40–89%]"
