"""Four-eyes agreement and Cohen's kappa, worked out by hand.

Agent `legal-bot` (two reviews per item), reviewers ann (lower id) and ben:
- item A: ann approve, ben approve (2 Nov)          → agree
- item B: ann approve, ben reject (2 Nov), then an admin adjudicates approve → disagree
- item C: ben correct (2 Nov), ann correct (3 Nov)  → agree, counted on 3 Nov
- item D: ann reject, ben reject (2 Nov)            → agree
"""

from datetime import date

import pytest

from kpis import compute, selectors, services
from tests import factories
from tests.kpis.conftest import NOW, at

A = pytest.approx


@pytest.fixture
def four_eyes(db):
    agent = factories.AgentFactory(slug="legal-bot", required_reviews=2)
    ann = factories.UserFactory(username="ann", roles=["reviewer"])
    ben = factories.UserFactory(username="ben", roles=["reviewer"])
    lead = factories.UserFactory(username="lead", roles=["admin"])
    plan = {
        "A": [(ann, "approve", at(2, 10)), (ben, "approve", at(2, 11))],
        "B": [(ann, "approve", at(2, 10)), (ben, "reject", at(2, 12))],
        "C": [(ben, "correct", at(2, 15)), (ann, "correct", at(3, 9))],
        "D": [(ann, "reject", at(2, 10)), (ben, "reject", at(2, 11))],
    }
    for reviews in plan.values():
        interaction = factories.InteractionFactory(
            agent=agent, agent_version="v1", created_at=at(2, 8)
        )
        item = factories.ReviewItemFactory(
            interaction=interaction,
            four_eyes=True,
            reason="rule",
            created_at=at(2, 8),
            done=True,
            decided_at=reviews[-1][2],
        )
        for reviewer, verdict, when in reviews:
            factories.ReviewFactory(item=item, reviewer=reviewer, verdict=verdict, created_at=when)
        if reviews[0][1] != reviews[1][1]:
            factories.ReviewFactory(
                item=item,
                reviewer=lead,
                verdict="approve",
                created_at=at(2, 16),
                is_adjudication=True,
            )
    services.kpis_recompute(agent_ids=[agent.pk], since=date(2026, 11, 2), now=NOW)
    return agent


def test_it_counts_agreement_on_the_day_of_the_second_review(four_eyes):
    filters = selectors.Filters(four_eyes, "", date(2026, 11, 2), date(2026, 11, 3))
    rows = {r["date"]: r for r in selectors.api_rows(filters)["rows"]}
    # 2 Nov: A, B, D have both reviews; A and D agree. 3 Nov: C agrees.
    day2 = rows["2026-11-02"]["four_eyes_agreement_rate"]
    assert (day2["value"], day2["n"]) == (A(2 / 3), 3)
    assert (day2["low"], day2["high"]) == (A(0.207660, abs=1e-5), A(0.938508, abs=1e-5))
    day3 = rows["2026-11-03"]["four_eyes_agreement_rate"]
    assert (day3["value"], day3["n"]) == (1.0, 1)


def test_it_computes_cohens_kappa_per_agent_and_pair(four_eyes):
    view = selectors.agreement(date(2026, 11, 2), date(2026, 11, 3), four_eyes)
    # first × second review: (approve, approve) (approve, reject) (correct, correct)
    # (reject, reject). p_o = 3/4. Marginals: first approve 2, correct 1, reject 1;
    # second approve 1, correct 1, reject 2 → p_e = (2·1 + 1·1 + 1·2) / 16 = 5/16.
    # κ = (0.75 − 0.3125) / (1 − 0.3125) = 0.636364
    [agent_row] = view["per_agent"]
    assert agent_row["agreement"].pairs == 4
    assert agent_row["agreement"].percent == A(0.75)
    assert agent_row["agreement"].kappa == A(0.636364, abs=1e-6)
    [pair] = view["per_pair"]
    assert (pair["a"], pair["b"]) == ("ann", "ben")
    # ann × ben: the same four pairs (ann's verdict first) → the same κ
    assert pair["agreement"].kappa == A(0.636364, abs=1e-6)
    assert pair["matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]


def test_it_leaves_kappa_undefined_when_only_one_verdict_was_ever_given():
    result = compute.agreement([5, 0, 0, 0, 0, 0, 0, 0, 0])
    assert result.percent == 1.0
    assert result.kappa is None


def test_it_gives_systematic_disagreement_a_negative_kappa():
    # 5 × (approve, reject) and 5 × (reject, approve): p_o 0, p_e 0.5 → κ = −1
    result = compute.agreement([0, 0, 5, 0, 0, 0, 5, 0, 0])
    assert result.kappa == A(-1.0)
