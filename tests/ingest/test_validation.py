"""Every validation rule of ingest, one behaviour per test. No database needed."""

import pytest

from ingest.validation import validate_feedback, validate_interaction

GOOD = {
    "external_id": "t-1",
    "agent": "support-bot",
    "input": "Where is my order?",
    "output": "It ships tomorrow.",
    "confidence": 0.42,
}


def errors_of(**changes):
    record = {**GOOD, **changes}
    for key in [k for k, v in changes.items() if v is ...]:
        del record[key]
    clean, errors = validate_interaction(record)
    assert clean is None, "expected the record to be rejected"
    return errors


def test_it_accepts_a_minimal_record():
    clean, errors = validate_interaction(GOOD)
    assert errors == []
    assert clean["external_id"] == "t-1"
    assert clean["context"] == "[]" and clean["metadata"] == "{}"
    assert clean["created_at"] is None


def test_it_accepts_the_full_design_example():
    record = {
        **GOOD,
        "agent_version": "2026.11.1",
        "conversation_id": "c-77",
        "context": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "intent": "returns",
        "domain": "support",
        "resolved": True,
        "escalated": False,
        "sentiment": 0.3,
        "turns": 4,
        "metadata": {"channel": "web"},
        "created_at": "2026-11-20T10:15:00Z",
    }
    clean, errors = validate_interaction(record)
    assert errors == []
    assert clean["created_at"].isoformat() == "2026-11-20T10:15:00+00:00"
    assert clean["turns"] == 4 and clean["resolved"] is True


@pytest.mark.parametrize("name", ["external_id", "agent", "input", "output", "confidence"])
def test_it_names_each_missing_required_field(name):
    assert errors_of(**{name: ...}) == [(name, "is required")]


def test_it_rejects_null_for_a_required_field():
    assert errors_of(output=None) == [("output", "must be a string, got null")]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("external_id", 17, "must be a string, got number"),
        ("input", ["a"], "must be a string, got array"),
        ("confidence", "0.4", "must be a number, got string"),
        ("confidence", True, "must be a number, got boolean"),
        ("resolved", "yes", "must be true, false or null, got string"),
        ("turns", 2.5, "must be a whole number, got number"),
        ("metadata", [1], "must be an object, got array"),
        ("context", "hi", "must be an array of {role, content} objects, got string"),
    ],
)
def test_it_names_wrong_types(name, value, message):
    assert errors_of(**{name: value}) == [(name, message)]


@pytest.mark.parametrize("value", [-0.01, 1.5])
def test_it_rejects_confidence_outside_the_unit_interval(value):
    assert errors_of(confidence=value) == [
        ("confidence", f"must be between 0 and 1, got {value:g}")
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")],
)
def test_it_rejects_non_finite_confidence(value, shown):
    assert errors_of(confidence=value) == [("confidence", f"must be a finite number, got {shown}")]


@pytest.mark.parametrize("value", [-1.2, 1.01])
def test_it_rejects_sentiment_outside_minus_one_to_one(value):
    assert errors_of(sentiment=value) == [("sentiment", f"must be between -1 and 1, got {value:g}")]


def test_it_accepts_sentiment_bounds():
    for value in (-1, 1, 0):
        assert validate_interaction({**GOOD, "sentiment": value})[1] == []


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "20/11/2026"])
def test_it_rejects_unparseable_dates(value):
    [(name, message)] = errors_of(created_at=value)
    assert name == "created_at"
    assert message.startswith("is not an ISO 8601 date-time")


def test_it_takes_a_date_without_offset_as_utc():
    clean, _ = validate_interaction({**GOOD, "created_at": "2026-11-20T10:15:00"})
    assert clean["created_at"].utcoffset().total_seconds() == 0


def test_it_states_the_limit_for_oversize_text(settings):
    settings.INGEST_MAX_TEXT_CHARS = 100
    assert errors_of(output="x" * 101) == [("output", "is 101 characters long; the limit is 100")]


def test_it_states_the_limit_for_oversize_context_content(settings):
    settings.INGEST_MAX_TEXT_CHARS = 20
    errors = errors_of(context=[{"role": "user", "content": "x" * 21}])
    assert errors == [("context[0].content", "is 21 characters long; the limit is 20")]


def test_it_rejects_a_context_turn_with_an_unknown_role():
    [(name, message)] = errors_of(context=[{"role": "bot", "content": "hi"}])
    assert name == "context[0].role"
    assert "got 'bot'" in message


def test_it_rejects_nul_characters_that_postgres_cannot_store():
    assert errors_of(input="a\x00b") == [
        ("input", "contains a NUL character (\\u0000), which cannot be stored")
    ]


def test_it_rejects_a_bad_agent_slug():
    [(name, message)] = errors_of(agent="Support Bot!")
    assert name == "agent" and "must be a slug" in message


def test_it_rejects_an_empty_external_id():
    assert errors_of(external_id="  ") == [("external_id", "must not be empty")]


def test_it_reports_every_problem_of_a_record():
    errors = errors_of(confidence=2, sentiment=5, input=...)
    assert [name for name, _ in errors] == ["input", "confidence", "sentiment"]


def test_it_rejects_a_record_that_is_not_an_object():
    assert validate_interaction([1, 2]) == (None, [("record", "must be a JSON object, got array")])


def test_it_validates_feedback_kinds():
    clean, errors = validate_feedback({"agent": "a", "external_id": "t-1", "kind": "liked"})
    assert clean is None
    assert errors[0][0] == "kind" and "got 'liked'" in errors[0][1]


def test_it_gives_identical_feedback_the_same_dedupe_key():
    event = {"agent": "a", "external_id": "t-1", "kind": "clicked", "item_ref": "sku-1"}
    first, _ = validate_feedback(event)
    second, _ = validate_feedback(dict(event))
    other, _ = validate_feedback({**event, "item_ref": "sku-2"})
    assert first["dedupe_key"] == second["dedupe_key"] != other["dedupe_key"]


def test_it_treats_the_same_instant_in_two_notations_as_the_same_feedback():
    event = {"agent": "a", "external_id": "t-1", "kind": "clicked"}
    zulu, _ = validate_feedback({**event, "created_at": "2026-11-21T08:00:00Z"})
    offset, _ = validate_feedback({**event, "created_at": "2026-11-21T09:00:00+01:00"})
    assert zulu["dedupe_key"] == offset["dedupe_key"]
