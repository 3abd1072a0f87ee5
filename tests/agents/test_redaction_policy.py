"""The redaction policy (validation, the console form), the admins' reveal (audited, refused
to other roles, honest when originals were not kept) and corrections typed by reviewers."""

import pytest

from agents.models import Agent, Interaction, RedactedValue
from agents.redaction import RedactionPolicy, pattern_problems, policy_problems
from core.models import AuditEvent
from ingest.services import interactions_ingest
from retraining.models import TrainingPair
from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, UserFactory

POLICY = {"types": ["email", "phone"], "keep_originals": True, "regions": ["GB"]}
EMAIL, NEW_EMAIL = "jan.devries@example.nl", "new.person@example.org"


# --- the policy ------------------------------------------------------------------------------


def test_it_refuses_bad_custom_patterns_with_clear_messages():
    assert pattern_problems("case id", "x") == [
        "the name must be capital letters and underscores (A-Z, _), at most 32, "
        "starting with a letter"
    ]
    assert pattern_problems("EMAIL", "x") == ["the name EMAIL is a built-in type"]
    assert pattern_problems("CASE", "(")[0].startswith("the regex does not compile")
    assert pattern_problems("CASE", "[0-9]*") == [
        "the regex matches empty text; it must match at least one character"
    ]
    assert pattern_problems("CASE", "x" * 201) == ["the regex is longer than 200 characters"]
    assert pattern_problems("CASE_ID", "CASE-[0-9]{6}") == []


def test_it_refuses_unknown_types_regions_and_keys():
    assert policy_problems({"types": ["ssn"], "regions": ["XX"], "extra": 1}) == [
        "unknown keys: extra",
        "types must be a list of email, phone, iban, card",
        "regions must be a list of two-letter region codes (e.g. GB, DE)",
    ]
    assert RedactionPolicy.parse({"types": ["ssn"]}) is None
    assert RedactionPolicy.parse({}) is None


def agent_form(**redaction) -> dict:
    """The console's agent form for support-bot, with the redaction fields given."""
    return {
        "name": "Support",
        "kind": "chat",
        "domain": "support",
        "confidence_threshold": 0.7,
        "audit_rate": 0.0,
        "required_reviews": 1,
        **redaction,
    }


@pytest.mark.django_db
def test_it_saves_the_policy_from_the_console_form(client, lead):
    client.force_login(lead)
    agent = AgentFactory(slug="support-bot")
    data = agent_form(
        redaction_types=["email", "card"],
        redaction_patterns="CASE_ID = CASE-[0-9]{6}",
        redaction_regions="gb, de",
        redaction_keep_originals="on",
    )
    response = client.post(f"/console/agents/{agent.slug}/", data)
    assert response.status_code == 302
    assert Agent.objects.get(pk=agent.pk).redaction == {
        "types": ["email", "card"],
        "keep_originals": True,
        "patterns": [{"name": "CASE_ID", "regex": "CASE-[0-9]{6}"}],
        "regions": ["GB", "DE"],
    }
    page = client.get(f"/console/agents/{agent.slug}/").content.decode()
    assert "CASE_ID = CASE-[0-9]{6}" in page


