"""The loop's figures on a small designed data set, expected values worked out by hand
(z = 1.96, z² = 3.8415; Wilson: centre = (p + z²/2n) / (1 + z²/n),
half = z / (1 + z²/n) × √(p(1 − p)/n + z²/4n²))."""

import pytest

from evals import runs, selectors
from evals.models import Comparison, ComparisonVote, RegressionAnswer
from tests import factories
from tests.evals.conftest import decide, held_out_text
from tests.evals.factories import ComparisonFactory

pytestmark = pytest.mark.django_db

NEW, PREVIOUS = "2026.11.1", "2026.10.1"


def judged(agent, voter, version_a, version_b, outcome, *, a_on_left, kind="versions", **extra):
    """A done comparison with one (non-adjudication) vote for its outcome."""
    comparison = ComparisonFactory(
        agent=agent,
        kind=kind,
        version_a=version_a,
        version_b=version_b,
        a_on_left=a_on_left,
        status="done",
        outcome=outcome,
        **extra,
    )
    ComparisonVote.objects.create(
        comparison=comparison, reviewer=voter, choice=outcome, a_on_left=a_on_left
    )
    return comparison


@pytest.fixture
def versions_judged(agent, reviewer, lead):
    """2026.11.1 (A) against 2026.10.1 (B): 7 A wins (A on the left each time), 3 B wins (B on
    the left twice), 2 ties, 1 both bad: the left won 7 + 2 = 9 of 10 decisive votes. Then
    one disputed comparison an admin decided for A (the reviewer's vote: A, on the left).
    2026.11.1 against 2026.11.0: 5 A wins and 5 B wins, the left winning 5 of 10 (A on the
    left in 3 of A's wins, B on the left in 2 of B's wins).
    Not counted: an adjudication vote, a comparison not done, a regression comparison."""
    for _ in range(7):
        judged(agent, reviewer, NEW, PREVIOUS, "a", a_on_left=True)
    for a_on_left in (False, False, True):
        judged(agent, reviewer, NEW, PREVIOUS, "b", a_on_left=a_on_left)
    for outcome in ("tie", "tie", "both_bad"):
        judged(agent, reviewer, NEW, PREVIOUS, outcome, a_on_left=True)
    for i in range(5):
        judged(agent, reviewer, NEW, "2026.11.0", "a", a_on_left=i < 3)
    for i in range(5):
        judged(agent, reviewer, NEW, "2026.11.0", "b", a_on_left=i >= 2)
    disputed = judged(agent, reviewer, NEW, PREVIOUS, "a", a_on_left=True)
    ComparisonVote.objects.create(  # the lead's word on it: not a reviewer's free choice
        comparison=disputed, reviewer=lead, choice="a", a_on_left=True, is_adjudication=True
    )
    open_one = ComparisonFactory(agent=agent, version_a=NEW, version_b=PREVIOUS, a_on_left=True)
    ComparisonVote.objects.create(
        comparison=open_one, reviewer=reviewer, choice="a", a_on_left=True
    )
    judged(agent, reviewer, NEW, "reference", "a", a_on_left=True, kind="regression")


def test_it_counts_the_win_rate_of_a_version_pair(agent, versions_judged):
    pairs = {(p["version_a"], p["version_b"]): p for p in selectors.win_rates(agent)["pairs"]}

    pair = pairs[NEW, PREVIOUS]
    # The disputed one decided for A adds an eighth A win: 8 A, 3 B, 2 ties, 1 both bad.
    assert (pair["a_wins"], pair["b_wins"], pair["ties"], pair["both_bad"], pair["total"]) == (
        8,
        3,
        2,
        1,
        14,
    )
    # 8 of 11: p = 0.72727, n = 11: denominator 1.34923, centre (0.72727 + 0.17461) /
    # 1.34923 = 0.66844, half 1.45266 × √(0.018032 + 0.0079368) = 1.45266 × 0.161150 =
    # 0.23410 → [0.4343, 0.9025].
    rate = pair["win_rate_a"]
    assert rate["value"] == pytest.approx(8 / 11)
    assert (rate["low"], rate["high"]) == (
        pytest.approx(0.4343, abs=1e-4),
        pytest.approx(0.9025, abs=1e-4),
    )
    assert ("2026.11.1", "reference") not in pairs  # regression comparisons are not versions


def test_it_gives_7_of_10_its_interval(agent, reviewer):
    for _ in range(7):
        judged(agent, reviewer, "v2", "v1", "a", a_on_left=True)
    for _ in range(3):
        judged(agent, reviewer, "v2", "v1", "b", a_on_left=True)

    (pair,) = selectors.win_rates(agent)["pairs"]

    # 7 of 10 → 0.7 [0.3968, 0.8922] (tests/evals/test_stats.py works it out).
    rate = pair["win_rate_a"]
    assert rate["value"] == pytest.approx(0.7)
    assert rate["low"] == pytest.approx(0.3968, abs=1e-4)
    assert rate["high"] == pytest.approx(0.8922, abs=1e-4)
    # A was on the left every time: the left won 7 of 10, [0.3968, 0.8922] holds 0.5.
    assert pair["position_bias"]["value"] == pytest.approx(0.7)
    assert pair["position_bias"]["flagged"] is False


