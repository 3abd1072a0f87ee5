"""The KPI pages: roles, methods, htmx fragments and plain pages, CSV, the recompute button,
and a query count that does not grow with the data."""

import json
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kpis import services
from kpis.models import KpiRun
from tests import factories
from tests.kpis.conftest import NOW

HX = {"HX-Request": "true"}


@pytest.fixture
def computed(dataset):
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=date(2026, 11, 2), now=NOW)
    return dataset


def show(agent="shop-bot", **extra) -> str:
    params = {"agent": agent, "start": "2026-11-01", "end": "2026-11-05", **extra}
    return "/kpis/?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_it_sends_anonymous_visitors_to_the_login_page(client, db):
    response = client.get("/kpis/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/kpis/")


@pytest.mark.parametrize(
    "url", ["/kpis/", "/kpis/calibration/", "/kpis/agreement/", "/kpis/export.csv"]
)
def test_it_refuses_reviewers(client, reviewer, url):
    client.force_login(reviewer)
    response = client.get(url)
    assert response.status_code == 403
    assert b"<h1>Not allowed</h1>" in response.content


@pytest.mark.parametrize("persona", ["ml", "lead"])
def test_it_shows_the_dashboard_to_admins_and_ml_engineers(client, computed, persona, request):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(show())
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="kpi-body"' in html
    assert "chart.umd.min.js" in html and 'id="kpi-chart-data"' in html
    assert ("Recompute now" in html) == (persona == "lead")


def test_it_refuses_other_methods(client, ml):
    client.force_login(ml)
    response = client.post("/kpis/")
    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_it_answers_htmx_with_the_body_fragment(client, computed, ml):
    client.force_login(ml)
    html = client.get(show(), headers=HX).content.decode()
    assert html.lstrip().startswith('<div id="kpi-body"')
    assert "<html" not in html


def test_it_shows_headline_cards_with_an_arrow_and_words(client, computed, ml):
    client.force_login(ml)
    # 4–5 Nov against 2–3 Nov: resolution 1 of 2 against 4 of 5
    html = client.get(show(start="2026-11-04")).content.decode()
    card = html[html.index('data-kpi="resolution_rate"') :][:600]
    assert "50.0%" in card
    assert "▼" in card and "−30.0 pts" not in card and "-30.0 pts" in card
    assert "worse" in card
    assert "tone-worse" in html[: html.index('data-kpi="resolution_rate"')][-200:]


def test_it_compares_versions_side_by_side(client, computed, ml):
    client.force_login(ml)
    html = client.get(show()).content.decode()
    section = html[html.index("Versions side by side") :]
    assert "<code>v1</code>" in section and "<code>v2</code>" in section
    assert "[51.0–100.0%, n = 4]" in section  # v1 review rate, 4 of 4


def test_it_links_a_version_to_the_batch_it_was_trained_on(client, computed, ml):
    batch = factories.ExportBatchFactory(
        agent=computed.agent, ready=True, trained_agent_version="v2"
    )
    factories.ExportBatchFactory(
        agent=computed.agent, format="csv", failed=True, trained_agent_version="v2"
    )
    client.force_login(ml)
    html = client.get(show()).content.decode()
    section = html[html.index("Versions side by side") :]
    assert f'trained on <a href="/exports/#batch-{batch.pk}">batch #{batch.pk}</a>' in section
    assert section.count("trained on") == 1


def test_it_filters_by_version_and_forgets_a_version_of_another_agent(client, computed, ml):
    client.force_login(ml)
    html = client.get(show(version="v2")).content.decode()
    assert "version <code>v2</code>" in html
    factories.AgentFactory(slug="other-bot", name="Other bot")
    html = client.get(show(agent="other-bot", version="v2")).content.decode()
    assert "all versions" in html


def test_it_explains_an_invalid_range(client, computed, ml):
    client.force_login(ml)
    html = client.get(show(start="2026-11-09")).content.decode()
    assert "The start of the range is after its end." in html


