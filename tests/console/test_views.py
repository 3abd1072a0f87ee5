"""The admin console pages: roles, filters, bulk actions, pools, policies, audit CSV."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ReviewerProfile
from agents.models import Agent
from core.models import AuditEvent
from reviews.models import ReviewItem
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


def make_items(n, domain="support", **kwargs):
    agent = AgentFactory(slug=f"{domain}-bot", domain=domain)
    return [
        ReviewItemFactory(
            interaction=InteractionFactory(agent=agent, domain=domain, confidence=i / (n + 1)),
            **kwargs,
        )
        for i in range(n)
    ]


@pytest.fixture
def admin_client(client, lead):
    client.force_login(lead)
    return client


@pytest.mark.parametrize(
    "url",
    ["/console/", "/console/workload/", "/console/pools/", "/console/agents/", "/console/audit/"],
)
def test_it_refuses_console_pages_to_reviewers(client, reviewer, url):
    client.force_login(reviewer)
    assert client.get(url).status_code == 403


def test_it_sends_anonymous_users_to_login(client):
    response = client.get("/console/")
    assert response.status_code == 302 and response["Location"].startswith(
        "/accounts/login/?next=/console/"
    )


def test_it_filters_the_browser(admin_client):
    make_items(3)
    make_items(2, domain="legal")
    response = admin_client.get("/console/?domain=legal")
    assert response.context["paginator"].count == 2


def test_it_renders_the_results_fragment_for_htmx(admin_client):
    make_items(2)
    response = admin_client.get("/console/?domain=support", headers={"HX-Request": "true"})
    assert b'id="results"' in response.content and b"<html" not in response.content


def test_it_keeps_browser_queries_flat(admin_client):
    make_items(3)
    with CaptureQueriesContext(connection) as small:
        admin_client.get("/console/")
    make_items(40, domain="legal")
    with CaptureQueriesContext(connection) as large:
        admin_client.get("/console/")
    assert len(small) == len(large)


def test_it_assigns_all_matching_items_in_bulk(admin_client, reviewer):
    make_items(5)
    make_items(2, domain="legal")
    response = admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "matching", "reviewer": "rita", "domain": "support"},
    )
    assert response.status_code == 302 and "domain=support" in response["Location"]
    assert ReviewItem.objects.filter(assigned_to=reviewer).count() == 5
    assert AuditEvent.objects.filter(action="item.assigned").count() == 5


def test_it_assigns_selected_items(admin_client, reviewer):
    items = make_items(4)
    admin_client.post(
        "/console/bulk",
        {
            "action": "assign",
            "scope": "selected",
            "reviewer": "rita",
            "ids": [items[0].pk, items[2].pk],
        },
    )
    assert set(ReviewItem.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)) == {
        items[0].pk,
        items[2].pk,
    }


def test_it_explains_an_incomplete_bulk_form(admin_client):
    make_items(1)
    response = admin_client.post(
        "/console/bulk", {"action": "assign", "scope": "selected"}, follow=True
    )
    text = response.content.decode()
    assert "Choose the reviewer" in text and "Select at least one item" in text


def test_it_edits_a_reviewer_pool(admin_client, reviewer):
    admin_client.post(
        f"/console/pools/{reviewer.pk}/",
        {"domains_text": "legal, support", "daily_capacity": 50, "active": ""},
    )
    profile = ReviewerProfile.objects.get(user=reviewer)
    assert (profile.domains, profile.daily_capacity, profile.active) == (
        ["legal", "support"],
        50,
        False,
    )
    assert AuditEvent.objects.filter(action="reviewer.updated", target_id=reviewer.pk).exists()


def test_it_edits_an_agent_policy_and_audits_it(admin_client):
    agent = AgentFactory(slug="support-bot")
    data = {
        "name": "Support",
        "kind": "chat",
        "domain": "support",
        "confidence_threshold": 0.6,
        "audit_rate": 0.05,
        "required_reviews": 2,
        "guidelines": "Be kind.",
        "review_intents_text": "refund, legal_threat",
        "review_domains_text": "",
        "alert_thresholds_text": '{"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}}',
    }
    response = admin_client.post(f"/console/agents/{agent.slug}/", data)
    assert response.status_code == 302
    agent = Agent.objects.get(pk=agent.pk)
    assert (agent.confidence_threshold, agent.required_reviews, agent.review_intents) == (
        0.6,
        2,
        ["legal_threat", "refund"],
    )
    event = AuditEvent.objects.get(action="agent.updated")
    assert (
        event.before["confidence_threshold"] == 0.7 and event.after["confidence_threshold"] == 0.6
    )


def test_it_refuses_bad_alert_json(admin_client):
    agent = AgentFactory(slug="support-bot")
    data = {
        "name": "S",
        "kind": "chat",
        "domain": "support",
        "confidence_threshold": 0.6,
        "audit_rate": 0,
        "required_reviews": 1,
        "alert_thresholds_text": "{oops",
    }
    response = admin_client.post(f"/console/agents/{agent.slug}/", data)
    assert response.status_code == 200 and b"Not valid JSON" in response.content


def test_it_neutralises_formulas_in_the_audit_csv(admin_client, lead):
    AuditEvent.objects.create(
        actor=lead, action='=HYPERLINK("http://evil")', target_type="x", after={}
    )
    AuditEvent.objects.create(actor=lead, action="+1", target_type="-2", after={})
    response = admin_client.get("/console/audit/?format=csv")
    body = b"".join(response.streaming_content).decode()
    assert response["Content-Type"].startswith("text/csv")
    assert "'=HYPERLINK" in body and "\n=HYPERLINK" not in body and ",=HYPERLINK" not in body
    assert ",'+1,'-2," in body


def test_it_filters_the_audit_log_by_item(admin_client, lead):
    AuditEvent.objects.create(
        actor=lead, action="item.assigned", target_type="review_item", target_id=7
    )
    AuditEvent.objects.create(
        actor=lead, action="item.assigned", target_type="review_item", target_id=8
    )
    response = admin_client.get("/console/audit/?item=7")
    assert [e.target_id for e in response.context["page"].object_list] == [7]


def test_it_keeps_the_filters_in_the_page_links_and_the_csv_link(admin_client, lead):
    make_items(60)
    html = admin_client.get("/console/?domain=support&sort=oldest").content.decode()
    assert 'href="?domain=support&amp;sort=oldest&amp;page=2"' in html
    for _ in range(60):
        AuditEvent.objects.create(
            actor=lead, action="item.assigned", target_type="review_item", target_id=1
        )
    html = admin_client.get("/console/audit/?action=item.assigned&page=2").content.decode()
    assert 'href="?action=item.assigned&amp;format=csv"' in html
