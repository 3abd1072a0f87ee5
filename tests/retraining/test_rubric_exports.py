"""Rubric scores in the exports: the training pair keeps the deciding review's scores with
the rubric version, and every pair format carries them (the files parsed back), except the
`openai` lines, which hold only what OpenAI reads."""

import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from retraining import formats
from reviews import services
from tests.factories import InteractionFactory, ReviewItemFactory
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(agent, reviewer):
    """Three decided items of `agent`: an approval scored under v1, a correction scored
    under v2, and an approval made before the agent had a rubric (no scores)."""

    def decide(input, verdict, scores=None, corrected=""):
        ReviewItemFactory(interaction=InteractionFactory(agent=agent, input=input, output="orig"))
        item = services.item_claim(reviewer=reviewer)
        decision = services.decision_validate(
            item=item, verdict=verdict, corrected_output=corrected, scores=scores
        )
        return services.review_submit(item=item, reviewer=reviewer, decision=decision).pair

    plain = decide("before any rubric", "approve")
    make_rubric(agent, ("accuracy", "pass_fail"), ("tone", "scale", False))
    first = decide("scored v1", "approve", {"accuracy": 1, "tone": 4})
    make_rubric(agent, ("accuracy", "pass_fail"), ("clarity", "scale"))
    second = decide("scored v2", "correct", {"accuracy": 0, "clarity": 2}, corrected="better")
    return {"plain": plain, "first": first, "second": second}


EXPECTED = {
    "before any rubric": {},
    "scored v1": {"_rubric_version": 1, "accuracy": 1, "tone": 4},
    "scored v2": {"_rubric_version": 2, "accuracy": 0, "clarity": 2},
}


def test_it_copies_the_scores_and_version_into_the_pair(scored):
    assert scored["plain"].scores == {}
    assert scored["first"].scores == {"accuracy": 1, "tone": 4, "_rubric_version": 1}
    assert scored["second"].scores == {"accuracy": 0, "clarity": 2, "_rubric_version": 2}


def lines(batch):
    with open(batch.file.path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_it_writes_the_scores_into_jsonl_rows(agent, scored, build):
    batch = build(agent, "jsonl")

    assert {line["input"]: line["scores"] for line in lines(batch)} == EXPECTED
    assert batch.manifest["columns"][-1] == "scores"


def test_it_writes_the_scores_of_the_agents_answer_into_preference_rows(agent, scored, build):
    batch = build(agent, "preference")

    assert [(line["prompt"], line["rejected"], line["scores"]) for line in lines(batch)] == [
        ("scored v2", "orig", EXPECTED["scored v2"])
    ]


def test_it_keeps_openai_lines_to_what_openai_reads(agent, scored, build):
    batch = build(agent, "openai")

    assert all(set(line) == {"messages"} for line in lines(batch))
    assert len(lines(batch)) == 3


def test_it_writes_the_scores_as_one_json_column_of_csv(agent, scored, build):
    batch = build(agent, "csv")

    frame = pd.read_csv(batch.file.path, dtype=str, keep_default_na=False, encoding="utf-8")
    assert list(frame.columns) == list(formats.PAIR_COLUMNS)
    cells = dict(zip(frame["input"], frame["scores"], strict=True))
    assert cells["before any rubric"] == "{}"
    assert cells["scored v1"] == '{"_rubric_version":1,"accuracy":1,"tone":4}'
    assert {k: json.loads(v) for k, v in cells.items()} == EXPECTED


def test_it_guards_the_csv_scores_cell_like_every_text_cell(monkeypatch):
    guarded = []
    monkeypatch.setattr(formats, "neutralise", lambda cell: guarded.append(cell) or cell)
    writer = formats.CsvWriter(io.BytesIO(), tmp_dir=None)

    writer.write([(1, "in", "out", "approve", "v1", None, [], {"a": 1})], ["train"])

    assert '{"a":1}' in guarded


def test_it_writes_the_scores_as_json_text_in_parquet(agent, scored, build):
    batch = build(agent, "parquet")

    schema = pq.read_schema(batch.file.path)
    assert str(schema.field("scores").type) == "string" and not schema.field("scores").nullable
    table = pq.read_table(batch.file.path).to_pydict()
    got = {i: json.loads(s) for i, s in zip(table["input"], table["scores"], strict=True)}
    assert got == EXPECTED
