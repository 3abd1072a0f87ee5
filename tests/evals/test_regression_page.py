"""The regression set page (/compare/regression/) and its JSONL download: roles, the filters
(narrowing the table and the download, errors per field), escaping of agent text, the
cursor, what a batch trained on staying out, the runs' summaries, a flat query count."""

import json
import re
from urllib.parse import unquote

import pytest

from evals import regression, runs
from tests import factories
from tests.evals.conftest import decide, held_out_text, hold, train_text, trained_text

pytestmark = pytest.mark.django_db

PAGE = "/compare/regression/"
DOWNLOAD = "/compare/regression/download"
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def cases(agent):
    """Held out: a returns / support correction, an invoice / billing correction and a
    rejection; left out: a correction a batch trained on, an approval, a non-held-out input."""
    trained = decide(agent, trained_text("trained"), intent="returns", old="Trained old.")
    hold(trained, share=0.05)
    return {
        "returns": decide(agent, held_out_text("returns"), old="14 days.", corrected="30 days."),
        "billing": decide(
            agent,
            held_out_text("billing"),
            intent="invoice",
            domain="billing",
            old="No.",
            corrected="Yes, by invoice.",
        ),
        "rejected": decide(agent, held_out_text("rejected"), verdict="reject", old="Go away."),
        "trained": trained,
        "approved": decide(agent, held_out_text("approved"), verdict="approve"),
        "not_held": decide(agent, train_text("not held")),
    }


@pytest.fixture
def ml_client(client, ml):
    client.force_login(ml)
    return client


def page(client, **params) -> str:
    response = client.get(PAGE, data={"agent": "support-bot", **params})
    assert response.status_code == 200
    return response.content.decode()


def download(client, **params) -> list[dict]:
    response = client.get(DOWNLOAD, data={"agent": "support-bot", **params})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"].startswith(
        'attachment; filename="regression-support-bot'
    )
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines()]


def listed(html: str) -> set[int]:
    """The case ids in the table ("#123" in the row headers)."""
    return {int(pk) for pk in re.findall(r'<th scope="row">#(\d+)<br>', html)}


# --- access -------------------------------------------------------------------------------


def test_it_sends_anonymous_users_to_the_login_page(client):
    for path in (PAGE, DOWNLOAD):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_reviewers_are_refused_and_ml_and_admins_let_in(client, reviewer, ml, lead, cases):
    client.force_login(reviewer)
    assert client.get(PAGE).status_code == 403
    assert client.get(DOWNLOAD, data={"agent": "support-bot"}).status_code == 403
    for user in (ml, lead):
        client.force_login(user)
        assert client.get(PAGE).status_code == 200
        assert client.get(DOWNLOAD, data={"agent": "support-bot"}).status_code == 200


# --- the set ------------------------------------------------------------------------------


def test_it_lists_the_held_out_cases_with_their_count(ml_client, cases):
    html = page(ml_client)

    assert listed(html) == {cases["returns"].pk, cases["billing"].pk, cases["rejected"].pk}
    assert "3 cases" in html
    assert "14 days." in html and "30 days." in html and "rejected" in html
    assert 'href="/compare/regression/download?agent=support-bot"' in html


def test_the_first_agent_is_shown_without_one_asked_for(ml_client, cases):
    response = ml_client.get(PAGE)

    assert response.status_code == 200
    assert listed(response.content.decode()) == {
        cases["returns"].pk,
        cases["billing"].pk,
        cases["rejected"].pk,
    }


def test_intent_and_domain_narrow_the_table_and_the_download(ml_client, cases):
    by_intent = page(ml_client, intent="invoice")
    by_domain = page(ml_client, domain="support")

    assert listed(by_intent) == {cases["billing"].pk}
    assert "1 case match" in by_intent
    assert listed(by_domain) == {cases["returns"].pk, cases["rejected"].pk}
    assert "download?agent=support-bot&amp;intent=invoice" in by_intent
    assert [c["id"] for c in download(ml_client, intent="invoice")] == [cases["billing"].pk]
    assert {c["id"] for c in download(ml_client, domain="support")} == {
        cases["returns"].pk,
        cases["rejected"].pk,
    }


def test_the_download_holds_the_set_and_nothing_a_batch_trained_on(ml_client, cases):
    lines = download(ml_client)

    ids = {line["id"] for line in lines}
    assert ids == {cases["returns"].pk, cases["billing"].pk, cases["rejected"].pk}
    assert cases["trained"].pk not in ids
    by_id = {line["id"]: line for line in lines}
    assert by_id[cases["returns"].pk]["reference"] == "30 days."
    assert by_id[cases["rejected"].pk]["reference"] == ""
    # Each line is the API's case object.
    api = {
        c.id: c.as_json()
        for c in regression.cases_iter(cases["returns"].agent, regression.SetFilters())
    }
    assert by_id == api


