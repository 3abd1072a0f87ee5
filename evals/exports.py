"""The `comparisons` export dataset: decided pairwise comparisons as preference data.

A comparison decided A or B (ties and both-bad left out) is one row: the prompt is its input
(and context, as the training pairs' preference lines), `chosen` the winning answer,
`rejected` the losing one, with the comparison's id, the agent version of each side, its
kind, domain, intent and decision time. Formats: `preference` (JSON lines shaped like the
pairs' preference lines, plus those columns), `csv` and `parquet` (the same columns).

Registered with retraining (which may not import evals) in `EvalsConfig.ready()`.

Reproducible: a batch holds the comparisons with an id up to its cutoff (the highest
comparison id when it was requested) that were already decided when it was requested
(`decided_at` ≤ the batch's `created_at`). A comparison created earlier but decided after
the request is not in it, so a retry or a rebuild writes the same rows. (A decision whose
transaction stamped its time just before the request but committed after the build read
the rows is the one race this cannot see; decisions are never undone.)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from django.db.models import Max, Q, QuerySet

from evals.models import Comparison
from retraining import formats, selectors, sources
from retraining.models import ExportBatch

if TYPE_CHECKING:
    import pyarrow as pa

DATASET = ExportBatch.Dataset.COMPARISONS
WINNERS = (Comparison.Choice.A, Comparison.Choice.B)

# The row tuple every comparisons writer gets (`decided_at` an aware datetime, `context` a
# list of messages).
FIELDS = (
    "comparison_id",
    "input",
    "context",
    "answer_a",
    "answer_b",
    "version_a",
    "version_b",
    "outcome",
    "kind",
    "domain",
    "intent",
    "decided_at",
)
# The columns of every format: the pairs' preference columns, then the comparison's.
COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "prompt_messages",
    "scores",
    "comparison_id",
    "winner",
    "chosen_version",
    "rejected_version",
    "kind",
    "domain",
    "intent",
    "decided_at",
)
_DB_FIELDS = {
    "comparison_id": "pk",
    "input": "input",
    "context": "context",
    "answer_a": "answer_a",
    "answer_b": "answer_b",
    "version_a": "version_a",
    "version_b": "version_b",
    "outcome": "outcome",
    "kind": "kind",
    "domain": "domain",
    "intent": "intent",
    "decided_at": "decided_at",
}


# --- selection ---------------------------------------------------------------------------------


def comparisons_matching(
    *, agent_id: int, filters: dict[str, Any], cutoff_id: int, requested_at: datetime
) -> QuerySet[Comparison]:
    """The decided A / B comparisons of the agent with an id up to `cutoff_id`, decided by
    `requested_at`. Dates are the decision day (UTC, both ends included); `agent_versions`
    matches either side; `intents`, `domains`, `kinds` the comparison's own."""
    rows = Comparison.objects.filter(
        agent_id=agent_id,
        pk__lte=cutoff_id,
        status=Comparison.Status.DONE,
        outcome__in=WINNERS,
        decided_at__lte=requested_at,
    )
    if filters.get("date_from"):
        rows = rows.filter(decided_at__gte=selectors._day_start(filters["date_from"]))
    if filters.get("date_to"):
        end = selectors._day_start(filters["date_to"]) + timedelta(days=1)
        rows = rows.filter(decided_at__lt=end)
    if filters.get("agent_versions"):
        versions = filters["agent_versions"]
        rows = rows.filter(Q(version_a__in=versions) | Q(version_b__in=versions))
    if filters.get("kinds"):
        rows = rows.filter(kind__in=filters["kinds"])
    if filters.get("intents"):
        rows = rows.filter(intent__in=filters["intents"])
    if filters.get("domains"):
        rows = rows.filter(domain__in=filters["domains"])
    return rows


def _changed_since(rows: QuerySet, batch: ExportBatch) -> QuerySet:
    return rows.filter(Q(pk__gt=batch.cutoff_id) | Q(decided_at__gt=batch.created_at))


def comparison_cutoff() -> int:
    return Comparison.objects.aggregate(m=Max("pk"))["m"] or 0


def comparison_chunks(
    batch: ExportBatch, fields: tuple[str, ...], chunk_size: int, *, using: str = "default"
) -> Generator[list[tuple]]:
    """The comparisons of a batch, in id order, in chunks of tuples of `fields`."""
    rows = SOURCE.rows(batch).order_by("pk").values_list(*[_DB_FIELDS[name] for name in fields])
    json_columns = (fields.index("context"),) if "context" in fields else ()
    yield from selectors._stream(rows, chunk_size, json_columns=json_columns, using=using)


# --- writers -----------------------------------------------------------------------------------


def _sides(row: tuple) -> tuple[str, str, str, str, str]:
    """(winner, chosen, rejected, chosen version, rejected version) of a row."""
    _, _, _, answer_a, answer_b, version_a, version_b, outcome = row[:8]
    if outcome == Comparison.Choice.A:
        return "a", answer_a, answer_b, version_a, version_b
    return "b", answer_b, answer_a, version_b, version_a


