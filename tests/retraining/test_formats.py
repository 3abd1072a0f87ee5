"""Every export format, loaded with the library its users load it with, row for row against
the decisions the reviewers made (tests/retraining/conftest.py TRICKY: non-ASCII,
right-to-left, every kind of newline, quotes, formula starts, strings read as NaN)."""

import io
import json
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.spreadsheet import FORMULA_TRIGGERS
from retraining import formats
from tests.retraining.conftest import TRICKY

pytestmark = pytest.mark.django_db


def decided_rows():
    """What the decisions in `tricky_pairs` were, worked out from the fixture's inputs (not
    from the code under test): even rows approved as is, odd rows corrected."""
    rows = []
    for n, (text_in, text_out) in enumerate(TRICKY):
        corrected = bool(n % 2)
        rows.append(
            {
                "input": text_in,
                "output": text_out,
                "rejected": f"original {n}" if corrected else "",
                "source": "correct" if corrected else "approve",
                "agent_version": "v2" if corrected else "v1",
                "error_category": "factual-error" if corrected else None,
            }
        )
    return rows


def path_of(batch):
    return batch.file.path


def hf_load(kind, path, tmp_path):
    from datasets import load_dataset  # offline: see conftest

    return load_dataset(kind, data_files=str(path), cache_dir=str(tmp_path / "hf"), split="train")


def missing(value):
    """None for every way a loader spells "no value" (None, NaN, an empty CSV cell)."""
    return (
        None
        if value is None or value == "" or (isinstance(value, float) and value != value)
        else value
    )


def assert_pair_rows(records, *, neutralised=False):
    expected = decided_rows()
    assert len(records) == len(expected)
    for record, want in zip(records, expected, strict=True):
        text_in, text_out = want["input"], want["output"]
        if neutralised:
            text_in, text_out = formats.neutralise(text_in), formats.neutralise(text_out)
        # Byte-identical, not just equal after some normalisation.
        assert record["input"].encode() == text_in.encode()
        assert record["output"].encode() == text_out.encode()
        assert record["source"] == want["source"]
        assert missing(record["agent_version"]) == want["agent_version"]
        assert missing(record["error_category"]) == want["error_category"]
        assert record["split"] in ("train", "validation")


def test_it_loads_jsonl_with_pandas_as_decided(agent, tricky_pairs, build):
    batch = build(agent, "jsonl")

    frame = pd.read_json(path_of(batch), lines=True, dtype=False)

    assert list(frame.columns) == list(formats.PAIR_COLUMNS)
    assert_pair_rows(frame.to_dict("records"))
    assert frame["pair_id"].tolist() == sorted(p.pk for p in tricky_pairs)


def test_it_loads_jsonl_with_hugging_face_datasets(agent, tricky_pairs, build, tmp_path):
    batch = build(agent, "jsonl")

    dataset = hf_load("json", path_of(batch), tmp_path)

    assert dataset.column_names == list(formats.PAIR_COLUMNS)
    assert_pair_rows(list(dataset))


def test_it_loads_csv_with_pandas_and_neutralises_formulas(agent, tricky_pairs, build):
    batch = build(agent, "csv")

    frame = pd.read_csv(path_of(batch), dtype=str, keep_default_na=False, encoding="utf-8")

    assert list(frame.columns) == list(formats.PAIR_COLUMNS)
    assert_pair_rows(frame.to_dict("records"), neutralised=True)
    cells = frame["output"].tolist() + frame["input"].tolist()
    assert '\'=HYPERLINK("http://x","click")' in cells
    assert "'-5 degrees outside?" in cells
    assert "'+1 for the umbrella @team" in cells
    assert "'\ttab first" in cells
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)


def test_it_loads_parquet_with_pandas_typed(agent, tricky_pairs, build):
    batch = build(agent, "parquet")

    frame = pd.read_parquet(path_of(batch), engine="pyarrow")

    assert list(frame.columns) == list(formats.PAIR_COLUMNS)
    assert str(frame["pair_id"].dtype) == "int64"
    schema = pq.read_schema(path_of(batch))
    assert str(schema.field("input").type) == "string"
    assert not schema.field("input").nullable and schema.field("error_category").nullable
    assert_pair_rows(frame.to_dict("records"))


def test_it_loads_parquet_with_hugging_face_datasets(agent, tricky_pairs, build, tmp_path):
    batch = build(agent, "parquet")

    dataset = hf_load("parquet", path_of(batch), tmp_path)

    assert dataset.features["pair_id"].dtype == "int64"
    assert_pair_rows(list(dataset))


