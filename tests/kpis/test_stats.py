"""Every KPI of the hand-built data set (tests/kpis/conftest.py), aggregated by kpis/stats.py
in a recompute, against values worked out by hand. Wilson intervals are written out from the
formula (and agree with published tables)."""

from datetime import date

import pytest

from kpis import selectors, services
from tests.kpis.conftest import NOW

A = pytest.approx
NOV = {d: date(2026, 11, d) for d in (2, 3, 4, 5)}


@pytest.fixture
def rows(dataset):
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV[2], now=NOW)

    def get(version=""):
        filters = selectors.Filters(dataset.agent, version, NOV[2], NOV[5])
        return {row["date"]: row for row in selectors.api_rows(filters)["rows"]}

    return get


def rate(value, low, high, n):
    return {"value": A(value, abs=1e-6), "low": A(low, abs=1e-5), "high": A(high, abs=1e-5), "n": n}


NO_RATE = {"value": None, "low": None, "high": None, "n": 0}


def test_it_computes_the_interaction_kpis_over_all_versions(rows):
    day = rows()["2026-11-02"]
    assert day["agent_version"] is None
    assert day["interactions"] == {"value": 6}
    # resolved known for i1 i2 i3 i5 i6 (i4 unknown): 4 of 5; escalated: i2, 1 of 5
    assert day["resolution_rate"] == rate(0.8, 0.375535, 0.963777, 5)
    assert day["escalation_rate"] == rate(0.2, 0.036224, 0.624466, 5)
    # (0.5 - 0.5 + 1.0 + 0.0 + 0.5) / 5 and (4 + 6 + 2 + 3 + 5) / 5
    assert day["mean_sentiment"] == {"value": A(0.3), "n": 5}
    assert day["mean_turns"] == {"value": A(4.0), "n": 5}
    # i1..i4 queued, of 6
    assert day["review_rate"] == rate(4 / 6, 0.299993, 0.903229, 6)


def test_it_computes_the_verdict_rates_of_the_days_responses(rows):
    day = rows()["2026-11-02"]
    # decided: i1 approve, i2 approve, i3 correct (decided on 4 Nov, about a 2 Nov response)
    assert day["approval_rate"] == rate(2 / 3, 0.207659, 0.938509, 3)
    assert day["correction_rate"] == rate(1 / 3, 0.061490, 0.792341, 3)
    # 0 of 3: the Wilson interval still has width, and stays inside [0, 1]
    assert day["rejection_rate"] == rate(0.0, 0.0, 0.561497, 3)


def test_it_computes_click_through_skip_rate_and_skipped_refs(rows):
    day = rows()["2026-11-02"]
    # interactions with a click or skip: i1, i5, i6; with a click: i1, i5
    assert day["click_through_rate"] == rate(2 / 3, 0.207659, 0.938509, 3)
    # events: i1 click, i5 click + 2 skips (sent on 4 Nov, counted on the response's day),
    # i6 skip; thumbs_up is not a click or a skip. 3 skips of 5.
    assert day["skip_rate"] == rate(0.6, 0.230724, 0.882378, 5)
    assert day["top_skipped_refs"] == {"value": [{"ref": "P2", "n": 2}, {"ref": "P3", "n": 1}]}


def test_it_computes_the_review_work_of_the_day(rows):
    day = rows()["2026-11-02"]
    assert day["reviewer_decisions"] == {
        "value": {"approve": 2, "correct": 0, "reject": 0, "escalate": 0, "skip": 1},
        "n": 2,  # reviewed: i1 and i2 approved; the skip of i4 is not a review
    }
    # decided on 2 Nov: i1 after 30 min, i2 after 60 min → median 45 min
    assert day["median_time_to_review"] == {"value": A(2700.0), "n": 2}
    # open at midnight: i3 (decided 4 Nov) and i4; the oldest, i3, queued 11:00 → 13 h
    assert day["backlog"] == {"value": 2}
    assert day["backlog_oldest_age"] == {"value": A(46800.0), "n": 2}
    assert day["four_eyes_agreement_rate"] == NO_RATE


def test_it_gives_an_empty_day_a_row_without_values(rows):
    day = rows()["2026-11-03"]
    assert day["interactions"] == {"value": 0}
    for key in ("resolution_rate", "escalation_rate", "review_rate", "approval_rate"):
        assert day[key] == NO_RATE
    assert day["mean_sentiment"] == {"value": None, "n": 0}
    assert day["median_time_to_review"] == {"value": None, "n": 0}
    assert day["reviewer_decisions"]["n"] == 0
    # … but the queue did not go away: i3 and i4 still open, i3 queued 37 h before midnight
    assert day["backlog"] == {"value": 2}
    assert day["backlog_oldest_age"] == {"value": A(133200.0), "n": 2}