def test_it_downloads_the_table_as_csv_with_formulas_neutralised(client, computed, ml):
    factories.InteractionFactory(
        agent=computed.agent,
        agent_version='=HYPERLINK("http://x")',
        created_at=NOW - timedelta(hours=1),
    )
    services.kpis_recompute(agent_ids=[computed.agent.pk], since=date(2026, 11, 5), now=NOW)
    client.force_login(ml)
    response = client.get(
        "/kpis/export.csv?agent=shop-bot&start=2026-11-02&end=2026-11-05"
        "&version=%3DHYPERLINK(%22http%3A%2F%2Fx%22)"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="kpis-shop-bot-2026-11-02-2026-11-05.csv"' in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("agent,date,agent_version,interactions,resolution_rate,")
    assert len(lines) == 5
    assert all(',"\'=HYPERLINK(""http://x"")",' in line for line in lines[1:]), lines


def test_it_keeps_negative_numbers_numbers_in_the_csv(client, computed, ml):
    client.force_login(ml)
    text = client.get("/kpis/export.csv?agent=shop-bot&start=2026-11-04&end=2026-11-04").content
    header, row = text.decode().splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert values["mean_sentiment"] == "-0.25"
    assert values["agent_version"] == "all"


def test_it_shows_calibration_and_agreement(client, computed, ml):
    client.force_login(ml)
    html = client.get("/kpis/calibration/?agent=shop-bot&start=2026-11-01&end=2026-11-05").content
    assert b"Reliability diagram" in html and b"Suggested threshold" in html
    html = client.get("/kpis/agreement/?agent=shop-bot", headers=HX).content.decode()
    assert html.lstrip().startswith('<div id="kpi-body"')


def test_it_lets_only_admins_recompute(client, ml, lead):
    client.force_login(ml)
    response = client.post("/kpis/recompute/")
    assert response.status_code == 403
    assert b"<h1>Not allowed</h1>" in response.content
    client.force_login(lead)
    response = client.get("/kpis/recompute/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not KpiRun.objects.exists()


def test_it_queues_a_recompute_and_redirects_to_its_progress(client, lead, dataset):
    client.force_login(lead)
    response = client.post("/kpis/recompute/")
    run = KpiRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/kpis/runs/{run.pk}/"
    assert (run.trigger, run.requested_by) == ("button", lead)
    assert "Recompute queued" in client.get(response["Location"]).content.decode()


def test_it_answers_the_button_with_a_polling_fragment(client, lead, dataset):
    client.force_login(lead)
    html = client.post("/kpis/recompute/", headers=HX).content.decode()
    run = KpiRun.objects.get()
    assert html.lstrip().startswith(f'<div id="run-{run.pk}"')
    assert 'hx-trigger="every 1s"' in html


def test_it_runs_the_recompute_after_commit_and_reports_it_done(
    client, lead, dataset, django_capture_on_commit_callbacks
):
    client.force_login(lead)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/kpis/recompute/", headers=HX)
    run = KpiRun.objects.get()
    assert run.state == "done"
    response = client.get(f"/kpis/runs/{run.pk}/", headers=HX)
    html = response.content.decode()
    assert "Recomputed" in html and "hx-trigger" not in html  # polling stops
    assert json.loads(response["HX-Trigger"]) == {"kpisRecomputed": {}}


def test_it_shows_a_runs_progress(client, ml, db):
    run = factories.KpiRunFactory(running=True)  # step 1 of 4
    client.force_login(ml)
    html = client.get(f"/kpis/runs/{run.pk}/", headers=HX).content.decode()
    assert "25%" in html and "step 1 of 4" in html and 'hx-trigger="every 1s"' in html
    assert client.get("/kpis/runs/999999/").status_code == 404


def test_it_shows_open_alerts_on_the_dashboard(client, computed, ml):
    factories.AlertFactory(
        agent=computed.agent, kpi="resolution_rate", threshold={"below": 0.9, "days": 7}, value=0.71
    )
    client.force_login(ml)
    html = client.get(show()).content.decode()
    assert "Open:" in html and "Resolution rate" in html and "71.0%" in html and "below 0.9" in html


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_it_runs_as_many_queries_for_a_year_of_versions_as_for_a_day(client, computed, ml):
    client.force_login(ml)
    url = show(start="2026-11-01", end="2026-11-05")
    small = _queries(client, url)
    today = timezone.now().date()
    for version in range(6):
        for day in range(0, 60, 3):
            moment = NOW - timedelta(days=day, hours=version)
            factories.InteractionFactory(
                agent=computed.agent,
                agent_version=f"v9.{version}",
                created_at=moment,
                resolved=bool(day % 2),
            )
    other = factories.AgentFactory(slug="zz-bot")
    factories.InteractionFactory(agent=other, agent_version="v1", created_at=NOW)
    services.kpis_recompute(agent_ids=None, since=today - timedelta(days=400), now=NOW)
    big = _queries(client, show(start="2026-09-01", end="2026-11-05"))
    assert big == small
