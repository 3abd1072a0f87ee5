"""POST /api/v1/interactions and /api/v1/feedback: auth, per-item errors, limits, schema."""

import pytest

from accounts.models import ApiToken
from accounts.services import token_revoke
from agents.models import FeedbackEvent, Interaction

pytestmark = pytest.mark.django_db


def item(external_id, **extra):
    return {
        "external_id": external_id,
        "agent": "support-bot",
        "input": "Q?",
        "output": "A.",
        "confidence": 0.5,
        **extra,
    }


def test_it_refuses_a_request_without_a_token(api_client):
    response = api_client().post("/api/v1/interactions", [item("t-1")])
    assert response.status_code == 401
    assert not Interaction.objects.exists()


def test_it_refuses_a_wrong_token(api_client):
    response = api_client(secret="cd_not-a-real-token").post("/api/v1/interactions", [item("t-1")])
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}
    assert not Interaction.objects.exists()


def test_it_refuses_a_revoked_token(api_client, pipeline):
    client = api_client(pipeline)
    token_revoke(token=ApiToken.objects.get(user=pipeline), actor=pipeline)
    response = client.post("/api/v1/interactions", [item("t-1")])
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}
    assert not Interaction.objects.exists()


def test_it_refuses_a_user_without_an_ingest_role(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/interactions", [item("t-1")])
    assert response.status_code == 403
    assert "roles: admin, agent" in response.json()["detail"]


def test_it_lets_admins_ingest(api_client, lead):
    assert api_client(lead).post("/api/v1/interactions", [item("t-1")]).json()["created"] == 1


def test_it_stores_valid_items_and_indexes_the_errors(api_client, pipeline):
    body = [item("t-1"), item("t-2", confidence=-1), item("t-3"), "nope", item("t-1")]
    response = api_client(pipeline).post("/api/v1/interactions", body)
    assert response.status_code == 200
    assert response.json() == {
        "created": 2,
        "duplicates": 1,
        "errors": [
            {"index": 1, "field": "confidence", "message": "must be between 0 and 1, got -1"},
            {"index": 3, "field": "record", "message": "must be a JSON object, got string"},
        ],
    }
    assert set(Interaction.objects.values_list("external_id", flat=True)) == {"t-1", "t-3"}


def test_it_reports_every_problem_of_an_item(api_client, pipeline):
    response = api_client(pipeline).post("/api/v1/interactions", [{"agent": "support-bot"}])
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["external_id", "input", "output", "confidence"]
    assert {e["index"] for e in response.json()["errors"]} == {0}


def test_it_answers_400_for_a_body_that_is_not_an_array(api_client, pipeline):
    client = api_client(pipeline)
    assert client.post("/api/v1/interactions", {"external_id": "t-1"}).status_code == 400
    response = client.post("/api/v1/interactions", b"[{")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body is not valid JSON")


def test_it_answers_413_for_too_many_items(api_client, pipeline, settings):
    settings.INGEST_MAX_ITEMS_PER_REQUEST = 3
    response = api_client(pipeline).post("/api/v1/interactions", [item(f"t-{i}") for i in range(4)])
    assert response.status_code == 413
    assert response.json()["detail"] == "4 items in one request; the limit is 3"
    assert not Interaction.objects.exists()


def test_it_answers_413_for_a_body_over_the_size_limit(api_client, pipeline, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api_client(pipeline).post("/api/v1/interactions", [item("t-1", input="x" * 2000)])
    assert response.status_code == 413
    assert response.json() == {"detail": "body larger than 1,000 bytes"}
    assert not Interaction.objects.exists()


def test_it_ingests_feedback(api_client, pipeline):
    client = api_client(pipeline)
    client.post("/api/v1/interactions", [item("t-1")])
    response = client.post(
        "/api/v1/feedback",
        [
            {"agent": "support-bot", "external_id": "t-1", "kind": "thumbs_down"},
            {"agent": "support-bot", "external_id": "t-404", "kind": "clicked"},
        ],
    )
    assert response.json()["created"] == 1
    assert response.json()["errors"][0]["index"] == 1
    assert FeedbackEvent.objects.get().kind == "thumbs_down"


def test_it_records_when_a_token_was_last_used(api_client, pipeline):
    client = api_client(pipeline)
    client.post("/api/v1/interactions", [item("t-1")])
    assert ApiToken.objects.get(user=pipeline).last_used_at is not None


def test_it_publishes_an_openapi_schema_with_the_ingest_bodies(client):
    schema = client.get("/api/v1/openapi.json").json()
    body = schema["paths"]["/api/v1/interactions"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert body["type"] == "array" and body["maxItems"] == 5000
    assert body["items"]["required"] == ["external_id", "agent", "input", "output", "confidence"]
    assert "/api/v1/feedback" in schema["paths"]


def test_it_serves_browsable_docs(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_it_stores_the_token_hashed(pipeline):
    from accounts.services import token_create

    _, secret = token_create(user=pipeline, name="ci")
    stored = ApiToken.objects.get(name="ci")
    assert secret not in (stored.key_hash, stored.prefix)
    assert stored.key_hash == ApiToken.hash_key(secret)


def limited_client(api_client, user, *agents):
    from accounts.services import token_create

    _, secret = token_create(user=user, name="limited", agent_slugs=list(agents))
    return api_client(secret=secret)


def test_it_refuses_items_for_agents_outside_the_tokens_scope(api_client, pipeline):
    from agents.models import Agent

    client = limited_client(api_client, pipeline, "support-bot")
    body = [item("t-1"), item("t-2", agent="sales-bot"), item("t-3")]
    response = client.post("/api/v1/interactions", body)
    assert response.status_code == 200
    assert response.json() == {
        "created": 2,
        "duplicates": 0,
        "errors": [
            {
                "index": 1,
                "field": "agent",
                "message": "this token may not write for agent 'sales-bot'",
            }
        ],
    }
    assert not Agent.objects.filter(slug="sales-bot").exists()


def test_it_refuses_feedback_for_agents_outside_the_tokens_scope(api_client, pipeline):
    api_client(pipeline).post("/api/v1/interactions", [item("t-1", agent="sales-bot")])
    client = limited_client(api_client, pipeline, "support-bot")
    response = client.post(
        "/api/v1/feedback", [{"agent": "sales-bot", "external_id": "t-1", "kind": "thumbs_down"}]
    )
    assert response.json()["errors"] == [
        {"index": 0, "field": "agent", "message": "this token may not write for agent 'sales-bot'"}
    ]
    assert not FeedbackEvent.objects.exists()


def test_it_lets_a_token_without_a_scope_write_for_every_agent(api_client, pipeline):
    token = ApiToken.objects.create(user=pipeline, name="old", key_hash=ApiToken.hash_key("cd_x"))
    assert token.agent_slugs == []
    response = api_client(secret="cd_x").post("/api/v1/interactions", [item("t-1", agent="new")])
    assert response.json()["created"] == 1


# --- tool calls and results (`steps`) ---------------------------------------------------------

TOOL_CONTEXT = [
    {"role": "user", "content": "Hi, is order A-1 out?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c0", "name": "lookup_order", "arguments": '{"order":"A-1"}'}],
    },
    {"role": "tool", "tool_call_id": "c0", "content": "shipped"},
    {"role": "assistant", "content": "Yes, it shipped."},
]
# As an agent may send them: arguments and a result as JSON values, content null.
TOOL_STEPS_SENT = [
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "name": "track_parcel", "arguments": {"parcel": "P\t7", "n": 1}},
            {"id": "call_2", "name": "eta", "arguments": "{}"},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "name": "track_parcel", "content": {"at": "hub\n"}},
    {"role": "tool", "tool_call_id": "call_2", "content": "tomorrow \\ 10:00"},
]
TOOL_STEPS_STORED = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_1", "name": "track_parcel", "arguments": '{"parcel":"P\\t7","n":1}'},
            {"id": "call_2", "name": "eta", "arguments": "{}"},
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "track_parcel",
        "content": '{"at":"hub\\n"}',
    },
    {"role": "tool", "tool_call_id": "call_2", "content": "tomorrow \\ 10:00"},
]


