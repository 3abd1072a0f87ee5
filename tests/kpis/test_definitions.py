"""The KPI list and the maths on statistics (no database)."""

from pathlib import Path

import pytest

from kpis.definitions import (
    BY_KEY,
    KPIS,
    KpiValue,
    combine,
    mean_interval,
    threshold_crossed,
    thresholds_validate,
    wilson,
)

A = pytest.approx


def test_it_gives_zero_successes_an_interval_from_zero():
    # 0 of 10: centre (z²/20) / (1 + z²/10) = 0.13877, half-width the same → [0, 0.27753]
    low, high = wilson(0, 10)
    assert low == 0.0
    assert high == A(0.277533, abs=1e-6)


def test_it_gives_all_successes_an_interval_up_to_one():
    low, high = wilson(10, 10)
    assert low == A(0.722467, abs=1e-6)
    assert high == 1.0


def test_it_has_no_interval_without_observations():
    assert wilson(0, 0) == (None, None)


def test_it_computes_a_mean_interval_from_sums():
    # values 1, 2, 3: mean 2, sample sd 1, half-width 1.959964 / √3 = 1.131586
    low, high = mean_interval(6.0, 14.0, 3)
    assert (low, high) == (A(0.868414, abs=1e-6), A(3.131586, abs=1e-6))
    assert mean_interval(2.0, 4.0, 1) == (None, None)


def test_it_combines_versions_of_a_day_with_the_oldest_open_item():
    day = combine(
        [{"backlog": 2, "backlog_oldest": 100.0}, {"backlog": 1, "backlog_oldest": 500.0}],
        across="versions",
    )
    assert day["backlog"] == 3
    assert day["backlog_oldest"] == 500.0


def test_it_adds_nested_statistics():
    merged = combine(
        [
            {"decisions": {"approve": 1}, "cal": {"3": [2, 1, 1, 0.3]}, "fe_matrix": [1] + [0] * 8},
            {
                "decisions": {"approve": 2, "skip": 1},
                "cal": {"3": [1, 1, 0, 0.16], "4": [1, 0, 0, 0]},
            },
        ],
        across="days",
    )
    assert merged["decisions"] == {"approve": 3, "skip": 1}
    assert merged["cal"] == {"3": [3, 2, 1, A(0.46)], "4": [1, 0, 0, 0]}
    assert merged["fe_matrix"] == [1] + [0] * 8


def test_it_keys_every_kpi_uniquely():
    assert len(BY_KEY) == len(KPIS)
    assert all(k.direction in (-1, 0, 1) for k in KPIS)


def test_it_documents_every_kpi_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "kpis" / "README.md").read_text()
    missing = [k.key for k in KPIS if f"`{k.key}`" not in readme]
    assert missing == []


def test_it_accepts_valid_thresholds():
    thresholds = {
        "resolution_rate": {"below": 0.7, "days": 7, "min_n": 50},
        "backlog": {"above": 200},
    }
    assert thresholds_validate(thresholds) == []


def test_it_explains_invalid_thresholds():
    problems = thresholds_validate(
        {"nope": {"below": 1}, "resolution_rate": {"days": 0, "colour": "red"}}
    )
    assert any(p.startswith("nope: unknown KPI") for p in problems)
    assert "resolution_rate: needs a bound, below or above" in problems
    assert "resolution_rate: unknown fields colour" in problems
    assert any(p.startswith("resolution_rate.days") for p in problems)


def test_it_says_nothing_about_a_threshold_without_enough_data():
    spec = {"below": 0.7, "min_n": 50}
    assert threshold_crossed(spec, KpiValue(0.5, 49)) is None
    assert threshold_crossed(spec, KpiValue(0.5, 50)) is True
    assert threshold_crossed(spec, KpiValue(0.7, 50)) is False
    assert threshold_crossed(spec, KpiValue(None, 0)) is None
    assert threshold_crossed({"above": 10}, KpiValue(11)) is True
