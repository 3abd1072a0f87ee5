"""Streaming input: JSONL and JSON arrays, with precise per-line errors."""

import io

from ingest.readers import MAX_RECORD_BYTES, RecordError, iter_records


def read(data: bytes):
    return list(iter_records(io.BytesIO(data)))


def test_it_reads_jsonl_with_line_numbers_and_skips_blank_lines():
    records = read(b'{"a": 1}\n\n{"a": 2}\n')
    assert records == [(1, {"a": 1}), (3, {"a": 2})]


def test_it_counts_leading_blank_lines():
    assert read(b'\n\n{"a": 1}\n') == [(3, {"a": 1})]


def test_it_reports_a_line_that_is_not_json_and_keeps_going():
    records = read(b'{"a": 1}\n{"a": \n{"a": 3}\n')
    assert records[0] == (1, {"a": 1})
    assert isinstance(records[1][1], RecordError)
    assert records[1][1].position == 2 and records[1][1].message.startswith("not valid JSON")
    assert records[2] == (3, {"a": 3})


def test_it_reports_invalid_utf8_with_the_byte():
    [(line, error)] = read(b'{"input": "caf\xe9"}\n')
    assert line == 1
    assert error.field == "record"
    assert error.message == "not valid UTF-8 (byte 0xe9 at byte offset 14)"


def test_it_decodes_nan_so_validation_can_name_it():
    [(_, value)] = read(b'{"confidence": NaN}\n')
    assert value["confidence"] != value["confidence"]  # NaN


def test_it_rejects_unpaired_surrogates():
    [(_, error)] = read(b'{"input": "\\ud800"}\n')
    assert isinstance(error, RecordError) and "surrogate" in error.message


def test_it_reads_a_json_array_element_by_element_with_lines():
    records = read(b'[\n  {"a": 1},\n  {"a": 2}\n]\n')
    assert records == [(2, {"a": 1}), (3, {"a": 2})]


def test_it_reads_a_json_array_whose_elements_cross_chunk_boundaries():
    # 3 MB of elements with a multi-byte character, read in 1 MB chunks.
    element = '{"text": "' + "é" * 500 + '", "n": 0.123456789}'
    data = ("[" + ",\n".join([element] * 3000) + "]").encode()
    records = read(data)
    assert len(records) == 3000
    assert all(value == records[0][1] for _, value in records)
    assert records[0][1]["n"] == 0.123456789


def test_it_reports_an_unclosed_array():
    records = read(b'[{"a": 1},')
    assert records[0] == (1, {"a": 1})
    assert isinstance(records[-1][1], RecordError) and "not closed" in records[-1][1].message


def test_it_rejects_an_oversize_line_without_reading_it_into_memory():
    data = b'{"a": "' + b"x" * (MAX_RECORD_BYTES + 10) + b'"}\n{"a": 2}\n'
    records = read(data)
    assert (
        isinstance(records[0][1], RecordError) and "longer than the limit" in records[0][1].message
    )
    assert records[1] == (2, {"a": 2})


def test_it_yields_nothing_for_empty_input():
    assert read(b"") == []
    assert read(b"  \n ") == []
