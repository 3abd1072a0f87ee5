"""The loop over HTTP: fetch the regression set, post a run, read its summary while reviewers
decide the routed comparisons; post version comparisons and read their win rates; and the
KPI page's section."""

import pytest

from agents.models import RedactedValue
from evals.models import Comparison, RegressionAnswer
from tests import factories
from tests.evals.conftest import decide, held_out_text, hold, trained_text

pytestmark = pytest.mark.django_db

SET = "/api/v1/agents/support-bot/regression-set"
RUNS = "/api/v1/agents/support-bot/regression-runs"


@pytest.fixture
def cases(agent):
    """Held out: two corrections (returns / support and invoice / billing) and a rejection;
    left out: a correction a batch trained on, and an approval."""
    trained = decide(agent, trained_text(), intent="returns")
    hold(trained, share=0.05)
    return {
        "returns": decide(agent, held_out_text(), old="14 days.", corrected="30 days."),
        "billing": decide(
            agent, held_out_text(), intent="invoice", domain="billing", corrected="Yes."
        ),
        "rejected": decide(agent, held_out_text(), verdict="reject", old="Ask someone else."),
        "trained": trained,
        "approved": decide(agent, held_out_text(), verdict="approve"),
    }


def test_it_serves_the_regression_set(api_client, ml, cases):
    response = api_client(ml).get(SET)

    assert response.status_code == 200
    body = response.json()
    ids = {case["id"] for case in body["cases"]}
    assert ids == {cases["returns"].pk, cases["billing"].pk, cases["rejected"].pk}
    assert body["next_cursor"] is None and body["holdout_share"] == 0.1
    by_id = {case["id"]: case for case in body["cases"]}
    assert by_id[cases["returns"].pk]["reference"] == "30 days."
    assert by_id[cases["returns"].pk]["old_answer"] == "14 days."
    assert by_id[cases["rejected"].pk]["reference"] == ""


def test_it_filters_the_set_by_intent_and_domain(api_client, ml, cases):
    client = api_client(ml)

    by_intent = client.get(SET, data={"intent": "invoice"}).json()
    by_domain = client.get(SET, data={"domain": "support"}).json()

    assert [c["id"] for c in by_intent["cases"]] == [cases["billing"].pk]
    assert by_intent["filters"] == {"intent": "invoice"}
    assert {c["id"] for c in by_domain["cases"]} == {cases["returns"].pk, cases["rejected"].pk}


def test_it_pages_the_set(api_client, ml, cases):
    client = api_client(ml)

    first = client.get(SET, data={"limit": 2}).json()
    second = client.get(SET, data={"limit": 2, "cursor": first["next_cursor"]}).json()

    assert len(first["cases"]) == 2 and first["next_cursor"]
    assert len(second["cases"]) == 1 and second["next_cursor"] is None
    assert client.get(SET, data={"cursor": "bogus"}).status_code == 400


def test_it_answers_404_for_an_unknown_agent_and_403_without_the_role(
    api_client, ml, reviewer, cases
):
    assert api_client(ml).get("/api/v1/agents/nobody/regression-set").status_code == 404
    assert api_client(reviewer).get(SET).status_code == 403
    assert api_client().get(SET).status_code == 401


def test_a_run_goes_from_posted_to_judged(api_client, ml, cases, decide_comparisons):
    client = api_client(ml)
    answers = [
        {"case_id": cases["returns"].pk, "answer": "30  DAYS."},  # the reference: fixed
        {"case_id": cases["billing"].pk, "answer": "Yes, by invoice within 14 days."},
        {"case_id": cases["rejected"].pk, "answer": "Write to support@example.com."},
    ]
    body = {"version": "2026.11.1", "label": "rc1", "answers": answers}

    posted = client.post(RUNS, body)

    assert posted.status_code == 200
    result = posted.json()
    assert (result["created"], result["matched"], result["routed"]) == (3, 1, 2)
    assert result["errors"] == []
    summary = client.get(f"/api/v1/regression-runs/{result['run']}").json()
    assert (summary["fixed"], summary["pending"], summary["total"]) == (1, 2, 3)
    assert summary["share_fixed"]["n"] == 1

    routed = dict(
        RegressionAnswer.objects.filter(matched_by="review").values_list("item_id", "comparison")
    )
    decide_comparisons({routed[cases["billing"].pk]: "a", routed[cases["rejected"].pk]: "both_bad"})

    summary = client.get(f"/api/v1/regression-runs/{result['run']}").json()
    assert (summary["fixed"], summary["still_wrong"], summary["worse"], summary["pending"]) == (
        2,
        1,
        0,
        0,
    )
    assert summary["share_fixed"]["value"] == pytest.approx(2 / 3)
    assert summary["sentence"].startswith("2026.11.1 fixes 67% [")

    again = client.post(RUNS, body).json()

    assert (again["run"], again["created"], again["duplicates"], again["routed"]) == (
        result["run"],
        0,
        3,
        0,
    )
    assert again["summary"] == summary
    assert RegressionAnswer.objects.count() == 3 and Comparison.objects.count() == 2


def test_a_run_names_bad_answers_and_keeps_good_ones(api_client, ml, cases):
    answers = [
        {"case_id": cases["trained"].pk, "answer": "x"},
        {"case_id": cases["returns"].pk, "answer": ""},
        {"case_id": cases["rejected"].pk, "answer": "Ask someone else."},
        {"case_id": "seven", "answer": "x"},
    ]

    response = api_client(ml).post(RUNS, {"version": "2026.11.1", "answers": answers})

    assert response.status_code == 200
    body = response.json()
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (0, "case_id"),
        (1, "answer"),
        (3, "case_id"),
    ]
    assert (body["created"], body["unchanged"]) == (1, 1)
    assert body["summary"]["still_wrong"] == 1