def test_it_counts_a_decision_on_the_day_it_was_made(rows):
    day = rows()["2026-11-04"]
    # i7 at 00:00:00 belongs to 4 Nov, not 3 Nov
    assert day["interactions"] == {"value": 2}
    assert day["resolution_rate"] == rate(0.5, 0.094531, 0.905469, 2)
    assert day["mean_sentiment"] == {"value": A(-0.25), "n": 2}
    assert day["mean_turns"] == {"value": A(5.0), "n": 2}
    assert day["approval_rate"] == NO_RATE  # nothing about 4 Nov responses was decided
    assert day["reviewer_decisions"]["value"]["correct"] == 1
    # i3: queued 2 Nov 11:00, decided 4 Nov 11:00 → 48 h
    assert day["median_time_to_review"] == {"value": A(172800.0), "n": 1}
    # only i4 open at midnight: queued 2 Nov 12:10 → 59 h 50 min
    assert day["backlog"] == {"value": 1}
    assert day["backlog_oldest_age"] == {"value": A(215400.0), "n": 1}


def test_it_measures_todays_backlog_age_up_to_now(rows):
    day = rows()["2026-11-05"]
    # i4 queued 2 Nov 12:10, now 5 Nov 12:00 → 71 h 50 min
    assert day["backlog"] == {"value": 1}
    assert day["backlog_oldest_age"] == {"value": A(258600.0), "n": 1}


def test_it_gives_a_100_percent_rate_a_wilson_interval(rows):
    day = rows("v1")["2026-11-02"]
    assert day["agent_version"] == "v1"
    assert day["interactions"] == {"value": 4}
    # every v1 response was queued: 4 of 4
    assert day["review_rate"] == rate(1.0, 0.510109, 1.0, 4)
    assert day["resolution_rate"] == rate(2 / 3, 0.207659, 0.938509, 3)
    assert day["mean_sentiment"] == {"value": A(1 / 3), "n": 3}
    assert day["click_through_rate"] == rate(1.0, 0.206549, 1.0, 1)
    assert day["skip_rate"] == rate(0.0, 0.0, 0.793451, 1)
    assert day["median_time_to_review"] == {"value": A(2700.0), "n": 2}


def test_it_shows_a_version_without_reviews(rows):
    day = rows("v2")["2026-11-02"]
    assert day["interactions"] == {"value": 2}
    assert day["resolution_rate"] == rate(1.0, 0.342380, 1.0, 2)
    assert day["escalation_rate"] == rate(0.0, 0.0, 0.657620, 2)
    assert day["review_rate"] == rate(0.0, 0.0, 0.657620, 2)
    assert day["approval_rate"] == NO_RATE
    assert day["correction_rate"] == NO_RATE
    assert day["reviewer_decisions"]["n"] == 0
    assert day["median_time_to_review"] == {"value": None, "n": 0}
    assert day["click_through_rate"] == rate(0.5, 0.094531, 0.905469, 2)
    assert day["skip_rate"] == rate(0.75, 0.300642, 0.954413, 4)
    assert day["backlog"] == {"value": 0}


def test_it_stores_the_calibration_counts_of_the_responses(dataset, rows):
    from kpis.models import KpiSnapshot

    stats = KpiSnapshot.objects.get(agent=dataset.agent, agent_version="v1", date=NOV[2]).stats
    # bucket = confidence // 0.05: [responses, decided (low confidence / audit), approved, Σ conf]
    assert stats["cal"] == {
        "18": [1, 1, 1, A(0.9)],  # i1 0.90 audit, approved
        "6": [1, 1, 1, A(0.3)],  # i2 0.30 approved
        "12": [1, 1, 0, A(0.6)],  # i3 0.60 corrected
        "4": [1, 0, 0, 0.0],  # i4 0.20 still open
    }


def test_it_combines_days_by_summing_counts_not_averaging_rates(dataset, rows):
    from kpis.definitions import BY_KEY, combine
    from kpis.models import KpiSnapshot

    snapshots = KpiSnapshot.objects.filter(agent=dataset.agent, agent_version="").order_by("date")
    week = combine((s.stats for s in snapshots), across="days")
    # resolution: 4 of 5 on 2 Nov, 1 of 2 on 4 Nov → 5 of 7 (the mean of rates would be 0.65)
    assert BY_KEY["resolution_rate"].of(week).value == A(5 / 7)
    assert BY_KEY["interactions"].of(week).value == 8
    # the backlog of a period is the one at its end
    assert BY_KEY["backlog"].of(week).value == 1
