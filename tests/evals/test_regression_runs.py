"""Regression runs (evals.runs.regression_run_post): matching, routing to comparisons,
idempotence, per-answer errors, and the outcome a decided comparison gives."""

import pytest

from evals import regression, runs, selectors
from evals.models import Comparison, RegressionAnswer, RegressionRun
from tests.evals.conftest import decide, held_out_text, train_text

pytestmark = pytest.mark.django_db

OLD, REFERENCE = "You can return items within 14 days.", "You can return items within 30 days."


@pytest.fixture
def cases(agent):
    """Two corrected cases and one rejected, all held out."""
    return {
        "fix": decide(agent, held_out_text(), old=OLD, corrected=REFERENCE),
        "other": decide(agent, held_out_text(), old=OLD, corrected=REFERENCE),
        "rejected": decide(agent, held_out_text(), verdict="reject", old="Call us."),
    }


def post(agent, answers, **kwargs):
    return runs.regression_run_post(
        agent=agent, agent_version=kwargs.pop("version", "2026.11.1"), answers=answers, **kwargs
    )


def test_it_matches_by_text_and_routes_the_rest(agent, cases):
    result = post(
        agent,
        [
            {"case_id": cases["fix"].pk, "answer": "  you can RETURN items\n within 30 days. "},
            {"case_id": cases["other"].pk, "answer": OLD.upper()},
            {"case_id": cases["rejected"].pk, "answer": "Write to returns@example.com."},
        ],
    )

    assert (result.created, result.matched, result.unchanged, result.routed) == (3, 1, 1, 1)
    answers = {a.item_id: a for a in RegressionAnswer.objects.filter(run=result.run)}
    assert (answers[cases["fix"].pk].outcome, answers[cases["fix"].pk].matched_by) == (
        "fixed",
        "match",
    )
    assert (answers[cases["other"].pk].outcome, answers[cases["other"].pk].matched_by) == (
        "still_wrong",
        "unchanged",
    )
    routed = answers[cases["rejected"].pk]
    assert (routed.outcome, routed.matched_by) == ("pending", "review")
    comparison = routed.comparison
    assert comparison.kind == "regression" and comparison.status == "pending"
    assert (comparison.answer_a, comparison.version_a) == (
        "Write to returns@example.com.",
        "2026.11.1",
    )
    # A rejected case has no reference: the new answer is judged against the old one.
    assert (comparison.answer_b, comparison.version_b) == ("Call us.", "previous")
    assert comparison.interaction_id == cases["rejected"].interaction_id
    assert (comparison.domain, comparison.intent, comparison.agent_id) == (
        "support",
        "returns",
        agent.pk,
    )


def test_a_new_answer_to_a_correction_is_compared_with_the_reference(agent, cases):
    result = post(agent, [{"case_id": cases["fix"].pk, "answer": "Within a month."}])

    comparison = Comparison.objects.get()
    assert result.routed == 1
    assert (comparison.answer_b, comparison.version_b) == (REFERENCE, "reference")
    assert comparison.required_reviews == agent.required_reviews


def test_posting_the_same_run_again_changes_nothing(agent, cases):
    answers = [
        {"case_id": cases["fix"].pk, "answer": REFERENCE},
        {"case_id": cases["rejected"].pk, "answer": "Something new."},
    ]
    first = post(agent, answers, label="nightly")
    before = selectors.run_summary(first.run)

    again = post(agent, answers, label="nightly")

    assert again.run.pk == first.run.pk
    assert (again.created, again.duplicates, again.routed) == (0, 2, 0)
    assert RegressionAnswer.objects.count() == 2 and Comparison.objects.count() == 1
    assert selectors.run_summary(again.run) == before


def test_a_run_may_come_in_parts(agent, cases):
    post(agent, [{"case_id": cases["fix"].pk, "answer": REFERENCE}])
    second = post(agent, [{"case_id": cases["other"].pk, "answer": OLD}])

    assert RegressionRun.objects.count() == 1
    assert selectors.run_summary(second.run)["total"] == 2


