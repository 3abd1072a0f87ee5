"""One writer per export format (the row shapes are DESIGN.md's "Export formats" contract).

A writer receives rows chunk by chunk (tuples in the order of its `fields`, plus each row's
split) and writes bytes to a binary sink; it never holds more than a chunk, or one Parquet
row group, in memory. Writers are deterministic: the same rows give the same bytes (no
timestamps, no random ids, fixed key order), which is what makes a rebuild byte-identical.

Formats with a `split` column keep the rows in `pair_id` order. The two formats whose row
shape has no room for it (`openai`, `preference`) put every train row first and then every
validation row (each in `pair_id` order); the manifest gives the line ranges.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol

import orjson

from core.spreadsheet import FORMULA_TRIGGERS

if TYPE_CHECKING:  # pyarrow is imported when a Parquet file is written: web workers and
    # the other formats do without its ~50 MB.
    import pyarrow as pa

TRAIN, VALIDATION = "train", "validation"

# Pair fields every pair writer gets first, in this order (`error_category` arrives as the
# category's id, turned into its slug with the `categories` option; `agent_version` is ""
# when unknown). `context` and `steps` arrive as lists of messages (ingest/messages.py).
PAIR_BASE_FIELDS = ("pair_id", "input", "output", "source", "agent_version", "error_category")
# `scores` arrives as a dict (`TrainingPair.scores`: {criterion key: value,
# "_rubric_version": N}, {} for none).
PAIR_FIELDS = (*PAIR_BASE_FIELDS, "steps", "scores")
# `steps` and then `scores` came later than the others: last, so readers that go by
# position keep working.
PAIR_COLUMNS = (
    "input", "output", "split", "source", "agent_version", "error_category", "pair_id", "steps",
    "scores",
)  # fmt: skip
FEEDBACK_FIELDS = (
    "event_id",
    "external_id",
    "conversation_id",
    "agent_version",
    "kind",
    "item_ref",
    "value",
    "created_at",
)
FEEDBACK_COLUMNS = (
    "event_id",
    "external_id",
    "conversation_id",
    "agent_version",
    "kind",
    "label",
    "item_ref",
    "value",
    "created_at",
)
FEEDBACK_LABELS = {"clicked": 1, "skipped": 0}


class Sink(Protocol):
    """Where a writer writes: a binary file, or a HashingSink in front of one."""

    def write(self, data: bytes, /) -> int: ...


def neutralise(cell: str) -> str:
    """The cell as text a spreadsheet will not evaluate: a leading quote before a formula
    start (OWASP's advice). Other cells are returned unchanged."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


class Writer:
    """Base of the writers. `fields` are the source fields each row tuple carries."""

    extension: ClassVar[str]
    content_type: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    columns: ClassVar[tuple[str, ...]]
    # True when the rows are in source order with a `split` column (or no split at all);
    # False when train rows come first, then validation rows.
    in_source_order: ClassVar[bool] = True

    def __init__(self, out: Sink, *, tmp_dir: Path, **options: Any) -> None:
        self.out = out
        self.tmp_dir = tmp_dir
        self.options = options
        self.categories: dict[int, str] = options.get("categories") or {}

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Writes whatever is buffered. The sink itself stays open (the caller owns it)."""

    def discard(self) -> None:
        """Drops buffers and side files after a failed build."""


# --- JSON lines -------------------------------------------------------------------------------


def _scores(value: Any) -> dict[str, Any]:
    """A pair's rubric scores with their keys in order (`_rubric_version` first), so the
    same pair always gives the same bytes whichever database stored it; {} for none."""
    return dict(sorted(value.items())) if value else {}


class JsonlWriter(Writer):
    """`{"input", "output", "split", "source", "agent_version", "error_category", "pair_id",
    "steps", "scores"}`, `steps` the tool calls and results as ingested (an array, [] for
    none), `scores` the rubric scores (an object, {} for none)."""

    extension = "jsonl"
    content_type = "application/jsonl"
    fields = PAIR_FIELDS
    columns = PAIR_COLUMNS

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        if not rows:
            return
        dumps, slug = orjson.dumps, self.categories.get
        lines = [
            dumps(
                {
                    "input": r[1],
                    "output": r[2],
                    "split": split,
                    "source": r[3],
                    "agent_version": r[4] or None,
                    "error_category": slug(r[5]),
                    "pair_id": r[0],
                    "steps": r[6],
                    "scores": _scores(r[7]),
                }
            )
            for r, split in zip(rows, splits, strict=True)
        ]
        lines.append(b"")
        self.out.write(b"\n".join(lines))


class _SplitFilesWriter(Writer):
    """A JSON-lines format without a split column: train lines go to the sink, validation
    lines to a local side file appended to the sink on close."""

    in_source_order = False

    def __init__(self, out: Sink, *, tmp_dir: Path, **options: Any) -> None:
        super().__init__(out, tmp_dir=tmp_dir, **options)
        fd, name = tempfile.mkstemp(prefix="validation-", suffix=".part", dir=tmp_dir)
        self._side_path = name
        self._side = os.fdopen(fd, "w+b")

    def line(self, row: tuple) -> dict:
        raise NotImplementedError

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        dumps, line = orjson.dumps, self.line
        train: list[bytes] = []
        validation: list[bytes] = []
        for row, split in zip(rows, splits, strict=True):
            (train if split == TRAIN else validation).append(dumps(line(row)))
        for lines, sink in ((train, self.out), (validation, self._side)):
            if lines:
                lines.append(b"")
                sink.write(b"\n".join(lines))

    def close(self) -> None:
        self._side.flush()
        self._side.seek(0)
        shutil.copyfileobj(self._side, self.out, 1024 * 1024)
        self.discard()

    def discard(self) -> None:
        self._side.close()
        Path(self._side_path).unlink(missing_ok=True)


def chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message (ingest/messages.py) in OpenAI's chat format: an assistant message's
    tool calls as `{"id", "type": "function", "function": {"name", "arguments"}}` with its
    content null when it has no text, a tool result as `{"role": "tool", "tool_call_id",
    "content"}`, any other message as `{"role", "content"}`. Context turns stored before
    ingest checked tool calls kept whatever `tool_calls` they had: a call already in OpenAI's
    shape is taken as it is."""
    role, content = message.get("role"), message.get("content", "")
    calls = message.get("tool_calls")
    if role == "assistant" and calls and isinstance(calls, list):
        return {
            "role": "assistant",
            "content": content or None,
            "tool_calls": [_chat_call(call) for call in calls],
        }
    if role == "tool" and message.get("tool_call_id"):
        return {"role": "tool", "tool_call_id": message["tool_call_id"], "content": content}
    return {"role": role, "content": content}


def _chat_call(call: Any) -> dict[str, Any]:
    call = call if isinstance(call, dict) else {}
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": function.get("name"), "arguments": arguments},
    }


