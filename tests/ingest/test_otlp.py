"""OpenTelemetry traces in (issue 13): `POST /api/v1/otel/v1/traces` takes what an OTLP/HTTP
exporter sends, in protobuf and JSON, gzip or not; GenAI spans become interactions.

The first tests send hand-built OTLP bodies through Django's test client; the last ones run
the real OpenTelemetry SDK with its OTLP/HTTP exporters (protobuf and JSON) against gunicorn.
"""

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agents.models import Agent, Interaction
from reviews.models import ReviewItem
from tests.factories import AgentFactory, UserFactory

URL = "/api/v1/otel/v1/traces"
TRACE = "5b8efff798038103d269b633813fc60c"

QUESTION = [
    {"role": "user", "parts": [{"type": "text", "content": "Hi, order 42 please"}]},
    {"role": "assistant", "parts": [{"type": "text", "content": "Sure, one moment."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Where is order 42?"}]},
    {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": "call_1", "name": "lookup_order", "arguments": {"id": 42}}
        ],
    },
    {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"status": "sent"}}],
    },
]
ANSWER = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Order 42 left our warehouse."}],
        "finish_reason": "stop",
    }
]


def value(v):
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def attrs(d: dict) -> list:
    return [{"key": k, "value": value(v)} for k, v in d.items()]


def span(span_id: str, attributes: dict, *, events=(), trace=TRACE) -> dict:
    return {
        "traceId": trace,
        "spanId": span_id,
        "name": "chat gpt-4o",
        "kind": 3,
        "startTimeUnixNano": "1764748800000000000",
        "endTimeUnixNano": "1764748801000000000",
        "attributes": attrs(attributes),
        "events": [{"name": n, "attributes": attrs(a)} for n, a in events],
    }


def export(*spans, service="support-bot", version="2026.12.1") -> dict:
    resource = {"service.name": service, "service.version": version}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs(resource)},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


def chat(span_id="00f067aa0ba902b7", **extra) -> dict:
    return span(
        span_id,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.conversation.id": "conv-9",
            "gen_ai.input.messages": json.dumps(QUESTION),
            "gen_ai.output.messages": json.dumps(ANSWER),
            "coachdesk.confidence": 0.31,
            **extra,
        },
    )


@pytest.fixture
def post(client, pipeline):
    from accounts.services import token_create

    _, secret = token_create(user=pipeline, name="otel")
    auth = {"Authorization": f"Bearer {secret}"}

    def send(body, *, content_type="application/json", headers=None):
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        return client.post(
            URL, body, content_type=content_type, headers={**auth, **(headers or {})}
        )

    return send


@pytest.mark.django_db
def test_a_genai_chat_span_becomes_an_interaction_with_its_conversation_and_tool_calls(post):
    response = post(export(chat()))

    assert response.status_code == 200 and response.json() == {}
    row = Interaction.objects.get()
    assert (row.agent.slug, row.agent_version) == ("support-bot", "2026.12.1")
    assert row.external_id == f"otel:{TRACE}:00f067aa0ba902b7"
    assert (row.input, row.output, row.confidence) == (
        "Where is order 42?",
        "Order 42 left our warehouse.",
        0.31,
    )
    assert row.conversation_id == "conv-9"
    assert row.context == [
        {"role": "user", "content": "Hi, order 42 please"},
        {"role": "assistant", "content": "Sure, one moment."},
    ]
    assert row.steps == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": '{"id":42}'}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status":"sent"}'},
    ]
    assert row.metadata["model"] == "gpt-4o" and row.metadata["trace_id"] == TRACE
    item = ReviewItem.objects.get(interaction=row)
    assert item.reason == "low_confidence"


@pytest.mark.django_db
def test_a_replayed_export_is_a_duplicate(post):
    body = export(chat())
    post(body)
    post(body)
    assert Interaction.objects.count() == 1 and ReviewItem.objects.count() == 1


