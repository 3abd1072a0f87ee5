"""Redaction at ingest: every text an interaction carries, every entry point (the API, the
file import sequential and pipelined, OTLP traces), stable placeholders across the
conversation and across imports, the mapping written with the batch (and only for rows
stored), originals kept only when the policy says so, no cost for agents without a policy."""

import io
import json

import pytest
from django.db import connection

from agents.models import Interaction, RedactedValue
from ingest.services import interactions_ingest, interactions_ingest_file
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

POLICY = {
    "types": ["email", "phone", "iban", "card"],
    "patterns": [{"name": "CASE_ID", "regex": r"CASE-[0-9]{6}"}],
    "keep_originals": True,
    "regions": ["GB", "DE"],
}
EMAIL, OTHER_EMAIL = "jan.devries@example.nl", "anna@example.de"
PHONE, IBAN, CARD = "+44 20 7946 0958", "DE89 3704 0044 0532 0130 00", "4111 1111 1111 1111"


@pytest.fixture
def agent(db):
    return AgentFactory(slug="support-bot", redaction=POLICY)


def rec(external_id, **extra):
    return {
        "external_id": external_id,
        "agent": "support-bot",
        "input": "Q?",
        "output": "A.",
        "confidence": 0.5,
        **extra,
    }


def ingest(*records):
    return interactions_ingest(records=enumerate(records), source="api")


def test_it_redacts_every_text_of_an_interaction(agent):
    ingest(
        rec(
            "t-1",
            conversation_id="c-1",
            input=f"I am {EMAIL}, call {PHONE}",
            output=f"Refund to {IBAN} for CASE-123456",
            context=[{"role": "user", "content": f"earlier: {EMAIL}"}],
            steps=[
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "name": "charge", "arguments": {"card": CARD, "to": EMAIL}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": {"billed": CARD}},
            ],
            metadata={"customer": {"mail": OTHER_EMAIL}, "n": 3},
        )
    )
    i = Interaction.objects.get()
    # Numbered in conversation order: context, input, steps, output, metadata.
    assert i.context == [{"role": "user", "content": "earlier: [EMAIL_1]"}]
    assert i.input == "I am [EMAIL_1], call [PHONE_1]"
    assert json.loads(i.steps[0]["tool_calls"][0]["arguments"]) == {
        "card": "[CARD_1]",
        "to": "[EMAIL_1]",
    }
    assert i.steps[1]["content"] == '{"billed":"[CARD_1]"}'
    assert i.output == "Refund to [IBAN_1] for [CASE_ID_1]"
    assert i.metadata == {"customer": {"mail": "[EMAIL_2]"}, "n": 3}
    assert i.redactions == {"email": 4, "phone": 1, "card": 2, "iban": 1, "CASE_ID": 1}
    stored = {(r.kind, r.number): r.original for r in RedactedValue.objects.all()}
    assert stored == {
        ("email", 1): EMAIL,
        ("email", 2): OTHER_EMAIL,
        ("phone", 1): PHONE,
        ("card", 1): CARD,
        ("iban", 1): IBAN,
        ("CASE_ID", 1): "CASE-123456",
    }


