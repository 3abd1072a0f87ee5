"""Streaming readers for ingest input: JSONL, or one JSON array, from a file or stdin.

Memory stays flat in the size of the input: JSONL is read a line at a time (with a cap on
one line's length) and a JSON array is decoded one element at a time from a sliding buffer.
"""

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

# One record may not be larger than this (a runaway line must not exhaust memory).
MAX_RECORD_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
_WS = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class RecordError:
    """A problem with one input record. `position` is the caller's numbering: a 1-based line
    for files, a 0-based index for API bodies. `field` is "record" when the whole record is
    unusable (not JSON, not an object, ...)."""

    position: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.position}: {self.field}: {self.message}"


class UnreadableInput(Exception):
    """The input as a whole could not be read (exit code 2 for the commands)."""


def _has_surrogates(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_record(raw: bytes | str) -> Any:
    """Decodes one JSON value; raises ValueError with a message a person can act on.

    orjson is the fast path. It refuses `NaN` / `Infinity`, which Python's json accepts: those
    records are decoded by the slow path so validation can say "confidence: must be a finite
    number, got NaN" instead of a vague syntax error.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset {exc.start})"
            ) from None
    else:
        text = raw
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    if _has_surrogates(value):
        raise ValueError("contains an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)")
    return value


class ProgressTracker:
    """Bytes consumed so far, for a progress bar."""

    def __init__(self) -> None:
        self.bytes_read = 0


def iter_records(
    stream: BinaryIO, progress: ProgressTracker | None = None
) -> Iterator[tuple[int, Any | RecordError]]:
    """Yields (line number, decoded value or RecordError) for JSONL or a JSON array.

    The format is sniffed from the first non-blank byte: `[` means one JSON array, anything
    else JSONL. Blank lines in JSONL are skipped.
    """
    first = b""
    while True:
        chunk = stream.read(1)
        if not chunk:
            return
        if chunk in _WS:
            if progress:
                progress.bytes_read += 1
            if chunk == b"\n":
                first += b"\n"  # keep line numbers right
            continue
        first += chunk
        break
    if chunk == b"[":
        yield from _iter_array(stream, first, progress)
    else:
        yield from _iter_jsonl(stream, first, progress)


def _iter_jsonl(
    stream: BinaryIO, head: bytes, progress: ProgressTracker | None
) -> Iterator[tuple[int, Any | RecordError]]:
    lineno = head.count(b"\n")
    pending = head.lstrip(b"\n")
    while True:
        line = stream.readline(MAX_RECORD_BYTES)
        if pending:
            line, pending = pending + line, b""
        if not line:
            return
        lineno += 1
        if progress:
            progress.bytes_read += len(line)
        if not line.endswith(b"\n") and len(line) >= MAX_RECORD_BYTES:
            # Skip the rest of an oversize line without holding it in memory.
            while True:
                rest = stream.readline(_CHUNK)
                if progress:
                    progress.bytes_read += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield (
                lineno,
                RecordError(
                    lineno, "record", f"line is longer than the limit of {MAX_RECORD_BYTES:,} bytes"
                ),
            )
            continue
        if line.isspace():  # (not empty: the end of input returned above)
            continue
        try:
            yield lineno, parse_record(line)
        except ValueError as exc:
            yield lineno, RecordError(lineno, "record", str(exc))


def _iter_array(
    stream: BinaryIO, head: bytes, progress: ProgressTracker | None
) -> Iterator[tuple[int, Any | RecordError]]:
    """Decodes `[v, v, ...]` one element at a time. An element that does not decode makes the
    rest of the array unreadable (there is no line boundary to resync on), which is reported
    as an error on that element's line."""
    decoder = json.JSONDecoder()
    # Incremental, so a multi-byte character cut by a chunk boundary is decoded whole.
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    buf = ""
    lines_before = head.count(b"\n")  # newlines consumed before buf[0]
    eof = False

    def refill() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        data = stream.read(_CHUNK)
        if progress:
            progress.bytes_read += len(data)
        buf += utf8.decode(data, final=not data)
        if not data:
            eof = True
            return False
        return True

    def skip(chars: str) -> None:
        nonlocal buf, lines_before
        i = 0
        while True:
            while i < len(buf) and buf[i] in chars:
                i += 1
            if i < len(buf) or not refill():
                break
        lines_before += buf.count("\n", 0, i)
        buf = buf[i:]

    expect_value = True
    while True:
        skip(" \t\r\n")
        if not buf and not refill():
            yield (
                lines_before + 1,
                RecordError(lines_before + 1, "record", "the JSON array is not closed"),
            )
            return
        if buf[0] == "]":
            return
        if not expect_value:
            if buf[0] != ",":
                yield (
                    lines_before + 1,
                    RecordError(
                        lines_before + 1, "record", "expected ',' or ']' between array elements"
                    ),
                )
                return
            buf = buf[1:]
            expect_value = True
            continue
        lineno = lines_before + 1
        while True:
            try:
                value, end = decoder.raw_decode(buf)
            except json.JSONDecodeError as exc:
                if len(buf) < MAX_RECORD_BYTES and refill():
                    continue
                yield lineno, RecordError(lineno, "record", f"not valid JSON: {exc.msg}")
                return
            # A number at the end of the buffer may be cut short ("0.4" of "0.42"): read on.
            if end == len(buf) and not eof and refill():
                continue
            break
        if _has_surrogates(value):
            yield (
                lineno,
                RecordError(lineno, "record", "not valid UTF-8 or contains an unpaired surrogate"),
            )
        else:
            yield lineno, value
        lines_before += buf.count("\n", 0, end)
        buf = buf[end:]
        expect_value = False