def _prompt(row: tuple) -> list[dict[str, Any]]:
    """[...context, user: input]: what both answers follow (the `openai` messages)."""
    return [*(formats.chat_message(m) for m in row[2] or ()), {"role": "user", "content": row[1]}]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class ComparisonPreferenceWriter(formats.Writer):
    """The pairs' preference line (`prompt`, `chosen`, `rejected`, `prompt_messages`,
    `scores` — {} here: a comparison has no rubric scores) and the comparison's columns,
    in comparison id order (no split: every line is a training example)."""

    extension = "jsonl"
    content_type = "application/jsonl"
    fields = FIELDS
    columns = COLUMNS

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        if not rows:
            return
        lines = []
        for r in rows:
            winner, chosen, rejected, chosen_version, rejected_version = _sides(r)
            line = {
                "prompt": r[1],
                "chosen": chosen,
                "rejected": rejected,
                "prompt_messages": _prompt(r),
                "scores": {},
                "comparison_id": r[0],
                "winner": winner,
                "chosen_version": chosen_version or None,
                "rejected_version": rejected_version or None,
                "kind": r[8],
                "domain": r[9] or None,
                "intent": r[10] or None,
                "decided_at": _iso(r[11]),
            }
            lines.append(orjson.dumps(line))
        lines.append(b"")
        self.out.write(b"\n".join(lines))


class ComparisonCsvWriter(formats.Writer):
    """The same columns as CSV (RFC 4180, UTF-8, CRLF, a header; `prompt_messages` and
    `scores` as JSON text), text cells neutralised like the other CSV formats."""

    extension = "csv"
    content_type = "text/csv; charset=utf-8"
    fields = FIELDS
    columns = COLUMNS

    def __init__(self, out: formats.Sink, *, tmp_dir: Path, **options: Any) -> None:
        super().__init__(out, tmp_dir=tmp_dir, **options)
        self._write_rows([self.columns])

    def _write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        self.out.write(buffer.getvalue().encode("utf-8"))

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        n = formats.neutralise
        out = []
        for r in rows:
            winner, chosen, rejected, chosen_version, rejected_version = _sides(r)
            out.append(
                (
                    n(r[1]),
                    n(chosen),
                    n(rejected),
                    n(orjson.dumps(_prompt(r)).decode()),
                    "{}",
                    r[0],
                    winner,
                    n(chosen_version),
                    n(rejected_version),
                    r[8],
                    n(r[9]),
                    n(r[10]),
                    _iso(r[11]),
                )
            )
        self._write_rows(out)


def comparison_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("prompt", pa.string(), nullable=False),
            pa.field("chosen", pa.string(), nullable=False),
            pa.field("rejected", pa.string(), nullable=False),
            pa.field("prompt_messages", pa.string(), nullable=False),  # JSON text
            pa.field("scores", pa.string(), nullable=False),  # "{}"
            pa.field("comparison_id", pa.int64(), nullable=False),
            pa.field("winner", pa.string(), nullable=False),
            pa.field("chosen_version", pa.string()),
            pa.field("rejected_version", pa.string()),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("domain", pa.string()),
            pa.field("intent", pa.string()),
            pa.field("decided_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


class ComparisonParquetWriter(formats._ParquetWriter):
    """The same columns, typed: `comparison_id` int64, `decided_at` a UTC timestamp, nulls
    for an unknown version, domain or intent."""

    fields = FIELDS
    columns = COLUMNS
    dictionary_columns = frozenset(
        {"winner", "chosen_version", "rejected_version", "kind", "domain", "intent"}
    )
    text_columns = frozenset({"prompt", "chosen", "rejected", "prompt_messages"})

    @staticmethod
    def make_schema() -> pa.Schema:
        return comparison_schema()

    def columns_of(self, rows: Sequence[tuple], splits: Sequence[str]) -> list[list]:
        sides = [_sides(r) for r in rows]
        return [
            [r[1] for r in rows],
            [s[1] for s in sides],
            [s[2] for s in sides],
            [orjson.dumps(_prompt(r)).decode() for r in rows],
            ["{}"] * len(rows),
            [r[0] for r in rows],
            [s[0] for s in sides],
            [s[3] or None for s in sides],
            [s[4] or None for s in sides],
            [r[8] for r in rows],
            [r[9] or None for r in rows],
            [r[10] or None for r in rows],
            [r[11] for r in rows],
        ]


SOURCE = sources.DatasetSource(
    name=DATASET,
    what="decided comparisons (A or B better)",
    matching=comparisons_matching,
    changed_since=_changed_since,
    chunks=comparison_chunks,
    cutoff=comparison_cutoff,
    writers={
        ExportBatch.Format.PREFERENCE: ComparisonPreferenceWriter,
        ExportBatch.Format.CSV: ComparisonCsvWriter,
        ExportBatch.Format.PARQUET: ComparisonParquetWriter,
    },
    order="comparison_id",
    tally=lambda row: "a" if row[7] == Comparison.Choice.A else "b",
    count_key="by_winner",
    choice_filters={"kinds": tuple(Comparison.Kind.values)},
    version_filters=("agent_versions",),
    description="comparisons of the agent with outcome a or b, id <= data_cutoff_id and "
    "decided at or before data_cutoff_time (the request); ties and both-bad left out",
)


def register() -> None:
    sources.register_dataset(DATASET, SOURCE)
