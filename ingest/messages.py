"""The messages of an interaction: `context` (the turns before its input) and `steps` (the
tool calls and tool results of the turn itself, between its input and its output).

A message is `{"role", "content"}`. An assistant message may carry tool calls,
`"tool_calls": [{"id", "name", "arguments"}]` (its content may then be "" or null); a tool
message answers one of them: `"tool_call_id"` names the call, `"name"` (optional) the tool,
`content` holds the result. `steps` holds only assistant and tool messages, and each of its
tool messages must answer a call made earlier in `steps`; a tool message in `context`
without a `tool_call_id` is a plain turn, as it always was (one with an id must answer a
call made earlier in `context`).

Stored normalised, so readers (the exports, the review screen) meet one shape: content is
always a string ("" for a tool-call-only assistant message; a tool result sent as an object
or array becomes compact JSON text), a tool call is exactly `{"id", "name", "arguments"}`
with `arguments` as JSON text (an object is stored compact, a string exactly as the model
produced it: it is not parsed, so a malformed call stays visible to reviewers), and keys
sent as null are left out. Other keys of a message are kept as sent.

Validation stops at the first problem of a list and names it by path, e.g.
`steps[2].tool_calls[0].name: is required`. The JSON schemas below (the API's
documentation) never promise less than these checks enforce: a body the schema calls
invalid is always answered with an item error (tests/test_api_schemathesis.py).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

ROLES = frozenset({"system", "user", "assistant", "tool"})
STEP_ROLES = frozenset({"assistant", "tool"})
# A plain turn ({"role", "content"} alone) is complete in these roles; a tool message in
# `steps` must also name the call it answers.
_PLAIN_STEP_ROLES = frozenset({"assistant"})
MAX_CONTEXT_TURNS = 200
# An agent loop of 100 tool rounds (a call and its result each).
MAX_STEPS = 200
MAX_TOOL_CALLS = 64  # per assistant message
MAX_TOOL_CALL_ID = 255
# OpenAI's (and Anthropic's) rule for function names, so every stored call exports as a
# valid fine-tuning line.
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)

FieldErrors = list[tuple[str, str]]


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field, self.message = field, message


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def messages_json(value: Any, name: str, errors: FieldErrors, *, limit: int) -> str:
    """`value` (the record's `context` or `steps`, as `name` says) validated, normalised (see
    the module docstring) and encoded as JSON text, the way the column is written; "[]" with
    one error appended to `errors` when it is invalid. `limit` bounds every text in it (a
    content, a call's arguments)."""
    if value is None or (isinstance(value, list) and not value):
        return "[]"
    steps = name == "steps"
    if not isinstance(value, list):
        shown = type_name(value)
        errors.append((name, f"must be an array of {{role, content}} objects, got {shown}"))
        return "[]"
    most, noun = (MAX_STEPS, "messages") if steps else (MAX_CONTEXT_TURNS, "turns")
    if len(value) > most:
        errors.append((name, f"has {len(value)} {noun}; the limit is {most}"))
        return "[]"
    roles = STEP_ROLES if steps else ROLES
    plain = _PLAIN_STEP_ROLES if steps else ROLES
    call_ids: set[str] = set()
    try:
        clean = [
            # Most messages are a plain {"role", "content"} turn with a valid text, which
            # `_message` would return as it is: accepted here without the full walk.
            turn
            if type(turn) is dict
            and len(turn) == 2
            and type(role := turn.get("role")) is str
            and role in plain
            and type(content := turn.get("content")) is str
            and len(content) <= limit
            and "\x00" not in content
            else _message(turn, f"{name}[{i}]", name, roles, call_ids, limit=limit, steps=steps)
            for i, turn in enumerate(value)
        ]
    except _Invalid as exc:
        errors.append((exc.field, exc.message))
        return "[]"
    try:
        encoded = orjson.dumps(clean)
    except orjson.JSONEncodeError:  # another key of a message nested too deeply, a huge integer
        errors.append((name, "must be plain JSON (finite numbers, UTF-8 strings)"))
        return "[]"
    if b"\\u0000" in encoded:  # in another key of a message (jsonb refuses it)
        errors.append((name, "contains a NUL character (\\u0000), which cannot be stored"))
        return "[]"
    return encoded.decode()


def _message(
    turn: Any,
    where: str,
    name: str,
    roles: frozenset[str],
    call_ids: set[str],
    *,
    limit: int,
    steps: bool,
) -> dict[str, Any]:
    if not isinstance(turn, dict):
        raise _Invalid(where, f"must be an object with role and content, got {type_name(turn)}")
    role = turn.get("role")
    if not isinstance(role, str) or role not in roles:  # a dict is unhashable
        shown = f"must be one of {', '.join(sorted(roles))}, got {role!r}"
        raise _Invalid(f"{where}.role", shown[:200])
    calls = _tool_calls(turn.get("tool_calls"), where, role, call_ids, limit=limit)
    content = turn.get("content")
    if isinstance(content, str):
        _check_text(content, f"{where}.content", limit)
    elif role == "assistant" and calls and content is None:
        content = ""
    elif role == "tool" and isinstance(content, dict | list):
        content = _json_text(content, f"{where}.content", limit)
    elif role == "tool":
        raise _Invalid(
            f"{where}.content", f"must be a string, an object or an array, got {type_name(content)}"
        )
    elif role == "assistant" and calls:
        raise _Invalid(f"{where}.content", f"must be a string or null, got {type_name(content)}")
    else:
        raise _Invalid(f"{where}.content", f"must be a string, got {type_name(content)}")
    answers = _answered_call(turn, where, name, role, call_ids, required=steps)
    tool = turn.get("name")
    if tool is not None:
        if not isinstance(tool, str):
            raise _Invalid(f"{where}.name", f"must be a string, got {type_name(tool)}")
        if role == "tool":
            _check_tool_name(tool, f"{where}.name")
    if (
        content is turn.get("content")
        and "tool_calls" not in turn
        and "tool_call_id" not in turn
        and "name" not in turn
    ):
        return turn
    clean = {key: v for key, v in turn.items() if v is not None}
    clean["content"] = content
    if calls:
        clean["tool_calls"] = calls
    else:
        clean.pop("tool_calls", None)
    if answers is not None:
        clean["tool_call_id"] = answers
    return clean


def _tool_calls(
    value: Any, where: str, role: str, call_ids: set[str], *, limit: int
) -> list[dict[str, str]]:
    """The message's tool calls, each `{"id", "name", "arguments"}`; their ids join
    `call_ids` (the calls tool messages later in the list may answer). An empty array is
    no calls."""
    if value is None or value == []:
        return []
    field = f"{where}.tool_calls"
    if role != "assistant":
        raise _Invalid(field, f"only assistant messages carry tool calls, not {role} messages")
    if not isinstance(value, list):
        raise _Invalid(
            field, f"must be an array of {{id, name, arguments}} objects, got {type_name(value)}"
        )
    if len(value) > MAX_TOOL_CALLS:
        raise _Invalid(field, f"has {len(value)} tool calls; the limit is {MAX_TOOL_CALLS}")
    calls: list[dict[str, str]] = []
    first: dict[str, int] = {}
    for j, call in enumerate(value):
        at = f"{field}[{j}]"
        if not isinstance(call, dict):
            raise _Invalid(
                at, f"must be an object with id, name and arguments, got {type_name(call)}"
            )
        call_id = _call_id(call, "id", f"{at}.id")
        if call_id in first:
            raise _Invalid(
                f"{at}.id", f"repeats the id of tool_calls[{first[call_id]}]: {call_id!r}"
            )
        first[call_id] = j
        tool = call.get("name")
        if tool is None:
            raise _Invalid(
                f"{at}.name", "is required" if "name" not in call else "must be a string, got null"
            )
        if not isinstance(tool, str):
            raise _Invalid(f"{at}.name", f"must be a string, got {type_name(tool)}")
        _check_tool_name(tool, f"{at}.name")
        arguments = call.get("arguments")
        if arguments is None:
            arguments = "{}"
        elif isinstance(arguments, dict):
            arguments = _json_text(arguments, f"{at}.arguments", limit)
        elif isinstance(arguments, str):
            _check_text(arguments, f"{at}.arguments", limit)
        else:
            raise _Invalid(
                f"{at}.arguments",
                f"must be JSON text (a string) or an object, got {type_name(arguments)}",
            )
        calls.append({"id": call_id, "name": tool, "arguments": arguments})
    call_ids.update(first)
    return calls


def _answered_call(
    turn: dict, where: str, name: str, role: str, call_ids: set[str], *, required: bool
) -> str | None:
    """The id of the call a tool message answers (None for a context tool turn without
    one); it must be the id of a call made earlier in the same list."""
    field = f"{where}.tool_call_id"
    value = turn.get("tool_call_id")
    if role != "tool":
        if value is not None:
            raise _Invalid(field, f"only tool messages answer a tool call, not {role} messages")
        return None
    if value is None and not required:
        return None
    call_id = _call_id(turn, "tool_call_id", field)
    if call_id not in call_ids:
        raise _Invalid(
            field, f"answers no tool call made earlier in {name} (no call has the id {call_id!r})"
        )
    return call_id


def _call_id(obj: dict, key: str, field: str) -> str:
    value = obj.get(key)
    if value is None:
        raise _Invalid(field, "is required" if key not in obj else "must be a string, got null")
    if not isinstance(value, str):
        raise _Invalid(field, f"must be a string, got {type_name(value)}")
    if not value:
        raise _Invalid(field, "must not be empty")
    if len(value) > MAX_TOOL_CALL_ID:
        raise _Invalid(field, f"is {len(value):,} characters long; the limit is {MAX_TOOL_CALL_ID}")
    if "\x00" in value:
        raise _Invalid(field, "contains a NUL character (\\u0000), which cannot be stored")
    return value


def _check_tool_name(value: str, field: str) -> None:
    if not _TOOL_NAME.fullmatch(value):
        raise _Invalid(field, f"must be 1 to 64 letters, digits, '_' or '-', got {value[:80]!r}")


def _check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise _Invalid(field, f"is {len(value):,} characters long; the limit is {limit:,}")
    if "\x00" in value:
        raise _Invalid(field, "contains a NUL character (\\u0000), which cannot be stored")


def _json_text(value: dict | list, field: str, limit: int) -> str:
    """`value` as compact JSON text, within `limit` characters."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise _Invalid(field, "must be plain JSON (finite numbers, UTF-8 strings)") from None
    if len(text) > limit:
        raise _Invalid(field, f"is {len(text):,} characters long as JSON; the limit is {limit:,}")
    if "\\u0000" in text:
        raise _Invalid(field, "contains a NUL character (\\u0000), which cannot be stored")
    return text


# --- The API's JSON schema ------------------------------------------------------------------


def _message_schema(roles: frozenset[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": sorted(roles)},
            "content": {
                "type": ["string", "object", "array", "null"],
                "description": "A string. Null or absent only on an assistant message with "
                "tool calls; a tool result may be an object or array (stored as JSON text).",
            },
            "tool_calls": {
                "type": ["array", "null"],
                "maxItems": MAX_TOOL_CALLS,
                "description": "Assistant messages only: the tools the model called.",
                "items": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {
                        "id": {"type": "string", "minLength": 1, "maxLength": MAX_TOOL_CALL_ID},
                        "name": {"type": "string", "pattern": TOOL_NAME_PATTERN},
                        "arguments": {
                            "type": ["string", "object", "null"],
                            "description": "JSON text as the model produced it, or an object "
                            '(stored as compact JSON text); absent: "{}".',
                        },
                    },
                },
            },
            "tool_call_id": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": MAX_TOOL_CALL_ID,
                "description": "Tool messages only: the id of the call this result answers, "
                "made earlier in the same list (required in `steps`).",
            },
            "name": {
                "type": ["string", "null"],
                "description": "On a tool message, the tool's name (letters, digits, _ or -).",
            },
        },
    }


CONTEXT_SCHEMA = {
    "type": ["array", "null"],
    "maxItems": MAX_CONTEXT_TURNS,
    "description": "The turns before `input`, oldest first.",
    "items": _message_schema(ROLES),
}
STEPS_SCHEMA = {
    "type": ["array", "null"],
    "maxItems": MAX_STEPS,
    "description": "The turn's tool calls and their results, in order, between `input` and "
    "`output`: assistant messages with `tool_calls` and the tool messages answering them.",
    "items": _message_schema(STEP_ROLES),
}
