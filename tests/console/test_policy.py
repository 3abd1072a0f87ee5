"""An agent's policy page: KPI alert thresholds as one number field per KPI and part, each
validated on its own; the stored JSON keeps its shape; an invalid value saves nothing."""

import re

import pytest

from agents.models import Agent
from core.models import AuditEvent
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

DEMO = {"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}}


@pytest.fixture
def admin_client(client, lead):
    client.force_login(lead)
    return client


@pytest.fixture
def agent(db):
    return AgentFactory(slug="support-bot", name="Support", alert_thresholds=DEMO)


def policy(agent, **changes) -> dict:
    """The form as the page sends it back untouched, with `changes` (field name → value)."""
    data = {
        "name": agent.name,
        "kind": agent.kind,
        "domain": agent.domain,
        "confidence_threshold": agent.confidence_threshold,
        "audit_rate": agent.audit_rate,
        "required_reviews": agent.required_reviews,
        "guidelines": agent.guidelines,
        "review_intents_text": ", ".join(agent.review_intents),
        "review_domains_text": ", ".join(agent.review_domains),
    }
    for kpi, spec in agent.alert_thresholds.items():
        for part, value in spec.items():
            data[f"alert_{kpi}_{part}"] = value
    data.update(changes)
    return data


def test_it_shows_a_number_field_per_threshold_instead_of_json(admin_client, agent):
    html = admin_client.get("/console/agents/support-bot/").content.decode()
    assert "alert_thresholds_text" not in html and "<textarea" in html  # only the guidelines
    assert (
        '<input type="number" name="alert_resolution_rate_below" value="0.7" step="any" '
        'min="0" max="1" id="id_alert_resolution_rate_below">' in html
    )
    assert (
        '<label class="visually-hidden" for="id_alert_backlog_above">Backlog: alert above' in html
    )
    assert 'name="alert_resolution_rate_days" value="7"' in html


def test_it_saves_thresholds_from_the_fields_in_the_stored_shape(admin_client, agent):
    data = policy(
        agent,
        alert_resolution_rate_below=0.6,
        alert_resolution_rate_days=14,
        alert_backlog_above="200",
        alert_mean_sentiment_below="-0.2",
    )
    response = admin_client.post("/console/agents/support-bot/", data)
    assert response.status_code == 302
    stored = Agent.objects.get(pk=agent.pk).alert_thresholds
    assert stored == {
        "resolution_rate": {"below": 0.6, "days": 14, "min_n": 50},
        "backlog": {"above": 200},
        "mean_sentiment": {"below": -0.2},
    }
    assert isinstance(stored["backlog"]["above"], int)
    event = AuditEvent.objects.get(action="agent.updated")
    assert event.before == {"alert_thresholds": DEMO}


def test_it_changes_nothing_when_the_form_is_saved_untouched(admin_client, agent):
    response = admin_client.post("/console/agents/support-bot/", policy(agent))
    assert response.status_code == 302
    assert Agent.objects.get(pk=agent.pk).alert_thresholds == DEMO
    assert not AuditEvent.objects.exists()


def test_it_removes_a_threshold_whose_bounds_are_cleared(admin_client, agent):
    data = policy(
        agent,
        alert_resolution_rate_below="",
        alert_resolution_rate_days="",
        alert_resolution_rate_min_n="",
    )
    admin_client.post("/console/agents/support-bot/", data)
    assert Agent.objects.get(pk=agent.pk).alert_thresholds == {}


@pytest.mark.parametrize(
    ("field", "value", "label", "message"),
    [
        (
            "alert_resolution_rate_below",
            "1.5",
            "Resolution rate: alert below",
            "Ensure this value is less than or equal to 1.",
        ),
        ("alert_backlog_above", "lots", "Backlog: alert above", "Enter a number."),
        (
            "alert_resolution_rate_days",
            "0",
            "Resolution rate: over days",
            "Ensure this value is greater than or equal to 1.",
        ),
        (
            "alert_mean_sentiment_below",
            "-2",
            "Mean sentiment: alert below",
            "Ensure this value is greater than or equal to -1.",
        ),
        ("confidence_threshold", "2", "Confidence threshold", "Ensure this value is less than"),
    ],
)
def test_it_names_the_invalid_field_and_saves_nothing(
    admin_client, agent, field, value, label, message
):
    # A valid change next to the invalid one: it is not saved either.
    data = policy(agent, name="Renamed", alert_escalation_rate_above="0.2", **{field: value})
    response = admin_client.post("/console/agents/support-bot/", data)
    html = response.content.decode()
    assert response.status_code == 400
    assert f'<a href="#id_{field}">{label}</a>: {message}' in html  # the summary
    assert f'<ul class="field-errors" id="id_{field}_error"><li>{message}' in html  # the field
    described = rf'name="{field}"[^>]*aria-invalid="true" aria-describedby="[^"]*id_{field}_error"'
    assert re.search(described, html)
    agent.refresh_from_db()
    assert (agent.name, agent.alert_thresholds) == ("Support", DEMO)
    assert not AuditEvent.objects.exists()


def test_it_wants_a_bound_for_a_threshold_with_days(admin_client, agent):
    data = policy(agent, alert_backlog_days=3)
    response = admin_client.post("/console/agents/support-bot/", data)
    assert response.status_code == 400
    assert (
        '<a href="#id_alert_backlog_below">Backlog: alert below</a>: Give a bound (below or '
        "above), or clear the days and the minimum." in response.content.decode()
    )
    assert Agent.objects.get(pk=agent.pk).alert_thresholds == DEMO


def test_it_says_that_saving_drops_thresholds_of_unknown_kpis(admin_client):
    agent = AgentFactory(slug="odd-bot", alert_thresholds={**DEMO, "mood": {"below": 1}})
    html = admin_client.get("/console/agents/odd-bot/").content.decode()
    assert "Saving removes thresholds of KPIs that cannot alert: mood." in html
    admin_client.post("/console/agents/odd-bot/", policy(agent))
    assert Agent.objects.get(pk=agent.pk).alert_thresholds == DEMO


# --- the policy's lists and guidelines are bounded --------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "review_intents_text",
            ", ".join(f"intent_{n}" for n in range(201)),
            "200 entries at most.",
        ),
        (
            "review_domains_text",
            ", ".join(f"domain-{n}" for n in range(201)),
            "200 entries at most.",
        ),
        ("review_domains_text", "legal, " + "x" * 101, "is too long for a domain (at most 100"),
        ("guidelines", "g" * 20_001, "Ensure this value has at most 20000 characters"),
    ],
)
def test_it_refuses_policy_lists_and_guidelines_over_their_bounds(
    admin_client, agent, settings, field, value, message
):
    settings.INGEST_MAX_TEXT_CHARS = 20_000
    response = admin_client.post(
        "/console/agents/support-bot/", policy(agent, name="Renamed", **{field: value})
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert re.search(
        rf'<ul class="field-errors" id="id_{field}_error"><li>[^<]*{re.escape(message)}', html
    )
    agent.refresh_from_db()
    assert (agent.name, agent.review_intents, agent.review_domains) == ("Support", [], [])
    assert agent.guidelines == ""
    assert not AuditEvent.objects.exists()


def test_it_counts_a_repeated_intent_once(admin_client, agent):
    intents = ", ".join(["refund"] * 300 + ["legal_threat"])
    response = admin_client.post(
        "/console/agents/support-bot/", policy(agent, review_intents_text=intents)
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.review_intents == ["legal_threat", "refund"]


def test_the_policy_service_applies_the_same_bounds(agent, settings):
    from django.core.exceptions import ValidationError

    from console.services import agent_policy_update

    settings.INGEST_MAX_TEXT_CHARS = 100
    changes = {"review_intents": [f"i{n}" for n in range(201)], "guidelines": "g" * 101}
    with pytest.raises(ValidationError) as exc:
        agent_policy_update(agent=agent, changes=changes, actor=None)
    assert exc.value.message_dict == {
        "review_intents": ["200 entries at most."],
        "guidelines": ["Guidelines have at most 100 characters."],
    }
    agent.refresh_from_db()
    assert agent.review_intents == [] and not AuditEvent.objects.exists()
