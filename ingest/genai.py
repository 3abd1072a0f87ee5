"""GenAI spans (OpenTelemetry's GenAI semantic conventions) as ingest records: the mapping
behind the OTLP trace endpoint, one span at a time (a turn needs no state across requests):
- A span is GenAI when it has a `gen_ai.*` attribute; other spans are ignored (and counted).
- The answer of a turn is an `invoke_agent` span, or a model call (`chat`,
  `text_completion`, `generate_content`) whose answer is text. A model call that only asks
  for tools is a step of the turn, not an answer (its messages reach the interaction through
  the next call's input), and `execute_tool`, `embeddings` and the like are not answers.
- Messages come from `gen_ai.input.messages` / `gen_ai.output.messages` (JSON, with parts),
  else the older `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` attributes, else the
  per-message span events (`gen_ai.user.message`, `gen_ai.choice`, ...).
- The last user message is the interaction's `input`; messages before it are its `context`,
  the tool calls and results after it its `steps`; the answer's text is its `output`.
- Agent: `gen_ai.agent.name`, else the resource's `service.name` (as a slug). Version:
  `gen_ai.agent.version`, else `service.version`. Conversation: `gen_ai.conversation.id`.
- Confidence: the span attribute `coachdesk.confidence` (a number in [0, 1]). Without it the
  agent's policy decides: the interaction gets the agent's confidence threshold, so it is
  never "low confidence" and is reviewed only when the audit sample, a rule or feedback
  picks it (`metadata.confidence` says "absent").
- `coachdesk.intent` / `coachdesk.domain` set the routing tags, as in the JSON API.
- The external id is `otel:<trace id>:<span id>`: a re-sent export is a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.otlp import Span

CONFIDENCE_ATTR = "coachdesk.confidence"
ANSWERS = frozenset({"invoke_agent", "chat", "text_completion", "generate_content"})
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_TOOL_CALL = re.compile(r"^tool_calls\.(\d+)\.(.+)$")
_NOT_SLUG = re.compile(r"[^a-z0-9_-]+")
_NOT_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]+")
EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


# --- Mapping --------------------------------------------------------------------------------


@dataclass
class Mapped:
    """A span's fate: an ingest record, or why it is not one (`ignored` for non-GenAI spans,
    `skipped` for GenAI spans that are not an answer, `rejected` for answers that cannot
    become an interaction)."""

    record: dict[str, Any] | None = None
    ignored: bool = False
    skipped: str = ""
    rejected: str = ""


def span_record(span: Span, thresholds: dict[str, float], default_threshold: float) -> Mapped:
    attrs = span.attributes
    if not any(key.startswith("gen_ai.") for key in attrs):
        return Mapped(ignored=True)
    operation = str(attrs.get("gen_ai.operation.name") or "chat")
    if operation not in ANSWERS:
        return Mapped(skipped=operation)
    try:
        messages, answer = _messages(span)
    except ValueError as exc:
        return Mapped(rejected=str(exc))
    if answer is None:
        return Mapped(rejected="no output message (gen_ai.output.messages or completions)")
    if not answer.get("content") and answer.get("tool_calls"):
        return Mapped(skipped="tool call step")
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        return Mapped(rejected="no user message in the input")
    _tool_ids_fill(messages)
    agent = _slug(attrs.get("gen_ai.agent.name") or span.resource.get("service.name"))
    if not agent:
        return Mapped(rejected="no agent: set gen_ai.agent.name or the resource's service.name")
    record: dict[str, Any] = {
        "external_id": f"otel:{span.key}",
        "agent": agent,
        "agent_version": str(
            attrs.get("gen_ai.agent.version") or span.resource.get("service.version") or ""
        )[:100],
        "conversation_id": str(attrs.get("gen_ai.conversation.id") or "")[:255],
        "input": messages[last_user]["content"],
        "context": messages[:last_user],
        # Only the model's side of the turn: what it said and asked, and the tools' answers.
        "steps": [m for m in messages[last_user + 1 :] if m["role"] in ("assistant", "tool")],
        "output": answer["content"],
        "metadata": _metadata(span, operation),
    }
    confidence = attrs.get(CONFIDENCE_ATTR)
    if confidence is None:
        record["confidence"] = thresholds.get(agent, default_threshold)
        record["metadata"]["confidence"] = "absent"
    else:
        record["confidence"] = confidence
    for tag in ("intent", "domain"):
        if attrs.get(f"coachdesk.{tag}"):
            record[tag] = str(attrs[f"coachdesk.{tag}"])
    if span.end_ns:
        record["created_at"] = (
            datetime.fromtimestamp(span.end_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
        )
    return Mapped(record=record)


def span_agents(spans: Iterable[Span]) -> set[str]:
    """The agent slugs these spans would map to (to look up their policies at once)."""
    out = set()
    for span in spans:
        slug = _slug(span.attributes.get("gen_ai.agent.name") or span.resource.get("service.name"))
        if slug:
            out.add(slug)
    return out


def _slug(value: Any) -> str:
    return _NOT_SLUG.sub("-", str(value or "").strip().lower()).strip("-_")[:64]


def _metadata(span: Span, operation: str) -> dict[str, Any]:
    attrs = span.attributes
    meta: dict[str, Any] = {
        "source": "otlp",
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "operation": operation,
    }
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if model:
        meta["model"] = str(model)[:200]
    provider = attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")
    if provider:
        meta["provider"] = str(provider)[:100]
    return meta


# --- Messages -------------------------------------------------------------------------------


def _messages(span: Span) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The span's input messages (Coachdesk's message shape) and its answer, from the first
    of the three forms the span carries."""
    attrs = span.attributes
    if "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs:
        system = _parts_messages(
            attrs.get("gen_ai.system_instructions"), "system", "gen_ai.system_instructions"
        )
        inputs = _parts_messages(attrs.get("gen_ai.input.messages"), None, "gen_ai.input.messages")
        outputs = _parts_messages(
            attrs.get("gen_ai.output.messages"), "assistant", "gen_ai.output.messages"
        )
        return system + inputs, _first_answer(outputs)
    if any(_INDEXED.match(key) for key in attrs):
        prompts, completions = _indexed_messages(attrs)
        return prompts, _first_answer(completions)
    return _event_messages(span.events)