def test_a_run_without_a_version_is_a_400(api_client, ml, cases):
    response = api_client(ml).post(RUNS, {"version": "", "answers": []})

    assert response.status_code == 400
    assert "version" in response.json()["errors"]


def test_a_run_with_bad_filters_is_a_400(api_client, ml, cases):
    response = api_client(ml).post(
        RUNS, {"version": "v2", "filters": {"date_from": "soon"}, "answers": []}
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"date_from": "must be a date (YYYY-MM-DD)"}


def comparison(external_id, **fields):
    return {
        "agent": "support-bot",
        "external_id": external_id,
        "input": "Can I return opened boots?",
        "answer_a": "Yes, within 30 days.",
        "version_a": "2026.11.1",
        "answer_b": "No.",
        "version_b": "2026.10.1",
        **fields,
    }


def test_it_takes_version_comparisons_once(api_client, ml, agent):
    items = [
        comparison("c-1", domain="support", intent="returns"),
        comparison("c-2", context=[{"role": "user", "content": "Hi"}]),
        comparison("c-3", answer_b=""),
        comparison("c-4", agent="nobody"),
        comparison("c-1"),
        comparison("c-5", context="not a list"),
    ]
    client = api_client(ml)

    first = client.post("/api/v1/comparisons", items).json()
    again = client.post("/api/v1/comparisons", items).json()

    assert (first["created"], first["duplicates"]) == (2, 1)
    assert [(e["index"], e["field"]) for e in first["errors"]] == [
        (2, "answer_b"),
        (3, "agent"),
        (5, "context"),
    ]
    assert (again["created"], again["duplicates"]) == (0, 3)
    stored = Comparison.objects.get(external_id="c-1")
    assert (stored.kind, stored.status, stored.version_a, stored.version_b) == (
        "versions",
        "pending",
        "2026.11.1",
        "2026.10.1",
    )
    assert Comparison.objects.get(external_id="c-2").domain == "support"  # the agent's


def test_it_redacts_posted_comparisons_by_the_agents_policy(api_client, ml, agent):
    agent.redaction = {"types": ["email", "card"], "keep_originals": True}
    agent.save()
    item = comparison(
        "c-pii",
        context=[{"role": "user", "content": "I am ana@example.es"}],
        input="Refund card 4111 1111 1111 1111 please, ana@example.es",
        answer_a="Done for ana@example.es.",
        answer_b="Refunded to 4111111111111111; mail bob@example.org",
    )

    assert api_client(ml).post("/api/v1/comparisons", [item]).json()["created"] == 1

    stored = Comparison.objects.get(external_id="c-pii")
    assert stored.context == [{"role": "user", "content": "I am [EMAIL_1]"}]
    assert stored.input == "Refund card [CARD_1] please, [EMAIL_1]"
    assert stored.answer_a == "Done for [EMAIL_1]."
    assert stored.answer_b == "Refunded to [CARD_1]; mail [EMAIL_2]"
    # A posted comparison keeps no original (it belongs to no conversation to reveal beside).
    assert not RedactedValue.objects.exists()


def test_the_comparisons_body_must_be_an_array(api_client, ml):
    response = api_client(ml).post("/api/v1/comparisons", {"agent": "support-bot"})

    assert response.status_code == 400


def test_it_serves_win_rates(api_client, ml, reviewer, agent, decide_comparisons):
    client = api_client(ml)
    client.post("/api/v1/comparisons", [comparison(f"c-{i}") for i in range(4)])
    ids = list(Comparison.objects.order_by("pk").values_list("pk", flat=True))
    decide_comparisons(dict(zip(ids, ["a", "a", "b", "tie"], strict=True)))

    body = client.get("/api/v1/agents/support-bot/win-rates").json()

    (pair,) = body["pairs"]
    assert (pair["a_wins"], pair["b_wins"], pair["ties"], pair["both_bad"]) == (2, 1, 1, 0)
    assert pair["win_rate_a"]["value"] == pytest.approx(2 / 3)
    assert pair["position_bias"]["n"] == 3
    assert body["overall_position_bias"]["n"] == 3


def test_the_kpi_page_shows_the_loop(client, ml, cases, decide_comparisons):
    batch_id = factories.ExportBatchFactory(
        agent=cases["returns"].agent, ready=True, trained_agent_version="2026.11.1"
    ).pk
    from evals import runs

    runs.regression_run_post(
        agent=cases["returns"].agent,
        agent_version="2026.11.1",
        answers=[
            {"case_id": cases["returns"].pk, "answer": "30 days."},
            {"case_id": cases["rejected"].pk, "answer": "Ask someone else."},
        ],
    )
    client.force_login(ml)

    response = client.get("/kpis/", {"agent": "support-bot"})

    assert response.status_code == 200
    html = response.content.decode()
    # 1 fixed of 2 judged: 0.5, n = 2: centre 0.5, half (1.96 / 2.92075) ×
    # √(0.125 + 0.240094) = 0.67105 × 0.604231 = 0.40547 → [0.0945, 0.9055] → 9–91%.
    assert "2026.11.1 fixes 50% [9–91%] of what reviewers corrected in 2026.10.1" in html
    assert f"batch #{batch_id}" in html
    assert 'id="loop-title"' in html
