"""The real OpenTelemetry Python SDK, configured as the README says, exports GenAI spans with
its OTLP/HTTP exporters (protobuf, gzip; and JSON) to gunicorn on the test database: a
multi-turn conversation with tool calls arrives, is routed, and a replayed export is a
duplicate."""

import json

import pytest
from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as ProtobufExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult

from agents.models import Interaction
from retraining import services as export_services
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.factories import UserFactory
from tests.support import Gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("transactional_db")]


@pytest.fixture
def server():
    gunicorn = Gunicorn().start()
    yield gunicorn
    gunicorn.stop()


@pytest.fixture
def token():
    from accounts.services import token_create

    _, secret = token_create(user=UserFactory(username="agent-pipe", roles=["agent"]), name="otel")
    return secret


def conversation(tracer, turn: int) -> None:
    """One turn of a support conversation, as a GenAI instrumentation records it: the agent
    span, a model call that asks for a tool, the tool, and the model call that answers."""
    history = [
        {"role": "user", "parts": [{"type": "text", "content": "Hi!"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello, how can I help?"}]},
    ][: 2 * turn]
    question = {"role": "user", "parts": [{"type": "text", "content": f"Where is order {turn}?"}]}
    call = {
        "role": "assistant",
        "parts": [
            {"type": "tool_call", "id": f"c{turn}", "name": "order", "arguments": {"n": turn}}
        ],
    }
    result = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": f"c{turn}", "response": "in transit"}],
    }
    answer = {"role": "assistant", "parts": [{"type": "text", "content": f"Order {turn} ships."}]}
    common = {
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.request.model": "gpt-4o-mini",
        "coachdesk.domain": "support",
    }
    with tracer.start_as_current_span("POST /chat"):  # the web framework's span: not GenAI
        with tracer.start_as_current_span("chat gpt-4o-mini") as step:
            step.set_attributes({**common, "gen_ai.operation.name": "chat"})
            step.set_attribute("gen_ai.input.messages", json.dumps([*history, question]))
            step.set_attribute("gen_ai.output.messages", json.dumps([call]))
        with tracer.start_as_current_span("execute_tool order") as tool:
            tool.set_attributes(
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order"}
            )
        with tracer.start_as_current_span("chat gpt-4o-mini") as final:
            final.set_attributes({**common, "gen_ai.operation.name": "chat"})
            final.set_attribute(
                "gen_ai.input.messages", json.dumps([*history, question, call, result])
            )
            final.set_attribute("gen_ai.output.messages", json.dumps([answer]))
            final.set_attribute("coachdesk.confidence", 0.4)


def provider_with(exporter) -> TracerProvider:
    resource = Resource.create({"service.name": "support-bot", "service.version": "2026.12.1"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def test_the_sdk_exports_conversations_with_tool_calls_in_protobuf_and_gzip(server, token):
    exporter = ProtobufExporter(
        endpoint=f"{server.url}/api/v1/otel/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip,
    )
    provider = provider_with(exporter)
    tracer = provider.get_tracer("agent")
    conversation(tracer, 1)
    conversation(tracer, 2)
    assert provider.force_flush(30_000)
    provider.shutdown()

    rows = list(Interaction.objects.order_by("input"))
    assert [r.input for r in rows] == ["Where is order 1?", "Where is order 2?"]
    assert [r.output for r in rows] == ["Order 1 ships.", "Order 2 ships."]
    assert rows[1].context == [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello, how can I help?"},
    ]
    assert rows[1].steps[0]["tool_calls"] == [{"id": "c2", "name": "order", "arguments": '{"n":2}'}]
    assert rows[1].steps[1] == {"role": "tool", "tool_call_id": "c2", "content": "in transit"}
    assert {r.conversation_id for r in rows} == {"conv-1"}
    assert ReviewItem.objects.filter(reason="low_confidence").count() == 2
    assert "POST /api/v1/otel/v1/traces" in server.text()

    # Reviewed and exported, the tool calls are in the OpenAI chat format a fine-tune takes.
    reviewer = UserFactory(username="rev", roles=["reviewer"], domains=["support"])
    for _ in rows:
        item = review_services.item_claim(reviewer=reviewer)
        decision = review_services.decision_validate(item=item, verdict="approve")
        review_services.review_submit(item=item, reviewer=reviewer, decision=decision)
    batch = export_services.batch_request(
        agent=rows[0].agent, format="openai", actor=reviewer, enqueue=False
    )
    export_services.batch_build(batch_id=batch.pk)
    batch.refresh_from_db()
    _, open_file = export_services.batch_file_open(batch=batch)
    with open_file() as stored:
        lines = [json.loads(line) for line in stored.read().decode().splitlines()]
    second = next(line for line in lines if "order 2" in json.dumps(line))
    assert [m["role"] for m in second["messages"]][-5:] == [
        "assistant", "user", "assistant", "tool", "assistant",
    ]  # fmt: skip
    call = second["messages"][-3]["tool_calls"][0]
    assert call == {
        "id": "c2",
        "type": "function",
        "function": {"name": "order", "arguments": '{"n":2}'},
    }
    assert second["messages"][-2] == {"role": "tool", "tool_call_id": "c2", "content": "in transit"}


def test_the_json_exporter_and_a_replay(server, token):
    exporter = JsonExporter(
        endpoint=f"{server.url}/api/v1/otel/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-bot", "service.version": "2"})
    )
    spans = []

    class Keep(SimpleSpanProcessor):
        def on_end(self, span):
            spans.append(span)
            super().on_end(span)

    provider.add_span_processor(Keep(exporter))
    conversation(provider.get_tracer("agent"), 1)
    assert Interaction.objects.count() == 1

    # The exporter retries what it thinks failed: the same spans again change nothing.
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert Interaction.objects.count() == 1 and ReviewItem.objects.count() == 1