def test_it_keeps_placeholders_stable_across_a_conversation_and_imports(agent):
    ingest(rec("t-1", conversation_id="c-1", input=f"mail {EMAIL}"))
    ingest(
        rec("t-2", conversation_id="c-1", input=f"mail {OTHER_EMAIL} and {EMAIL.upper()}"),
        rec("t-3", conversation_id="c-2", input=f"mail {OTHER_EMAIL}"),
        rec("t-4", input=f"mail {OTHER_EMAIL}"),  # no conversation: its own scope
    )
    inputs = dict(Interaction.objects.values_list("external_id", "input"))
    assert inputs == {
        "t-1": "mail [EMAIL_1]",
        "t-2": "mail [EMAIL_2] and [EMAIL_1]",  # an address is case-insensitive
        "t-3": "mail [EMAIL_1]",
        "t-4": "mail [EMAIL_1]",
    }
    keys = sorted(RedactedValue.objects.values_list("conversation_key", "number"))
    assert keys == [("c:c-1", 1), ("c:c-1", 2), ("c:c-2", 1), ("i:t-4", 1)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parallel", [False, True])
def test_it_redacts_a_file_import_in_the_pipelined_child_too(parallel):
    if parallel and connection.vendor != "postgresql":
        pytest.skip("the pipelined path is for PostgreSQL")
    AgentFactory(slug="support-bot", redaction=POLICY)
    lines = [
        json.dumps(rec(f"t-{i}", conversation_id="c-1", input=f"{i}: {EMAIL} / {PHONE}"))
        for i in range(10)
    ]
    result = interactions_ingest_file(
        stream=io.BytesIO("\n".join(lines).encode()), batch_size=3, parallel=parallel
    )
    assert result.created == 10
    inputs = set(Interaction.objects.values_list("input", flat=True))
    assert inputs == {f"{i}: [EMAIL_1] / [PHONE_1]" for i in range(10)}
    assert RedactedValue.objects.count() == 2  # written once, by the first batch


@pytest.mark.django_db(transaction=True)
def test_a_merged_duplicate_batch_leaves_no_mapping_and_no_double_count():
    AgentFactory(slug="support-bot", redaction=POLICY)
    ingest(rec("t-1", conversation_id="c-1", input=f"mail {EMAIL}"))
    # The same row again with a new address (as if sent before the policy changed), and a
    # new row: the duplicate is skipped by the merge, so its address maps nowhere.
    result = ingest(
        rec("t-1", conversation_id="c-1", input=f"mail {OTHER_EMAIL}"),
        rec("t-2", conversation_id="c-1", input=f"mail {EMAIL}"),
    )
    assert (result.created, result.duplicates) == (1, 1)
    assert list(RedactedValue.objects.values_list("number", "original")) == [(1, EMAIL)]
    counts = dict(Interaction.objects.values_list("external_id", "redactions"))
    assert counts == {"t-1": {"email": 1}, "t-2": {"email": 1}}


def test_it_stores_no_original_when_the_policy_keeps_none(db):
    AgentFactory(slug="support-bot", redaction={**POLICY, "keep_originals": False})
    ingest(rec("t-1", conversation_id="c-1", input=f"mail {EMAIL}"))
    ingest(rec("t-2", conversation_id="c-1", input=f"again {EMAIL}"))
    assert Interaction.objects.get(external_id="t-2").input == "again [EMAIL_1]"
    assert list(RedactedValue.objects.values_list("original", flat=True)) == [None]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM agents_redactedvalue WHERE original IS NOT NULL")
        assert cursor.fetchone() == (0,)


def test_it_leaves_agents_without_a_policy_alone(db):
    AgentFactory(slug="support-bot")
    ingest(rec("t-1", input=f"mail {EMAIL}"))
    i = Interaction.objects.get()
    assert (i.input, i.redactions) == (f"mail {EMAIL}", {})
    assert not RedactedValue.objects.exists()


def test_it_redacts_over_the_api(agent, api_client, pipeline):
    response = api_client(pipeline).post(
        "/api/v1/interactions", [rec("t-1", input=f"mail {EMAIL}")]
    )
    assert response.json()["created"] == 1
    assert Interaction.objects.get().input == "mail [EMAIL_1]"


def test_it_redacts_otlp_traces(agent, client, pipeline):
    from accounts.services import token_create

    _, secret = token_create(user=pipeline, name="otel")
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.conversation.id": "conv-9",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": f"I am {EMAIL}"}]}]
        ),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": f"Hi {EMAIL}"}]}]
        ),
    }
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "support-bot"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "00f067aa0ba902b7",
                                "name": "chat",
                                "startTimeUnixNano": "1763633700000000000",
                                "endTimeUnixNano": "1763633701000000000",
                                "attributes": [
                                    {"key": k, "value": {"stringValue": v}}
                                    for k, v in attrs.items()
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = client.post(
        "/api/v1/otel/v1/traces",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200, response.content
    i = Interaction.objects.get()
    assert EMAIL not in i.input + i.output + json.dumps(i.context)
    assert "[EMAIL_1]" in i.input + json.dumps(i.context)
    assert "[EMAIL_1]" in i.output


def test_it_loads_the_conversations_maps_in_one_query_per_chunk(agent):
    """Read ahead (ingest.redact.PREFETCH records): the maps of 150 conversations new to the
    import come in one query, not one per conversation."""
    from django.test.utils import CaptureQueriesContext

    ingest(rec("first", conversation_id="c-0", input=f"mail {EMAIL}"))  # a stored map
    records = [
        rec(f"r-{i}", conversation_id=f"c-{i % 150}", input=f"mail {EMAIL} or {OTHER_EMAIL}")
        for i in range(300)
    ]

    with CaptureQueriesContext(connection) as queries:
        result = ingest(*records)

    assert result.created == 300
    loads = [q for q in queries.captured_queries if 'FROM "agents_redactedvalue"' in q["sql"]]
    assert len(loads) == 1
    # The stored map was used: in c-0 the first address keeps its number.
    c0 = Interaction.objects.filter(conversation_id="c-0").values_list("input", flat=True)
    assert set(c0) == {"mail [EMAIL_1]", "mail [EMAIL_1] or [EMAIL_2]"}