class _ChatWriter(_SplitFilesWriter):
    """A JSON-lines format holding the conversation of a pair as chat messages: a system
    prompt given in the filters (the `openai` format's option) opens every conversation
    whose context does not already start with a system message. Rows end with `context`,
    then `steps`."""

    def __init__(self, out: Sink, *, tmp_dir: Path, **options: Any) -> None:
        super().__init__(out, tmp_dir=tmp_dir, **options)
        prompt = options.get("system_prompt") or ""
        self._system = [{"role": "system", "content": prompt}] if prompt else []

    def prompt(self, row: tuple) -> list[dict[str, Any]]:
        """[system?, ...context, user: input, ...steps]: what the final answer follows."""
        context = [chat_message(m) for m in row[-2] or ()]
        system = self._system if not context or context[0]["role"] != "system" else []
        return [
            *system,
            *context,
            {"role": "user", "content": row[1]},
            *(chat_message(m) for m in row[-1] or ()),
        ]


class OpenAIWriter(_ChatWriter):
    """`{"messages": [system?, ...context, user: input, ...steps, assistant: output]}`:
    OpenAI's chat fine-tuning format, tool calls and tool results included (see
    `chat_message`). Nothing else goes in a line (no pair id, split or rubric scores):
    the format has no per-example metadata, so a line carries only what OpenAI reads."""

    extension = "jsonl"
    content_type = "application/jsonl"
    fields = (*PAIR_BASE_FIELDS, "context", "steps")
    columns = ("messages",)

    def line(self, row: tuple) -> dict:
        return {"messages": [*self.prompt(row), {"role": "assistant", "content": row[2]}]}


