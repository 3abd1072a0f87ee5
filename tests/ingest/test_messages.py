"""The messages of an interaction (`context` and `steps`): tool calls and tool results, how
they are stored, and every rule with the exact path and message it reports. No database."""

import json

import pytest

from ingest.messages import MAX_STEPS, MAX_TOOL_CALLS
from ingest.validation import validate_interaction

GOOD = {
    "external_id": "t-1",
    "agent": "support-bot",
    "input": "Where is order A-1?",
    "output": "It was delivered yesterday.",
    "confidence": 0.42,
}


def call(call_id="call_1", name="lookup_order", arguments='{"order":"A-1"}'):
    return {"id": call_id, "name": name, "arguments": arguments}


def asks(*calls, content=""):
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def result(call_id="call_1", content='{"status":"delivered"}', **extra):
    return {"role": "tool", "tool_call_id": call_id, "content": content, **extra}


def clean(**fields):
    record, errors = validate_interaction({**GOOD, **fields})
    assert errors == []
    return {name: json.loads(record[name]) for name in ("context", "steps")}


def error_of(**fields):
    record, errors = validate_interaction({**GOOD, **fields})
    assert record is None, "expected the record to be rejected"
    assert len(errors) == 1, errors
    return errors[0]


def test_it_stores_no_steps_as_an_empty_list():
    assert clean()["steps"] == []
    assert clean(steps=None)["steps"] == []


def test_it_stores_tool_calls_and_results_in_order():
    steps = [
        asks(call("call_1"), call("call_2", "track_parcel", '{"id": 7}')),
        result("call_1", name="lookup_order"),
        result("call_2", content="in transit"),
        {"role": "assistant", "content": "Let me check once more."},
        asks(call("call_3", arguments="{}"), content="One moment."),
        result("call_3", content="ok"),
    ]

    assert clean(steps=steps)["steps"] == steps


def test_it_stores_arguments_and_results_given_as_json_values_as_compact_json_text():
    steps = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "name": "lookup_order", "arguments": {"order": "A-1"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": {"status": "sent", "days": [1, 2]}},
        {"role": "tool", "tool_call_id": "c1", "content": ["a", "b"]},
    ]

    assert clean(steps=steps)["steps"] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "lookup_order", "arguments": '{"order":"A-1"}'}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"status":"sent","days":[1,2]}'},
        {"role": "tool", "tool_call_id": "c1", "content": '["a","b"]'},
    ]


def test_it_keeps_a_model_s_malformed_arguments_as_sent_for_review():
    steps = [asks(call(arguments='{"order": "A-1"')), result()]

    assert clean(steps=steps)["steps"][0]["tool_calls"][0]["arguments"] == '{"order": "A-1"'


def test_it_stores_a_call_without_arguments_as_an_empty_object():
    steps = [asks({"id": "c1", "name": "now"}), result("c1")]

    assert clean(steps=steps)["steps"][0]["tool_calls"] == [
        {"id": "c1", "name": "now", "arguments": "{}"}
    ]


def test_it_accepts_tool_rounds_in_the_context_and_answers_to_them_there():
    context = [
        {"role": "user", "content": "Hi, order A-1?"},
        asks(call("c1")),
        result("c1"),
        {"role": "assistant", "content": "Delivered."},
    ]

    assert clean(context=context)["context"] == context


def test_it_keeps_a_context_tool_turn_without_a_call_id_as_a_plain_turn():
    context = [{"role": "tool", "content": '{"order": "A-1"}'}]

    assert clean(context=context)["context"] == context