@pytest.mark.django_db
def test_other_spans_are_ignored_and_counted_and_tool_steps_skipped(post):
    http = span("1111111111111111", {"http.request.method": "GET", "url.path": "/"})
    step = span(
        "2222222222222222",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps(QUESTION[:3]),
            "gen_ai.output.messages": json.dumps([QUESTION[3]]),
        },
    )
    tool = span("3333333333333333", {"gen_ai.operation.name": "execute_tool"})

    answer = post(export(http, step, tool, chat())).json()

    assert answer == {
        "partialSuccess": {
            "rejectedSpans": 0,
            "errorMessage": "1 spans without gen_ai attributes ignored",
        }
    }
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_rejected_spans_are_named_and_the_good_ones_kept(post):
    no_user = span(
        "4444444444444444",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps([]),
            "gen_ai.output.messages": json.dumps(ANSWER),
        },
    )
    bad_confidence = chat("5555555555555555", **{"coachdesk.confidence": 7.0})

    answer = post(export(no_user, bad_confidence, chat())).json()["partialSuccess"]

    assert answer["rejectedSpans"] == 2
    assert f"span {TRACE}:4444444444444444: no user message in the input" in answer["errorMessage"]
    assert f"span {TRACE}:5555555555555555: confidence:" in answer["errorMessage"]
    assert Interaction.objects.count() == 1


@pytest.mark.django_db
def test_older_attribute_forms_and_agent_names(post):
    legacy = span(
        "6666666666666666",
        {
            "gen_ai.system": "openai",
            "gen_ai.agent.name": "Legal Bot",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "You are careful.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "Can I break my lease?",
            "gen_ai.prompt.2.role": "assistant",
            "gen_ai.prompt.2.tool_calls.0.id": "c9",
            "gen_ai.prompt.2.tool_calls.0.name": "statute",
            "gen_ai.prompt.2.tool_calls.0.arguments": '{"q": "lease"}',
            "gen_ai.prompt.3.role": "tool",
            "gen_ai.prompt.3.tool_call_id": "c9",
            "gen_ai.prompt.3.content": "§ 573c BGB",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "With three months' notice.",
            "coachdesk.confidence": 0.9,
            "coachdesk.domain": "legal",
        },
    )
    events = span(
        "7777777777777777",
        {"gen_ai.operation.name": "chat", "coachdesk.confidence": 0.2},
        events=[
            ("gen_ai.user.message", {"content": "Return a kettle?"}),
            ("gen_ai.choice", {"message": json.dumps({"content": "Within 30 days."})}),
        ],
    )

    assert post(export(legacy, events)).json() == {}

    lease = Interaction.objects.get(agent__slug="legal-bot")
    assert (lease.input, lease.output, lease.domain) == (
        "Can I break my lease?",
        "With three months' notice.",
        "legal",
    )
    assert lease.context == [{"role": "system", "content": "You are careful."}]
    assert [m["role"] for m in lease.steps] == ["assistant", "tool"]
    kettle = Interaction.objects.get(agent__slug="support-bot")
    assert (kettle.input, kettle.output) == ("Return a kettle?", "Within 30 days.")


@pytest.mark.django_db
def test_without_a_confidence_the_agents_policy_decides(post):
    AgentFactory(slug="support-bot", confidence_threshold=0.6, audit_rate=0.0)
    post(export(chat(**{"coachdesk.confidence": None})))
    row = Interaction.objects.get()
    assert row.confidence == 0.6 and row.metadata["confidence"] == "absent"
    assert not ReviewItem.objects.exists()  # not low confidence; no audit sample