def test_it_writes_openai_chat_messages_with_context(agent, decide, build, tmp_path):
    context = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi\nthere"},
        {"role": "assistant", "content": "Hello! 👋"},
    ]
    decide(agent, "مرحبا؟", "أهلاً", context=context)
    decide(agent, "No context", "Plain")

    batch = build(agent, "openai", filters={"system_prompt": "You are Support Bot."})

    frame = pd.read_json(path_of(batch), lines=True, dtype=False)
    assert list(frame.columns) == ["messages"]
    by_input = {m[-2]["content"]: m for m in frame["messages"]}
    assert by_input["مرحبا؟"] == [
        *context,
        {"role": "user", "content": "مرحبا؟"},
        {"role": "assistant", "content": "أهلاً"},
    ]
    # The system prompt opens conversations that have none of their own.
    assert by_input["No context"] == [
        {"role": "system", "content": "You are Support Bot."},
        {"role": "user", "content": "No context"},
        {"role": "assistant", "content": "Plain"},
    ]
    assert len(hf_load("json", path_of(batch), tmp_path)) == 2


def test_it_writes_preference_rows_from_corrections_only(agent, tricky_pairs, build, tmp_path):
    batch = build(agent, "preference")

    frame = pd.read_json(path_of(batch), lines=True, dtype=False)

    assert list(frame.columns) == ["prompt", "chosen", "rejected", "prompt_messages", "scores"]
    corrections = [r for r in decided_rows() if r["source"] == "correct"]
    got = sorted(frame.to_dict("records"), key=lambda r: r["prompt"])
    want = sorted(
        (
            {
                "prompt": r["input"],
                "chosen": r["output"],
                "rejected": r["rejected"],
                "prompt_messages": [{"role": "user", "content": r["input"]}],
                "scores": {},
            }
            for r in corrections
        ),
        key=lambda r: r["prompt"],
    )
    assert got == want
    assert batch.counts["by_source"] == {"correct": len(corrections)}
    assert len(hf_load("json", path_of(batch), tmp_path)) == len(corrections)


def test_it_puts_train_before_validation_where_rows_have_no_split_column(
    agent, decide, build, settings
):
    settings.EXPORT_VALIDATION_SHARE = 0.5
    pairs = [decide(agent, f"question {n}", f"answer {n}") for n in range(12)]
    jsonl = build(agent, "jsonl")
    split_of = {
        r["pair_id"]: r["split"]
        for r in pd.read_json(path_of(jsonl), lines=True).to_dict("records")
    }
    assert set(split_of.values()) == {"train", "validation"}

    batch = build(agent, "openai")

    answers = [m[-1]["content"] for m in pd.read_json(path_of(batch), lines=True)["messages"]]
    ids = {f"answer {n}": p.pk for n, p in enumerate(pairs)}
    expected = sorted(ids.values(), key=lambda pk: (split_of[pk] != "train", pk))
    assert [ids[a] for a in answers] == expected
    order = batch.manifest["row_order"]
    train = batch.counts["by_split"]["train"]
    assert order["train"] == {"first_line": 1, "last_line": train}
    assert order["validation"] == {"first_line": train + 1, "last_line": 12}