def test_it_keeps_other_keys_of_a_message_and_drops_those_sent_as_null():
    context = [
        {"role": "user", "content": "Hi", "name": "alice", "lang": "en"},
        {"role": "assistant", "content": "Hello", "tool_calls": None, "tool_call_id": None},
    ]

    assert clean(context=context)["context"] == [
        {"role": "user", "content": "Hi", "name": "alice", "lang": "en"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_it_accepts_as_many_parallel_calls_as_the_limit():
    calls = [call(f"c{n}") for n in range(MAX_TOOL_CALLS)]

    assert len(clean(steps=[asks(*calls)])["steps"][0]["tool_calls"]) == MAX_TOOL_CALLS


@pytest.mark.parametrize(
    ("steps", "field", "message"),
    [
        ("calls", "steps", "must be an array of {role, content} objects, got string"),
        ([None], "steps[0]", "must be an object with role and content, got null"),
        (
            [{"role": "user", "content": "Hi"}],
            "steps[0].role",
            "must be one of assistant, tool, got 'user'",
        ),
        (
            [asks(call()), result(), asks({"id": "c2", "arguments": "{}"})],
            "steps[2].tool_calls[0].name",
            "is required",
        ),
        (
            [asks(call(), {"name": "lookup_order"})],
            "steps[0].tool_calls[1].id",
            "is required",
        ),
        ([asks(call(call_id=""))], "steps[0].tool_calls[0].id", "must not be empty"),
        ([asks(call(call_id=7))], "steps[0].tool_calls[0].id", "must be a string, got number"),
        (
            [asks(call(call_id="x" * 256))],
            "steps[0].tool_calls[0].id",
            "is 256 characters long; the limit is 255",
        ),
        (
            [asks(call("c1"), call("c1"))],
            "steps[0].tool_calls[1].id",
            "repeats the id of tool_calls[0]: 'c1'",
        ),
        (
            [asks(call(name="get.weather"))],
            "steps[0].tool_calls[0].name",
            "must be 1 to 64 letters, digits, '_' or '-', got 'get.weather'",
        ),
        (
            [asks(call(name="x" * 65))],
            "steps[0].tool_calls[0].name",
            f"must be 1 to 64 letters, digits, '_' or '-', got {'x' * 65!r}",
        ),
        (
            [asks(call(arguments=["A-1"]))],
            "steps[0].tool_calls[0].arguments",
            "must be JSON text (a string) or an object, got array",
        ),
        (
            [asks("lookup_order")],
            "steps[0].tool_calls[0]",
            "must be an object with id, name and arguments, got string",
        ),
        (
            [{"role": "assistant", "content": "", "tool_calls": {"id": "c1"}}],
            "steps[0].tool_calls",
            "must be an array of {id, name, arguments} objects, got object",
        ),
        (
            [asks(*[call(f"c{n}") for n in range(MAX_TOOL_CALLS + 1)])],
            "steps[0].tool_calls",
            f"has {MAX_TOOL_CALLS + 1} tool calls; the limit is {MAX_TOOL_CALLS}",
        ),
        (
            [asks(call(), content=3)],
            "steps[0].content",
            "must be a string or null, got number",
        ),
        (
            [{"role": "assistant", "content": None}],
            "steps[0].content",
            "must be a string, got null",
        ),
        (
            [asks(call()), {"role": "tool", "content": "ok"}],
            "steps[1].tool_call_id",
            "is required",
        ),
        (
            [asks(call("call_1")), result("call_9")],
            "steps[1].tool_call_id",
            "answers no tool call made earlier in steps (no call has the id 'call_9')",
        ),
        (
            [result("call_1"), asks(call("call_1"))],
            "steps[0].tool_call_id",
            "answers no tool call made earlier in steps (no call has the id 'call_1')",
        ),
        ([asks(call()), result(call_id="")], "steps[1].tool_call_id", "must not be empty"),
        (
            [asks(call()), result(content=0.5)],
            "steps[1].content",
            "must be a string, an object or an array, got number",
        ),
        (
            [asks(call()), result(name="lookup order")],
            "steps[1].name",
            "must be 1 to 64 letters, digits, '_' or '-', got 'lookup order'",
        ),
        (
            [{"role": "assistant", "content": "Hi", "tool_call_id": "call_1"}],
            "steps[0].tool_call_id",
            "only tool messages answer a tool call, not assistant messages",
        ),
        (
            [asks(call(call_id="c\x001"))],
            "steps[0].tool_calls[0].id",
            "contains a NUL character (\\u0000), which cannot be stored",
        ),
    ],
)
def test_it_names_the_path_of_what_is_wrong_in_steps(steps, field, message):
    assert error_of(steps=steps) == (field, message)


def test_it_limits_the_number_of_steps():
    steps = [{"role": "assistant", "content": "thinking"}] * (MAX_STEPS + 1)

    assert error_of(steps=steps) == ("steps", f"has {MAX_STEPS + 1} messages; the limit is 200")


def test_it_bounds_arguments_and_results_by_the_text_limit(settings):
    settings.INGEST_MAX_TEXT_CHARS = 20
    short = {"input": "Order?", "output": "Sent."}

    assert error_of(**short, steps=[asks(call(arguments="x" * 21))]) == (
        "steps[0].tool_calls[0].arguments",
        "is 21 characters long; the limit is 20",
    )
    assert error_of(**short, steps=[asks(call(arguments={"order": "A-1" * 5}))]) == (
        "steps[0].tool_calls[0].arguments",
        "is 27 characters long as JSON; the limit is 20",
    )
    assert error_of(**short, steps=[asks(call(arguments="{}")), result(content="x" * 21)]) == (
        "steps[1].content",
        "is 21 characters long; the limit is 20",
    )


@pytest.mark.parametrize(
    ("context", "field", "message"),
    [
        (
            [{"role": "user", "content": "Hi", "tool_calls": [call()]}],
            "context[0].tool_calls",
            "only assistant messages carry tool calls, not user messages",
        ),
        (
            [{"role": "user", "content": "Hi", "name": 3}],
            "context[0].name",
            "must be a string, got number",
        ),
        (
            [asks(call("c1")), result("c2")],
            "context[1].tool_call_id",
            "answers no tool call made earlier in context (no call has the id 'c2')",
        ),
        (
            [{"role": "bot", "content": "Hi"}],
            "context[0].role",
            "must be one of assistant, system, tool, user, got 'bot'",
        ),
    ],
)
def test_it_names_the_path_of_what_is_wrong_in_the_context(context, field, message):
    assert error_of(context=context) == (field, message)


def test_it_answers_calls_only_within_the_same_list():
    context = [asks(call("c1")), result("c1")]

    assert error_of(context=context, steps=[result("c1")]) == (
        "steps[0].tool_call_id",
        "answers no tool call made earlier in steps (no call has the id 'c1')",
    )


def test_it_reports_the_context_and_the_steps_each_with_its_first_problem():
    record, errors = validate_interaction(
        {**GOOD, "context": [{"role": "bot", "content": ""}], "steps": [result("c1")]}
    )

    assert record is None
    assert [field for field, _ in errors] == ["context[0].role", "steps[0].tool_call_id"]