def test_a_bad_filter_shows_a_field_error(ml_client, cases):
    html = page(ml_client, date_from="yesterday", error_category="no-such-category")

    assert 'id="error-date_from"' in html and "must be a date (YYYY-MM-DD)" in html
    assert 'id="error-error_category"' in html and "unknown error category" in html
    assert 'aria-describedby="error-date_from"' in html
    assert listed(html) == set() and "Download JSONL" not in html
    bad = ml_client.get(DOWNLOAD, data={"agent": "support-bot", "date_from": "yesterday"})
    assert bad.status_code == 400
    assert ml_client.get(DOWNLOAD, data={"agent": "nobody"}).status_code == 404


def test_an_unknown_agent_is_a_field_error(ml_client, cases):
    html = page(ml_client, agent="nobody")

    assert 'id="error-agent"' in html and "unknown agent" in html


def test_agent_text_is_escaped(ml_client, agent):
    decide(agent, held_out_text(XSS), old=f"old {XSS}", corrected=f"new {XSS}", intent=XSS)

    html = page(ml_client)

    assert XSS not in html
    assert XSS_ESCAPED in html


def test_an_empty_set_says_so(ml_client, cases):
    html = page(ml_client, intent="nothing-like-this")

    assert "No cases match these filters" in html
    assert "0 cases match" in html and "Download JSONL" not in html


def test_the_cursor_pages_through_the_set(ml_client, agent, monkeypatch):
    from evals import regression_views

    monkeypatch.setattr(regression_views, "PAGE_SIZE", 2)
    ids = [decide(agent, held_out_text()).pk for _ in range(3)]

    first = page(ml_client)
    assert listed(first) == set(ids[:2]) and "3 cases" in first
    (cursor,) = set(re.findall(r"cursor=([^\"&]+)", first))

    second = page(ml_client, cursor=unquote(cursor))
    assert listed(second) == {ids[2]}
    assert "First page" in second and "Next 2 cases" not in second
    stale = page(ml_client, cursor="not-a-cursor")
    assert "This page link is out of date" in stale


def test_the_count_is_bounded(ml_client, agent, monkeypatch):
    from evals import regression_views

    monkeypatch.setattr(regression_views, "COUNT_CAP", 2)
    for _ in range(3):
        decide(agent, held_out_text())

    html = page(ml_client)

    assert "2+ cases" in html and "Counted up to 2" in html


def test_the_htmx_answer_is_the_body_only(ml_client, cases):
    response = ml_client.get(
        PAGE, data={"agent": "support-bot", "intent": "invoice"}, HTTP_HX_REQUEST="true"
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="regression-body">')
    assert listed(html) == {cases["billing"].pk}


# --- runs -----------------------------------------------------------------------------------


def test_it_shows_the_agents_runs_with_their_summary(ml_client, agent, cases, ml):
    runs.regression_run_post(
        agent=agent,
        agent_version="2026.11.1",
        label="rc1",
        answers=[
            {"case_id": cases["returns"].pk, "answer": "30 days."},  # fixed
            {"case_id": cases["billing"].pk, "answer": "No."},  # still wrong
            {"case_id": cases["rejected"].pk, "answer": "Something new."},  # pending
        ],
        actor=ml,
    )

    html = page(ml_client)

    assert "2026.11.1 fixes 50% [" in html
    assert "(rc1)" in html
    table = html.split('id="runs-title"')[1]
    assert table.count('<td class="num">1</td>') == 3  # fixed, still wrong, pending
    assert '<td class="num">3</td>' in table  # total


def test_no_run_yet_says_so(ml_client, cases):
    assert "No regression runs for" in page(ml_client)


# --- links and queries ----------------------------------------------------------------------


def test_the_exports_page_links_to_it(ml_client, cases):
    html = ml_client.get("/exports/", data={"agent": "support-bot"}).content.decode()

    assert 'href="/compare/regression/?agent=support-bot"' in html


def make_cases(agent, n: int) -> None:
    category = factories.ErrorCategoryFactory()
    for i in range(n):
        item = decide(
            agent, held_out_text(), category=category, version=f"v{i % 3}", intent="returns"
        )
        if i % 2:
            hold(item, share=0.1)


def test_the_query_count_is_flat(ml_client, agent, ml, django_assert_max_num_queries):
    make_cases(agent, 2)
    runs.regression_run_post(agent=agent, agent_version="v9", answers=[], label="empty", actor=ml)
    with django_assert_max_num_queries(20) as few:
        page(ml_client, intent="returns")
        download(ml_client, intent="returns")

    make_cases(agent, 25)
    for label in ("a", "b", "c"):
        runs.regression_run_post(agent=agent, agent_version="v9", answers=[], label=label, actor=ml)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = page(ml_client, intent="returns")
        lines = download(ml_client, intent="returns")

    assert "27 cases" in html and len(lines) == 27