class PreferenceWriter(_ChatWriter):
    """`{"prompt", "chosen", "rejected", "prompt_messages", "scores"}` of corrections: chosen
    is the reviewer's output, rejected the agent's original, `prompt` the input as text and
    `prompt_messages` the whole conversation both answers follow, in the `openai` format's
    messages ([...context, user: input, ...steps]): what a conversational preference trainer
    takes as its prompt. `scores` are the rubric scores of the agent's original answer
    ({} for none); trainers ignore columns they do not know."""

    extension = "jsonl"
    content_type = "application/jsonl"
    # `context` and `steps` stay last: `_ChatWriter.prompt` reads them from the end.
    fields = (*PAIR_BASE_FIELDS, "rejected_output", "scores", "context", "steps")
    columns = ("prompt", "chosen", "rejected", "prompt_messages", "scores")

    def line(self, row: tuple) -> dict:
        return {
            "prompt": row[1],
            "chosen": row[2],
            "rejected": row[6],
            "prompt_messages": self.prompt(row),
            "scores": _scores(row[7]),
        }


# --- CSV ---------------------------------------------------------------------------------------


class _CsvWriter(Writer):
    """RFC 4180 CSV in UTF-8 (no BOM), CRLF line ends, a header row; text cells that a
    spreadsheet would evaluate are neutralised with a leading quote."""

    extension = "csv"
    content_type = "text/csv; charset=utf-8"

    def __init__(self, out: Sink, *, tmp_dir: Path, **options: Any) -> None:
        super().__init__(out, tmp_dir=tmp_dir, **options)
        self._write_rows([self.columns])

    def _write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        self.out.write(buffer.getvalue().encode("utf-8"))


class CsvWriter(_CsvWriter):
    """The `jsonl` columns, `steps` and `scores` as JSON text (one column whatever the
    rubric: its criteria change between versions, and a header is fixed per format)."""

    fields = PAIR_FIELDS
    columns = PAIR_COLUMNS

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        n, slug, steps = neutralise, self.categories.get, _json_text
        self._write_rows(
            [
                (
                    n(r[1]),
                    n(r[2]),
                    split,
                    r[3],
                    n(r[4]),
                    slug(r[5], ""),
                    r[0],
                    n(steps(r[6])),
                    n(_scores_text(r[7])),
                )
                for r, split in zip(rows, splits, strict=True)
            ]
        )


def _json_text(value: Any) -> str:
    """A JSON column as compact JSON text ("[]" for none)."""
    return orjson.dumps(value).decode() if value else "[]"


def _scores_text(value: Any) -> str:
    """Rubric scores as compact JSON text, keys sorted ("{}" for none)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value else "{}"


class FeedbackCsvWriter(_CsvWriter):
    """The feedback log: one row per event, `label` 1 for clicked, 0 for skipped."""

    fields = FEEDBACK_FIELDS
    columns = FEEDBACK_COLUMNS

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        n = neutralise
        self._write_rows(
            [
                (
                    r[0],
                    n(r[1]),
                    n(r[2]),
                    n(r[3]),
                    r[4],
                    FEEDBACK_LABELS.get(r[4], ""),
                    n(r[5]),
                    "" if r[6] is None else repr(r[6]),
                    _iso(r[7]),
                )
                for r in rows
            ]
        )


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Parquet -----------------------------------------------------------------------------------


def pair_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("input", pa.string(), nullable=False),
            pa.field("output", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("agent_version", pa.string()),
            pa.field("error_category", pa.string()),
            pa.field("pair_id", pa.int64(), nullable=False),
            pa.field("steps", pa.string(), nullable=False),  # JSON text, "[]" for none
            pa.field("scores", pa.string(), nullable=False),  # JSON text, "{}" for none
        ]
    )


def feedback_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("event_id", pa.int64(), nullable=False),
            pa.field("external_id", pa.string(), nullable=False),
            pa.field("conversation_id", pa.string()),
            pa.field("agent_version", pa.string()),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("label", pa.int8()),
            pa.field("item_ref", pa.string()),
            pa.field("value", pa.float64()),
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )


def _arrow(values: list, type: pa.DataType) -> pa.Array:
    """An Arrow array of `values`. Strings are encoded to UTF-8 here and cast: three times
    faster than Arrow's own conversion for text that is not pure ASCII."""
    import pyarrow as pa

    if type != pa.string():
        return pa.array(values, type=type)
    encoded = [None if v is None else v.encode() for v in values]
    return pa.array(encoded, type=pa.binary()).cast(pa.string())