def test_it_exports_the_feedback_log_as_csv_and_parquet(agent, build):
    from tests.factories import FeedbackEventFactory, InteractionFactory

    interaction = InteractionFactory(agent=agent, external_id="rec-1", agent_version="r-42")
    at = interaction.created_at
    for n, (kind, ref) in enumerate(
        [("clicked", "P-1"), ("skipped", "=P-2"), ("thumbs_up", ""), ("clicked", "P-3")]
    ):
        FeedbackEventFactory(
            interaction=interaction, kind=kind, item_ref=ref, created_at=at,
            value=0.5 if n == 3 else None,
        )  # fmt: skip

    csv_batch = build(agent, "csv", dataset="feedback")
    parquet_batch = build(agent, "parquet", dataset="feedback", filters={"kinds": ["clicked"]})

    frame = pd.read_csv(path_of(csv_batch), dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(formats.FEEDBACK_COLUMNS)
    assert frame["kind"].tolist() == ["clicked", "skipped", "clicked"]  # default: clicks, skips
    assert frame["label"].tolist() == ["1", "0", "1"]
    assert frame["item_ref"].tolist() == ["P-1", "'=P-2", "P-3"]
    assert frame["external_id"].unique().tolist() == ["rec-1"]
    assert csv_batch.counts == {"rows": 3, "by_kind": {"clicked": 2, "skipped": 1}}
    typed = pd.read_parquet(path_of(parquet_batch))
    assert typed["item_ref"].tolist() == ["P-1", "P-3"]
    assert str(typed["created_at"].dtype) == "datetime64[us, UTC]"
    assert typed["label"].tolist() == [1, 1]
    assert typed["value"].isna().tolist() == [True, False]


# --- writers, directly ---------------------------------------------------------------------


def test_it_neutralises_formula_starts_only():
    assert formats.neutralise("=1+1") == "'=1+1"
    assert formats.neutralise("@SUM") == "'@SUM"
    assert formats.neutralise("\r\nx") == "'\r\nx"
    assert formats.neutralise("a=1") == "a=1"
    assert formats.neutralise("") == ""


def rows(n, start=1):
    return [
        (i, f"in {i} ü", f"out {i}", "approve", "v1", None, [], {}) for i in range(start, start + n)
    ]


def write_parquet(chunks, row_group_rows):
    out = io.BytesIO()
    writer = formats.ParquetWriter(out, tmp_dir=None, row_group_rows=row_group_rows)
    for chunk in chunks:
        writer.write(chunk, ["train"] * len(chunk))
    writer.close()
    return out.getvalue()


def test_it_writes_parquet_in_row_groups_of_the_configured_size():
    data = write_parquet([rows(7), rows(6, start=8)], row_group_rows=5)

    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [5, 5, 3]


def test_it_writes_the_same_parquet_bytes_however_the_rows_were_chunked():
    # Large enough for several data pages per column: page boundaries are where chunking
    # would show.
    text = "Größe — مرحبا order refund café " * 20
    big = [
        (i, text[i % 50 :], text[: 300 + i % 70], "correct", "v2", 1, [], {})
        for i in range(1, 25_001)
    ]

    def write(chunk):
        return write_parquet(
            [big[k : k + chunk] for k in range(0, len(big), chunk)], row_group_rows=20_000
        )

    assert write(5000) == write(7000) == write(25_000)


# --- tool calls and results ----------------------------------------------------------------

# As ingest stores them (ingest/messages.py): an earlier tool round in the context, and the
# turn's own calls (two in parallel) and results in `steps`.
TOOL_CONTEXT = [
    {"role": "user", "content": "Is order A-1 out?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c0", "name": "lookup_order", "arguments": '{"order":"A-1"}'}],
    },
    {"role": "tool", "tool_call_id": "c0", "name": "lookup_order", "content": "shipped"},
    {"role": "assistant", "content": "Yes, it shipped."},
]
TOOL_STEPS = [
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "call_1", "name": "track_parcel", "arguments": '{"parcel":"P-7"}'},
            {"id": "call_2", "name": "eta", "arguments": "{}"},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '=HYPERLINK("http://x","hub")'},
    {"role": "tool", "tool_call_id": "call_2", "content": "tomorrow"},
]
QUESTION, ANSWER = "When will it arrive?", "Tomorrow, from the hub."


def chat_call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# Worked out by hand from TOOL_CONTEXT and TOOL_STEPS: what the conversation is in OpenAI's
# chat format, up to the answer.
CHAT_PROMPT = [
    {"role": "user", "content": "Is order A-1 out?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [chat_call("c0", "lookup_order", '{"order":"A-1"}')],
    },
    {"role": "tool", "tool_call_id": "c0", "content": "shipped"},
    {"role": "assistant", "content": "Yes, it shipped."},
    {"role": "user", "content": QUESTION},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            chat_call("call_1", "track_parcel", '{"parcel":"P-7"}'),
            chat_call("call_2", "eta", "{}"),
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '=HYPERLINK("http://x","hub")'},
    {"role": "tool", "tool_call_id": "call_2", "content": "tomorrow"},
]  # fmt: skip