def test_it_names_each_bad_answer_and_keeps_the_good_ones(agent, cases):
    not_in_set = decide(agent, train_text())
    approved = decide(agent, held_out_text(), verdict="approve")
    result = post(
        agent,
        [
            {"case_id": cases["fix"].pk, "answer": REFERENCE},  # 0: good
            {"case_id": 999_999, "answer": "x"},  # 1: unknown
            {"case_id": not_in_set.pk, "answer": "x"},  # 2: not held out
            {"case_id": approved.pk, "answer": "x"},  # 3: approved: not a case
            {"case_id": cases["other"].pk},  # 4: no answer
            {"case_id": cases["other"].pk, "answer": "   "},  # 5: empty answer
            {"answer": "x"},  # 6: no case id
            {"case_id": cases["fix"].pk, "answer": "again"},  # 7: answered twice
            "nonsense",  # 8
            {"case_id": cases["rejected"].pk, "answer": "Call us."},  # 9: good
        ],
    )

    assert [(e.index, e.field) for e in result.errors] == [
        (1, "case_id"),
        (2, "case_id"),
        (3, "case_id"),
        (4, "answer"),
        (5, "answer"),
        (6, "case_id"),
        (7, "case_id"),
        (8, "item"),
    ]
    assert "unknown case 999999" in result.errors[0].message
    assert "first at index 0" in result.errors[6].message
    assert result.created == 2
    assert set(RegressionAnswer.objects.values_list("item_id", flat=True)) == {
        cases["fix"].pk,
        cases["rejected"].pk,
    }


def test_a_case_outside_the_runs_filters_is_refused(agent, cases):
    elsewhere = decide(agent, held_out_text(), intent="invoice")
    result = post(
        agent,
        [{"case_id": elsewhere.pk, "answer": "x"}, {"case_id": cases["fix"].pk, "answer": "y"}],
        filters={"intent": "invoice"},
    )

    assert [(e.index, e.field) for e in result.errors] == [(1, "case_id")]
    assert result.run.filters == {"intent": "invoice"}


def test_it_refuses_other_filters_for_an_existing_run(agent, cases):
    post(agent, [], filters={"intent": "returns"})

    with pytest.raises(regression.InvalidRequest) as refused:
        post(agent, [], filters={"intent": "invoice"})

    assert set(refused.value.errors) == {"filters"}


def test_it_refuses_a_missing_version(agent):
    with pytest.raises(regression.InvalidRequest) as refused:
        post(agent, [], version="")

    assert set(refused.value.errors) == {"version"}
    assert not RegressionRun.objects.exists()


def test_it_reads_and_writes_in_a_fixed_number_of_queries(agent, django_assert_max_num_queries):
    items = [decide(agent, held_out_text(), old=OLD, corrected=REFERENCE) for _ in range(40)]
    answers = [
        {"case_id": item.pk, "answer": [REFERENCE, OLD, f"new answer {i}"][i % 3]}
        for i, item in enumerate(items)
    ]

    # The transaction's savepoint and its release (2), the run's get-or-create (select,
    # savepoint, insert, release: 4) and lock (1), the cases (1), the answers stored (1),
    # one insert of comparisons and one of answers (2): none of them per answer.
    with django_assert_max_num_queries(11):
        result = post(agent, answers)

    assert (result.matched, result.unchanged, result.routed) == (14, 13, 13)


@pytest.mark.parametrize(
    ("version_b", "choice", "expected"),
    [
        ("reference", "a", "fixed"),
        ("reference", "tie", "fixed"),
        ("reference", "b", "still_wrong"),
        ("reference", "both_bad", "still_wrong"),
        ("previous", "a", "fixed"),
        ("previous", "tie", "still_wrong"),
        ("previous", "both_bad", "still_wrong"),
        ("previous", "b", "worse"),
    ],
)
def test_it_maps_a_comparisons_choice_to_an_outcome(version_b, choice, expected):
    assert runs.judged_outcome(version_b, choice) == expected


def test_a_decided_comparison_settles_its_answer(agent, cases, decide_comparisons):
    result = post(
        agent,
        [
            {"case_id": cases["fix"].pk, "answer": "Thirty days, receipt needed."},
            {"case_id": cases["rejected"].pk, "answer": "Please hold."},
        ],
    )
    by_item = {a.item_id: a for a in RegressionAnswer.objects.filter(run=result.run)}

    decide_comparisons(
        {
            by_item[cases["fix"].pk].comparison_id: "tie",  # as good as the reference
            by_item[cases["rejected"].pk].comparison_id: "b",  # the old answer was better
        }
    )

    outcomes = dict(RegressionAnswer.objects.values_list("item_id", "outcome"))
    assert outcomes == {cases["fix"].pk: "fixed", cases["rejected"].pk: "worse"}