@pytest.fixture(params=[pytest.param("copy", marks=pytest.mark.postgres), "portable"])
def write_path(request, monkeypatch):
    """Ingest through PostgreSQL's COPY path, or through the portable INSERT path (what
    SQLite uses), which is forced on PostgreSQL by making ingest see another vendor."""
    if request.param == "portable":
        from types import SimpleNamespace

        import ingest.batches
        import ingest.services

        for module in (ingest.services, ingest.batches):
            monkeypatch.setattr(module, "connection", SimpleNamespace(vendor="portable"))
    return request.param


def test_it_stores_tool_calls_and_results_sent_in_steps(api_client, pipeline, write_path):
    body = [
        item("t-1", context=TOOL_CONTEXT, steps=TOOL_STEPS_SENT, confidence=0.2),
        item("t-2"),
    ]

    response = api_client(pipeline).post("/api/v1/interactions", body)

    assert response.json() == {"created": 2, "duplicates": 0, "errors": []}
    stored = Interaction.objects.get(external_id="t-1")
    assert stored.steps == TOOL_STEPS_STORED
    assert stored.context == TOOL_CONTEXT
    assert Interaction.objects.get(external_id="t-2").steps == []
    assert stored.review_item.reason == "low_confidence"  # routed as any other


def test_it_reports_a_tool_result_without_its_call_by_path(api_client, pipeline, write_path):
    steps = [{"role": "tool", "tool_call_id": "call_9", "content": "?"}]

    response = api_client(pipeline).post(
        "/api/v1/interactions", [item("t-1", steps=steps), item("t-2", steps=TOOL_STEPS_SENT)]
    )

    assert response.json() == {
        "created": 1,
        "duplicates": 0,
        "errors": [
            {
                "index": 0,
                "field": "steps[0].tool_call_id",
                "message": "answers no tool call made earlier in steps (no call has the id "
                "'call_9')",
            }
        ],
    }
    assert Interaction.objects.get().steps == TOOL_STEPS_STORED


def test_it_documents_context_and_steps_messages_in_the_schema(client):
    schema = client.get("/api/v1/openapi.json").json()
    item_schema = schema["paths"]["/api/v1/interactions"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["items"]["properties"]
    steps = item_schema["steps"]["items"]["properties"]
    assert steps["role"]["enum"] == ["assistant", "tool"]
    call = steps["tool_calls"]["items"]
    assert call["required"] == ["id", "name"]
    assert call["properties"]["name"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
    assert "tool_call_id" in item_schema["context"]["items"]["properties"]
