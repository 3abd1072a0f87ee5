"""Redaction counts on the KPI page's Privacy tab and in the KPI API: per agent, UTC day and
kind, worked out by hand from what is planted; a fixed number of queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from ingest.services import interactions_ingest
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

POLICY = {
    "types": ["email", "card"],
    "patterns": [{"name": "CASE_ID", "regex": r"CASE-[0-9]{6}"}],
    "regions": ["GB"],
}


@pytest.fixture
def counted(db):
    AgentFactory(slug="support-bot", redaction=POLICY)
    AgentFactory(slug="other-bot", redaction=POLICY)
    today = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)

    def rec(external_id, text, when, agent="support-bot"):
        return {
            "external_id": external_id,
            "agent": agent,
            "input": text,
            "output": "ok",
            "confidence": 0.9,
            "created_at": when.isoformat(),
        }

    interactions_ingest(
        records=enumerate(
            [
                # Yesterday: 3 e-mails (one address twice: each occurrence counts), 1 case.
                rec("t-1", "a@example.com, b@example.com and a@example.com", yesterday),
                rec("t-2", "about CASE-123456", yesterday),
                # Today: 1 e-mail, 1 card.
                rec("t-3", "c@example.com pays with 4111 1111 1111 1111", today),
                rec("t-4", "nothing here", today),
                rec("t-5", "x@example.com", today, agent="other-bot"),  # another agent
                rec("t-6", "y@example.com", today - timedelta(days=40)),  # out of range
            ]
        ),
        source="api",
    )
    return yesterday.date(), today.date()


def test_it_counts_redactions_per_kind_and_day_on_the_privacy_tab(
    client, ml, counted, django_assert_max_num_queries
):
    yesterday, today = counted
    client.force_login(ml)
    with django_assert_max_num_queries(8):
        response = client.get("/kpis/privacy/", {"agent": "support-bot", "range": "30"})
    assert response.status_code == 200
    kpis = response.context["kpis"]
    assert kpis.columns == [("CASE_ID", "CASE_ID", 1), ("card", "CARD", 1), ("email", "EMAIL", 4)]
    assert kpis.days == [(yesterday, [1, 0, 3], 4), (today, [0, 1, 1], 2)]
    html = response.content.decode()
    assert "Privacy" in html and "a@example.com" not in html


def test_it_refuses_the_privacy_tab_to_reviewers(client, reviewer, counted):
    client.force_login(reviewer)
    assert client.get("/kpis/privacy/").status_code == 403


def test_it_gives_the_counts_over_the_api(api_client, ml, counted):
    yesterday, today = counted
    response = api_client(ml).get(
        f"/api/v1/kpis/privacy?agent=support-bot&from={yesterday}&to={today}"
    )
    assert response.status_code == 200
    assert response.json()["rows"] == [
        {"day": str(yesterday), "kind": "CASE_ID", "count": 1},
        {"day": str(yesterday), "kind": "email", "count": 3},
        {"day": str(today), "kind": "card", "count": 1},
        {"day": str(today), "kind": "email", "count": 1},
    ]


def test_it_gives_404_for_an_unknown_agent_over_the_api(api_client, ml):
    day = datetime.now(UTC).date()
    response = api_client(ml).get(f"/api/v1/kpis/privacy?agent=nope&from={day}&to={day}")
    assert response.status_code == 404


def test_the_privacy_tab_opens_on_an_agent_with_a_policy(client, ml, counted):
    """The agents with a policy (other-bot, support-bot) come after one without in slug
    order; the page opens on the first of them."""
    AgentFactory(slug="aardvark-bot")
    client.force_login(ml)

    response = client.get("/kpis/privacy/")

    assert response.context["filters"].agent.slug == "other-bot"
    assert response.context["policy_on"] is True