@pytest.mark.django_db
def test_protobuf_and_gzip_answer_in_protobuf(post):
    from google.protobuf import json_format

    request = json_format.ParseDict(
        {
            "resourceSpans": [
                {
                    "resource": export(chat())["resourceSpans"][0]["resource"],
                    "scopeSpans": [{"spans": [{**chat(), "traceId": "", "spanId": ""}]}],
                }
            ]
        },
        ExportTraceServiceRequest(),
    )
    pb_span = request.resource_spans[0].scope_spans[0].spans[0]
    pb_span.trace_id, pb_span.span_id = bytes.fromhex(TRACE), bytes.fromhex("00f067aa0ba902b7")
    http = request.resource_spans[0].scope_spans[0].spans.add()
    http.trace_id, http.span_id, http.name = bytes.fromhex(TRACE), b"\x01" * 8, "GET /"

    response = post(
        gzip.compress(request.SerializeToString()),
        content_type="application/x-protobuf",
        headers={"Content-Encoding": "gzip"},
    )

    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 0
    assert "1 spans without gen_ai attributes ignored" in answer.partial_success.error_message
    assert Interaction.objects.get().external_id == f"otel:{TRACE}:00f067aa0ba902b7"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status", "says"),
    [
        (b"\x0a\xff\xff", "application/x-protobuf", {}, 400, "not an OTLP protobuf"),
        (b"{not json", "application/json", {}, 400, "not JSON"),
        (b'{"resourceSpans": {}}', "application/json", {}, 400, "resourceSpans must be an array"),
        (b"<xml/>", "text/xml", {}, 415, "send application/x-protobuf or application/json"),
        (b"\x1f\x8b\x08\x00junk", "application/json", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (b"{}", "application/json", {"Content-Encoding": "br"}, 415, "use gzip"),
    ],
)
def test_malformed_bodies_get_a_clear_otlp_error_and_write_nothing(
    post, body, content_type, headers, status, says
):
    response = post(body, content_type=content_type, headers=headers)
    assert response.status_code == status
    if content_type == "application/x-protobuf":
        assert says.encode() in response.content  # a google.rpc.Status
    else:
        assert says in response.json()["message"]
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_bad_ids_in_json_say_where(post):
    body = export({**chat(), "spanId": "xyz"})
    message = post(body).json()["message"]
    assert message.startswith("resourceSpans[0].scopeSpans[0].spans[0].spanId must be 16 hex")


@pytest.mark.django_db
def test_a_gzip_bomb_is_refused_before_it_is_inflated(post, settings):
    settings.INGEST_MAX_BODY_BYTES = 1_000_000
    bomb = gzip.compress(b" " * 5_000_000)  # 5 MB of spaces in ~5 kB
    response = post(bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "over 1,000,000 bytes once decompressed" in response.json()["message"]


@pytest.mark.django_db
def test_roles_and_agent_scopes_apply(client, post):
    from accounts.services import token_create

    reviewer = UserFactory(username="rev", roles=["reviewer"])
    _, secret = token_create(user=reviewer, name="x")
    denied = client.post(
        URL, b"{}", content_type="application/json", headers={"Authorization": f"Bearer {secret}"}
    )
    assert denied.status_code == 403
    assert client.post(URL, b"{}", content_type="application/json").status_code == 401

    pipeline = UserFactory(username="scoped", roles=["agent"])
    _, scoped = token_create(user=pipeline, name="y", agent_slugs=["legal-bot"])
    answer = client.post(
        URL,
        json.dumps(export(chat())),
        content_type="application/json",
        headers={"Authorization": f"Bearer {scoped}"},
    ).json()
    assert answer["partialSuccess"]["rejectedSpans"] == 1
    assert not Agent.objects.filter(slug="support-bot").exists()


@pytest.mark.django_db
def test_tool_calls_without_ids_and_dotted_tool_names_still_arrive(post):
    question = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "name": "weather.now",
                                         "arguments": {"city": "Oslo"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "response": "-3 °C"}]},
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
    ]  # fmt: skip
    body = export(
        span(
            "8888888888888888",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": json.dumps(question),
                "gen_ai.output.messages": json.dumps(ANSWER),
                "coachdesk.confidence": 0.5,
            },
        )
    )

    assert post(body).json() == {}

    assert Interaction.objects.get().steps == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "name": "weather_now", "arguments": '{"city":"Oslo"}'}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 °C"},
    ]


@pytest.mark.django_db
def test_deeply_nested_attribute_values_are_cut_not_recursed(post):
    nested: dict = {"stringValue": "bottom"}
    for _ in range(200):  # 800 levels of JSON: orjson takes it (1,024 at most)
        nested = {"kvlistValue": {"values": [{"key": "k", "value": nested}]}}
    body = export(chat())
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
        {"key": "app.blob", "value": nested}
    )
    response = post(body)
    assert response.status_code == 200 and response.json() == {}
    assert Interaction.objects.count() == 1