def _first_answer(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in messages if m["role"] == "assistant"), None)


def _loads(value: Any, where: str) -> Any:
    if value is None or isinstance(value, list | dict):
        return value
    try:
        return orjson.loads(str(value))
    except orjson.JSONDecodeError:
        raise ValueError(f"{where} is not valid JSON") from None


def _parts_messages(value: Any, role: str | None, where: str) -> list[dict[str, Any]]:
    """Semantic-convention messages `[{role, parts: [{type, ...}]}]` (or, for system
    instructions, a bare list of parts) as Coachdesk messages."""
    data = _loads(value, where)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"{where} must be a JSON array")
    if role == "system":
        data = [{"role": "system", "parts": data}] if data else []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(data):
        if not isinstance(message, dict):
            raise ValueError(f"{where}[{i}] must be an object")
        who = str(message.get("role") or role or "user")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in message.get("parts") or ():
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content") or ""))
            elif kind == "tool_call":
                calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
            elif kind == "tool_call_response":
                out.append(_tool_result(part.get("id"), part.get("response")))
        if who == "tool" and not texts:
            continue  # its results were added above
        if texts or calls:
            out.append(_message(who, "\n".join(texts), calls))
    return out


def _indexed_messages(attrs: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """`gen_ai.prompt.N.role/content/tool_call_id/tool_calls.M.*` and the same for
    completions, the attributes older instrumentations emit."""
    found: dict[str, dict[int, dict[str, Any]]] = {"prompt": {}, "completion": {}}
    for key, value in attrs.items():
        match = _INDEXED.match(key)
        if match:
            side, n, rest = match.group(1), int(match.group(2)), match.group(3)
            found[side].setdefault(n, {})[rest] = value
    sides: list[list[dict]] = []
    for side in ("prompt", "completion"):
        messages = []
        for n in sorted(found[side]):
            fields = found[side][n]
            role = str(fields.get("role") or ("assistant" if side == "completion" else "user"))
            calls: dict[int, dict[str, Any]] = {}
            for key, value in fields.items():
                match = _TOOL_CALL.match(key)
                if match:
                    calls.setdefault(int(match.group(1)), {})[match.group(2)] = value
            if role == "tool":
                messages.append(_tool_result(fields.get("tool_call_id"), fields.get("content")))
                continue
            tool_calls = [
                _tool_call(c.get("id"), c.get("name"), c.get("arguments"))
                for _, c in sorted(calls.items())
            ]
            messages.append(_message(role, str(fields.get("content") or ""), tool_calls))
        sides.append(messages)
    return sides[0], sides[1]


def _event_messages(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[dict], dict | None]:
    """Per-message span events: `gen_ai.{system,user,assistant,tool}.message` and
    `gen_ai.choice` (its `message` attribute, or `content` / `tool_calls`)."""
    inputs: list[dict[str, Any]] = []
    answer: dict[str, Any] | None = None
    for name, attrs in events:
        if name in EVENT_ROLES:
            role = EVENT_ROLES[name]
            if role == "tool":
                inputs.append(_tool_result(attrs.get("id"), attrs.get("content")))
            else:
                calls = _loads(attrs.get("tool_calls"), f"{name}.tool_calls") or []
                inputs.append(_message(role, str(attrs.get("content") or ""), _openai_calls(calls)))
        elif name == "gen_ai.choice" and answer is None:
            message = _loads(attrs.get("message"), "gen_ai.choice.message") or {}
            content = message.get("content", attrs.get("content"))
            calls = message.get("tool_calls") or _loads(attrs.get("tool_calls"), name) or []
            answer = _message("assistant", str(content or ""), _openai_calls(calls))
    return inputs, answer


def _openai_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            function = call.get("function") or {}
            out.append(
                _tool_call(
                    call.get("id"),
                    function.get("name", call.get("name")),
                    function.get("arguments", call.get("arguments")),
                )
            )
    return out


def _message(role: str, content: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": content}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    # Tool names as fine-tuning formats take them ("search.web" -> "search_web").
    tool = _NOT_TOOL_NAME.sub("_", str(name or "")).strip("_")[:64] or "tool"
    return {"id": str(call_id or ""), "name": tool, "arguments": arguments}


def _tool_ids_fill(messages: list[dict[str, Any]]) -> None:
    """Gives calls without an id one (`call_<n>`, in order) and answers a result without an
    id to the oldest call not yet answered: some providers record neither."""
    waiting: list[str] = []
    n = 0
    for message in messages:
        for call in message.get("tool_calls", ()):
            n += 1
            call["id"] = call["id"] or f"call_{n}"
            waiting.append(call["id"])
        if message["role"] == "tool":
            if not message["tool_call_id"] and waiting:
                message["tool_call_id"] = waiting[0]
            if message["tool_call_id"] in waiting:
                waiting.remove(message["tool_call_id"])


def _tool_result(call_id: Any, response: Any) -> dict[str, Any]:
    if not isinstance(response, str):
        response = orjson.dumps(response).decode()
    return {"role": "tool", "tool_call_id": str(call_id or ""), "content": response}