def test_it_flags_a_position_bias(agent, versions_judged):
    rates = selectors.win_rates(agent)
    pairs = {(p["version_a"], p["version_b"]): p for p in rates["pairs"]}

    # NEW vs PREVIOUS: the left won 9 of the 10 decisive votes of the fixture's list, and
    # the disputed comparison's reviewer vote (A, on the left) is a tenth of 11; the lead's
    # adjudication vote and the open comparison's vote are not counted.
    bias = pairs[NEW, PREVIOUS]["position_bias"]
    assert (bias["successes"], bias["n"]) == (10, 11)
    # 10 of 11: p = 0.90909, denominator 1 + 3.8415 / 11 = 1.34923,
    # centre (0.90909 + 0.17461) / 1.34923 = 0.80320,
    # half 1.45266 × √(0.0075131 + 0.0079368) = 1.45266 × 0.124298 = 0.18056
    # → [0.6226, 0.9838]: above one half, flagged.
    assert bias["low"] == pytest.approx(0.6226, abs=1e-4)
    assert bias["high"] == pytest.approx(0.9838, abs=1e-4)
    assert bias["flagged"] is True
    # NEW vs 2026.11.0: A on the left in 3 of A's wins, B on the left in 2 of B's wins:
    # 5 of 10 → 0.5, centre 0.5, half 1.41601 × √(0.025 + 0.0096037) = 0.26341
    # → [0.2366, 0.7634]: holds one half.
    even = pairs[NEW, "2026.11.0"]["position_bias"]
    assert (even["successes"], even["n"]) == (5, 10)
    assert even["low"] == pytest.approx(0.2366, abs=1e-4)
    assert even["high"] == pytest.approx(0.7634, abs=1e-4)
    assert even["flagged"] is False
    # Pooled: 15 of 21 = 0.71429, denominator 1 + 3.8415 / 21 = 1.18293,
    # centre (0.71429 + 0.09146) / 1.18293 = 0.68115,
    # half 1.65688 × √(0.0097182 + 0.0021777) = 1.65688 × 0.109068 = 0.18071
    # → [0.5004, 0.8619]: just above one half, flagged.
    pooled = rates["overall_position_bias"]
    assert (pooled["successes"], pooled["n"]) == (15, 21)
    assert pooled["low"] == pytest.approx(0.5004, abs=1e-4)
    assert pooled["high"] == pytest.approx(0.8619, abs=1e-4)
    assert pooled["flagged"] is True


def test_it_summarises_a_run_with_the_share_fixed(agent, decide_comparisons):
    """5 fixed (matched), 3 still wrong (unchanged), 2 worse (rejected items whose old answer
    a reviewer preferred), 1 pending: share fixed 5 / (5 + 3 + 2) = 0.5, [0.2366, 0.7634]
    (p = 0.5, n = 10: centre 0.5, half 1.41601 × √(0.025 + 0.0096037) = 0.26341)."""
    corrected = [decide(agent, held_out_text(), old="Old.", corrected="New.") for _ in range(8)]
    rejected = [
        decide(agent, held_out_text(), verdict="reject", old="Bad.", version="2026.10.2")
        for _ in range(3)
    ]
    batch = factories.ExportBatchFactory(agent=agent, ready=True, trained_agent_version=NEW)
    answers = [{"case_id": item.pk, "answer": "new."} for item in corrected[:5]]
    answers += [{"case_id": item.pk, "answer": "OLD."} for item in corrected[5:]]
    answers += [{"case_id": item.pk, "answer": "Different."} for item in rejected]
    run = runs.regression_run_post(agent=agent, agent_version=NEW, answers=answers).run
    routed = dict(
        RegressionAnswer.objects.filter(run=run, item__in=rejected[:2]).values_list(
            "item_id", "comparison_id"
        )
    )
    decide_comparisons(dict.fromkeys(routed.values(), "b"))

    summary = selectors.run_summary(run)

    assert (summary["fixed"], summary["still_wrong"], summary["worse"], summary["pending"]) == (
        5,
        3,
        2,
        1,
    )
    assert summary["total"] == 11
    share = summary["share_fixed"]
    assert share["value"] == 0.5 and share["n"] == 10
    assert share["low"] == pytest.approx(0.2366, abs=1e-4)
    assert share["high"] == pytest.approx(0.7634, abs=1e-4)
    assert summary["case_versions"] == ["2026.10.1", "2026.10.2"]
    assert summary["trained_on_batches"] == [batch.pk]
    assert summary["sentence"] == (
        "2026.11.1 fixes 50% [24–76%] of what reviewers corrected in 2026.10.1 and 2026.10.2"
    )
    assert Comparison.objects.filter(status="pending").count() == 1