@pytest.mark.django_db
def test_it_shows_pattern_errors_on_the_console_form_and_saves_nothing(client, lead):
    client.force_login(lead)
    agent = AgentFactory(slug="support-bot")
    data = agent_form(redaction_patterns="case = (\nCASE = .*", redaction_regions="ZZ")
    response = client.post(f"/console/agents/{agent.slug}/", data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert any(
        "Line 1 (case)" in e and "capital letters" in e for e in errors["redaction_patterns"]
    )
    assert any("does not compile" in e for e in errors["redaction_patterns"])
    assert any(
        "Line 2 (CASE): the regex matches empty text" in e for e in errors["redaction_patterns"]
    )
    assert errors["redaction_regions"] == ["Unknown region codes: ZZ."]
    assert Agent.objects.get(pk=agent.pk).redaction == {}


# --- the reveal ------------------------------------------------------------------------------


def ingest_item(policy, text=f"mail me at {EMAIL} or +44 20 7946 0958"):
    AgentFactory(slug="support-bot", redaction=policy)
    interactions_ingest(
        records=enumerate(
            [
                {
                    "external_id": "t-1",
                    "agent": "support-bot",
                    "conversation_id": "c-1",
                    "input": text,
                    "output": "Noted.",
                    "confidence": 0.1,
                }
            ]
        ),
        source="api",
    )
    return ReviewItem.objects.get()


@pytest.mark.django_db
def test_it_reveals_the_originals_to_admins_and_audits_each_reveal(client, lead):
    item = ingest_item(POLICY)
    client.force_login(lead)
    page = client.get(f"/console/items/{item.pk}/").content.decode()
    assert "Reveal originals" in page and EMAIL not in page and "[EMAIL_1]" in page
    for _ in range(2):
        response = client.post(f"/console/items/{item.pk}/reveal")
        assert response.status_code == 200
    html = response.content.decode()
    assert EMAIL in html and "+44 20 7946 0958" in html and "[PHONE_1]" in html
    events = AuditEvent.objects.filter(action="redaction.revealed")
    assert events.count() == 2
    event = events.first()
    assert (event.actor, event.target_type, event.target_id) == (lead, "review_item", item.pk)
    assert event.after == {"conversation": "c:c-1", "placeholders": 2, "originals_shown": 2}
    assert EMAIL not in str(event.after)


@pytest.mark.django_db
def test_it_answers_the_reveal_fragment_to_htmx(client, lead):
    item = ingest_item(POLICY)
    client.force_login(lead)
    response = client.post(f"/console/items/{item.pk}/reveal", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div id="reveal-{item.pk}"') and EMAIL in html


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["reviewer", "ml"])
def test_it_refuses_the_reveal_to_other_roles(client, role):
    item = ingest_item(POLICY)
    client.force_login(UserFactory(username=f"u-{role}", roles=[role], domains=["support"]))
    response = client.post(f"/console/items/{item.pk}/reveal")
    assert response.status_code == 403
    assert EMAIL not in response.content.decode()
    assert not AuditEvent.objects.filter(action="redaction.revealed").exists()


@pytest.mark.django_db
def test_it_refuses_a_get_of_the_reveal(client, lead):
    item = ingest_item(POLICY)
    client.force_login(lead)
    assert client.get(f"/console/items/{item.pk}/reveal").status_code == 405


@pytest.mark.django_db
def test_it_says_so_when_the_originals_were_not_kept(client, lead):
    item = ingest_item({**POLICY, "keep_originals": False})
    assert list(RedactedValue.objects.values_list("original", flat=True)) == [None, None]
    client.force_login(lead)
    html = client.post(f"/console/items/{item.pk}/reveal").content.decode()
    assert "The originals were not kept" in html and EMAIL not in html
    assert AuditEvent.objects.get(action="redaction.revealed").after["originals_shown"] == 0


# --- corrections -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_redacts_personal_data_typed_into_a_correction(reviewer):
    item = ingest_item(POLICY)
    claimed = services.item_claim(reviewer=reviewer)
    assert claimed.pk == item.pk
    services.decision_submit(
        item_id=item.pk,
        reviewer=reviewer,
        verdict="correct",
        corrected_output=f"Write to [EMAIL_1], {EMAIL.upper()} or {NEW_EMAIL}.",
        notes=f"asked for {NEW_EMAIL}",
    )
    review = Review.objects.get()
    # Typed placeholders stay; a known address gets its placeholder, a new one the next.
    assert review.corrected_output == "Write to [EMAIL_1], [EMAIL_1] or [EMAIL_2]."
    assert review.notes == "asked for [EMAIL_2]"
    assert dict(RedactedValue.objects.values_list("number", "original").filter(kind="email")) == {
        1: EMAIL,
        2: NEW_EMAIL,
    }
    # The training pair (what exports carry) has the redacted correction.
    pair = TrainingPair.objects.get(item=item)
    assert pair.output == "Write to [EMAIL_1], [EMAIL_1] or [EMAIL_2]."
    assert pair.input == "mail me at [EMAIL_1] or [PHONE_1]"


@pytest.mark.django_db
def test_it_stores_corrections_of_agents_without_a_policy_as_typed(reviewer):
    item = ingest_item({})
    services.item_claim(reviewer=reviewer)
    services.decision_submit(
        item_id=item.pk, reviewer=reviewer, verdict="correct", corrected_output=f"to {NEW_EMAIL}"
    )
    assert Review.objects.get().corrected_output == f"to {NEW_EMAIL}"
    assert Interaction.objects.get().input.startswith(f"mail me at {EMAIL}")
