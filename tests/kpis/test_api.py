"""GET /api/v1/kpis as DESIGN.md has it."""

from datetime import date

import pytest

from kpis import services
from tests.kpis.conftest import NOW

URL = "/api/v1/kpis?agent=shop-bot&from=2026-11-02&to=2026-11-04"


@pytest.fixture
def computed(dataset):
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=date(2026, 11, 2), now=NOW)
    return dataset


def test_it_answers_one_row_per_day_over_all_versions(api_client, computed, ml):
    response = api_client(ml).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert [r["date"] for r in body["rows"]] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert body["versions"] == ["v2", "v1"]  # newest first
    row = body["rows"][0]
    assert (row["agent"], row["agent_version"]) == ("shop-bot", None)
    assert set(row["resolution_rate"]) == {"value", "low", "high", "n"}
    assert row["resolution_rate"]["value"] == 0.8 and row["resolution_rate"]["n"] == 5
    assert row["mean_sentiment"] == {"value": pytest.approx(0.3), "n": 5}


def test_it_answers_a_version_s_rows(api_client, computed, lead):
    body = api_client(lead).get(URL + "&version=v2").json()
    assert {r["agent_version"] for r in body["rows"]} == {"v2"}
    assert body["rows"][0]["approval_rate"]["value"] is None


def test_it_gives_an_empty_day_null_values(api_client, computed, ml):
    row = api_client(ml).get(URL).json()["rows"][1]
    assert row["interactions"] == {"value": 0}
    assert row["approval_rate"] == {"value": None, "low": None, "high": None, "n": 0}


def test_it_needs_a_token(client, computed):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_it_refuses_a_reviewer_token(api_client, computed, reviewer):
    response = api_client(reviewer).get(URL)
    assert response.status_code == 403
    assert response.json() == {"detail": "this token's user needs one of the roles: admin, ml"}


def test_it_answers_404_for_an_unknown_agent(api_client, ml, db):
    response = api_client(ml).get("/api/v1/kpis?agent=nope&from=2026-11-02&to=2026-11-04")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown agent 'nope'"}


@pytest.mark.parametrize(
    "query, message",
    [
        ("from=2026-11-05&to=2026-11-04", "`from` is after `to`"),
        ("from=2024-01-01&to=2026-11-04", "the range is longer than 366 days"),
    ],
)
def test_it_refuses_a_bad_range(api_client, computed, ml, query, message):
    response = api_client(ml).get(f"/api/v1/kpis?agent=shop-bot&{query}")
    assert response.status_code == 400
    assert response.json()["detail"] == message


def test_it_refuses_a_malformed_date(api_client, computed, ml):
    response = api_client(ml).get("/api/v1/kpis?agent=shop-bot&from=yesterday&to=2026-11-04")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["from"]


def test_it_is_in_the_openapi_schema(client, db):
    schema = client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/kpis"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"agent", "from", "to", "version"}