class _ParquetWriter(Writer):
    """Typed Parquet (snappy), written one row group at a time with pyarrow's ParquetWriter.

    Each chunk becomes an Arrow record batch at once (its Python strings are freed), and the
    batches are written as one row group every `row_group_rows` rows; Arrow's unused memory
    is handed back after each. Row-group boundaries depend only on the rows, so the bytes
    are reproducible (for a given pyarrow version, recorded in the manifest)."""

    extension = "parquet"
    content_type = "application/vnd.apache.parquet"

    @staticmethod
    def make_schema() -> pa.Schema:
        raise NotImplementedError

    def __init__(self, out: Sink, *, tmp_dir: Path, **options: Any) -> None:
        import pyarrow.parquet as pq

        super().__init__(out, tmp_dir=tmp_dir, **options)
        self.schema = self.make_schema()
        self.row_group_rows = int(options.get("row_group_rows") or 10_000)
        self._batches: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer = pq.ParquetWriter(
            out,
            self.schema,
            compression="snappy",  # pyarrow's default: several times faster than zstd
            # Dictionary pages only where values repeat; long texts are stored plain.
            use_dictionary=[f.name for f in self.schema if f.name in self.dictionary_columns],
            write_statistics=[f.name for f in self.schema if f.name not in self.text_columns],
        )

    dictionary_columns: ClassVar[frozenset[str]] = frozenset()
    text_columns: ClassVar[frozenset[str]] = frozenset()

    def columns_of(self, rows: Sequence[tuple], splits: Sequence[str]) -> list[list]:
        raise NotImplementedError

    def write(self, rows: Sequence[tuple], splits: Sequence[str]) -> None:
        import pyarrow

        if not rows:
            return
        arrays = [
            _arrow(values, field.type)
            for values, field in zip(self.columns_of(rows, splits), self.schema, strict=True)
        ]
        batch = pyarrow.RecordBatch.from_arrays(arrays, schema=self.schema)
        while batch.num_rows:
            room = self.row_group_rows - self._buffered
            self._batches.append(batch.slice(0, room))
            self._buffered += min(room, batch.num_rows)
            batch = batch.slice(room)
            if self._buffered == self.row_group_rows:
                self._flush()

    def _flush(self) -> None:
        import pyarrow

        # One contiguous chunk per column: page boundaries then depend on the rows only, not
        # on how the database chunks happened to fall.
        table = pyarrow.Table.from_batches(self._batches, schema=self.schema).combine_chunks()
        self._writer.write_table(table, row_group_size=self._buffered)
        self._batches, self._buffered = [], 0
        del table
        pyarrow.default_memory_pool().release_unused()

    def close(self) -> None:
        if self._buffered:
            self._flush()
        self._writer.close()

    def discard(self) -> None:
        self._batches = []