def jsonl_lines(batch):
    with open(path_of(batch), encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def assert_fine_tune_shaped(line):
    """The rules OpenAI's fine-tuning checks a chat example against (its data preparation
    guide): messages only; each message's keys, role and content type; an assistant message
    to learn from at the end; tool calls as functions with a valid name and JSON-text
    arguments; each tool result answering a call made before it."""
    assert set(line) == {"messages"}
    messages = line["messages"]
    assert messages and messages[-1]["role"] == "assistant"
    called = set()
    for m in messages:
        assert set(m) <= {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}, m
        assert m["role"] in ("system", "user", "assistant", "tool")
        calls = m.get("tool_calls")
        if calls:
            assert m["role"] == "assistant"
            assert m["content"] is None or isinstance(m["content"], str)
            for c in calls:
                assert set(c) == {"id", "type", "function"} and c["type"] == "function"
                assert set(c["function"]) == {"name", "arguments"}
                assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", c["function"]["name"])
                assert isinstance(c["function"]["arguments"], str)
                called.add(c["id"])
        else:
            assert isinstance(m["content"], str), m
        if m["role"] == "tool":
            assert m["tool_call_id"] in called, m


def test_it_writes_tool_calls_and_results_between_input_and_answer_for_openai(agent, decide, build):
    decide(agent, QUESTION, ANSWER, context=TOOL_CONTEXT, steps=TOOL_STEPS)
    decide(agent, "No tools", "Plain")

    batch = build(agent, "openai", filters={"system_prompt": "You are Support Bot."})

    by_input = {line["messages"][1]["content"]: line for line in jsonl_lines(batch)}
    assert by_input["Is order A-1 out?"]["messages"] == [
        {"role": "system", "content": "You are Support Bot."},
        *CHAT_PROMPT,
        {"role": "assistant", "content": ANSWER},
    ]
    assert by_input["No tools"]["messages"][1:] == [
        {"role": "user", "content": "No tools"},
        {"role": "assistant", "content": "Plain"},
    ]


def test_it_writes_fine_tune_shaped_lines_with_tool_calls(agent, decide, build, tmp_path):
    decide(agent, QUESTION, ANSWER, context=TOOL_CONTEXT, steps=TOOL_STEPS)
    decide(agent, "Only steps", "Done.", steps=TOOL_STEPS)
    decide(agent, "No tools", "Plain")

    batch = build(agent, "openai")

    lines = jsonl_lines(batch)
    assert len(lines) == 3
    for line in lines:
        assert_fine_tune_shaped(line)
    assert len(hf_load("json", path_of(batch), tmp_path)) == 3


def test_it_gives_preference_rows_the_conversation_with_its_tool_steps(agent, decide, build):
    decide(
        agent, QUESTION, "Next week.", verdict="correct", corrected=ANSWER,
        category="factual-error", context=TOOL_CONTEXT, steps=TOOL_STEPS,
    )  # fmt: skip

    batch = build(agent, "preference")

    assert jsonl_lines(batch) == [
        {
            "prompt": QUESTION,
            "chosen": ANSWER,
            "rejected": "Next week.",
            "prompt_messages": CHAT_PROMPT,
            "scores": {},
        }
    ]


def test_it_adds_the_steps_as_ingested_to_the_jsonl_rows(agent, decide, build, tmp_path):
    decide(agent, QUESTION, ANSWER, context=TOOL_CONTEXT, steps=TOOL_STEPS)
    decide(agent, "No tools", "Plain")

    batch = build(agent, "jsonl")

    steps = {line["input"]: line["steps"] for line in jsonl_lines(batch)}
    assert steps == {QUESTION: TOOL_STEPS, "No tools": []}
    assert batch.manifest["columns"][-2:] == ["steps", "scores"]
    loaded = hf_load("json", path_of(batch), tmp_path)
    assert sorted(len(row["steps"]) for row in loaded) == [0, 3]


def test_it_writes_the_steps_of_csv_rows_as_json_text_a_spreadsheet_does_not_evaluate(
    agent, decide, build
):
    decide(agent, QUESTION, ANSWER, steps=TOOL_STEPS)
    decide(agent, "No tools", "Plain")

    batch = build(agent, "csv")

    frame = pd.read_csv(path_of(batch), dtype=str, keep_default_na=False, encoding="utf-8")
    assert list(frame.columns) == list(formats.PAIR_COLUMNS)
    cells = dict(zip(frame["input"], frame["steps"], strict=True))
    # The tool result starting with "=" is inside the JSON text, which starts with "[".
    assert json.loads(cells[QUESTION]) == TOOL_STEPS
    assert cells["No tools"] == "[]"
    assert not any(c.startswith(FORMULA_TRIGGERS) for c in frame["steps"])


def test_it_passes_csv_steps_through_the_formula_guard(monkeypatch):
    guarded = []
    monkeypatch.setattr(formats, "neutralise", lambda cell: guarded.append(cell) or cell)
    writer = formats.CsvWriter(io.BytesIO(), tmp_dir=None)

    writer.write([(1, "in", "out", "approve", "v1", None, TOOL_STEPS, {})], ["train"])

    assert json.dumps(TOOL_STEPS, separators=(",", ":")) in guarded


def test_it_writes_the_steps_of_parquet_rows_as_json_text(agent, decide, build):
    decide(agent, QUESTION, ANSWER, steps=TOOL_STEPS)
    decide(agent, "No tools", "Plain")

    batch = build(agent, "parquet")

    schema = pq.read_schema(path_of(batch))
    assert str(schema.field("steps").type) == "string" and not schema.field("steps").nullable
    frame = pd.read_parquet(path_of(batch))
    steps = {i: json.loads(s) for i, s in zip(frame["input"], frame["steps"], strict=True)}
    assert steps == {QUESTION: TOOL_STEPS, "No tools": []}