class ParquetWriter(_ParquetWriter):
    """The `jsonl` columns, typed: strings, `pair_id` int64, nulls for unknown version or
    category, `steps` as JSON text (its messages vary in shape, as ingested), `scores` as
    JSON text (its keys are the criteria of each pair's rubric version)."""

    fields = PAIR_FIELDS
    columns = PAIR_COLUMNS

    @staticmethod
    def make_schema() -> pa.Schema:
        return pair_schema()

    dictionary_columns = frozenset({"split", "source", "agent_version", "error_category"})
    text_columns = frozenset({"input", "output", "steps"})

    def columns_of(self, rows: Sequence[tuple], splits: Sequence[str]) -> list[list]:
        ids, inputs, outputs, sources, versions, categories, steps, scores = zip(*rows, strict=True)
        return [
            list(inputs),
            list(outputs),
            list(splits),
            list(sources),
            [v or None for v in versions],
            [self.categories.get(c) for c in categories],
            list(ids),
            [_json_text(s) for s in steps],
            [_scores_text(s) for s in scores],
        ]


class FeedbackParquetWriter(_ParquetWriter):
    """The feedback log, typed: `created_at` a UTC timestamp, `label` int8, `value` double."""

    fields = FEEDBACK_FIELDS
    columns = FEEDBACK_COLUMNS

    @staticmethod
    def make_schema() -> pa.Schema:
        return feedback_schema()

    dictionary_columns = frozenset({"agent_version", "kind", "item_ref", "conversation_id"})

    def columns_of(self, rows: Sequence[tuple], splits: Sequence[str]) -> list[list]:
        ids, external, conversation, versions, kinds, refs, values, created = zip(
            *rows, strict=True
        )
        return [
            list(ids),
            list(external),
            [c or None for c in conversation],
            [v or None for v in versions],
            list(kinds),
            [FEEDBACK_LABELS.get(k) for k in kinds],
            [r or None for r in refs],
            list(values),
            list(created),
        ]


PAIR_WRITERS: dict[str, type[Writer]] = {
    "jsonl": JsonlWriter,
    "openai": OpenAIWriter,
    "preference": PreferenceWriter,
    "csv": CsvWriter,
    "parquet": ParquetWriter,
}
FEEDBACK_WRITERS: dict[str, type[Writer]] = {
    "csv": FeedbackCsvWriter,
    "parquet": FeedbackParquetWriter,
}


def writer_for(dataset: str, format: str) -> type[Writer]:
    writers = FEEDBACK_WRITERS if dataset == "feedback" else PAIR_WRITERS
    try:
        return writers[format]
    except KeyError:
        raise ValueError(f"no {format!r} writer for the {dataset} dataset") from None


class Background:
    """Runs jobs in order on one helper thread, at most `depth` of them waiting, so that work
    which releases the GIL (hashing, disk writes, Parquet encoding and compression) overlaps
    with the caller preparing the next chunk. A job's error is raised by the next submit()
    or by close()."""

    def __init__(self, name: str, depth: int = 2) -> None:
        self._jobs: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        self._raise()
        self._jobs.put((job, args))

    def close(self) -> None:
        """Waits until every job ran; raises the first error."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Waits for the thread to stop, ignoring errors (the work is being thrown away)."""
        with contextlib.suppress(BaseException):  # already failing: the first error counts
            self.close()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            if self._error is None:  # after an error, jobs are only drained
                job, args = item
                try:
                    job(*args)
                except BaseException as exc:
                    self._error = exc


class HashingSink:
    """A write-only binary file that hashes (sha256) and counts what goes through it, so the
    checksum of a batch is known the moment its last byte is written. Hashing and writing
    happen on a helper thread; call finish() before reading the digest."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._sha = hashlib.sha256()
        self._background = Background("export-sink")
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        # A copy unless it is bytes: the caller may reuse its buffer once this returns.
        block = data if isinstance(data, bytes) else bytes(data)
        self.size += len(block)
        self._background.submit(self._write, block)
        return len(block)

    def _write(self, block: bytes) -> None:
        self._sha.update(block)
        self._out.write(block)

    def finish(self) -> None:
        """Waits for every block to be hashed and written, then flushes the file."""
        self._background.close()
        self._out.flush()

    def abort(self) -> None:
        self._background.abort()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to do: finish() flushes (a mid-file flush would only wait)."""

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False
