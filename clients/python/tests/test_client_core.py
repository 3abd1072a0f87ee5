"""The transport-free core, where a live server cannot make a case happen on purpose: the
order of batches, Retry-After parsing, what each answer leads to, rate-limited logs."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from coachdesk import Rejection, Stats
from coachdesk._core import (
    Buffer,
    Delivery,
    LogLimiter,
    Options,
    batch_body,
    download_name,
    encode,
    kpi_params,
    retry_after_seconds,
)
from coachdesk.models import parse_datetime


def buffer_with(*records: tuple[str, str], max_size: int = 100) -> Buffer:
    buffer = Buffer(max_size, Stats())
    for kind, external_id in records:
        body = encode({"kind": kind, "external_id": external_id})
        assert buffer.put(kind, "bot", external_id, body)  # type: ignore[arg-type]
    return buffer


def ids(batch) -> list[str]:
    return [r.external_id for r in batch]


def test_feedback_is_never_sent_before_its_interaction():
    buffer = buffer_with(
        ("interaction", "i0"),
        ("feedback", "i0"),
        ("interaction", "i1"),
        ("interaction", "i2"),
        ("interaction", "i3"),
        ("feedback", "i3"),
    )
    first = buffer.take(batch_size=3, max_bytes=10**6)
    assert ids(first) == ["i0", "i1", "i2"]
    buffer.settle(first)
    # Feedback on i0 is older than i3, but feedback on i3 must wait for i3.
    second = buffer.take(batch_size=3, max_bytes=10**6)
    assert (second[0].kind, ids(second)) == ("feedback", ["i0"])
    buffer.settle(second)
    third = buffer.take(batch_size=3, max_bytes=10**6)
    assert (third[0].kind, ids(third)) == ("interaction", ["i3"])
    buffer.settle(third)
    fourth = buffer.take(batch_size=3, max_bytes=10**6)
    assert (fourth[0].kind, ids(fourth)) == ("feedback", ["i3"])
    buffer.settle(fourth)
    assert buffer.pending == 0 and buffer.take(3, 10**6) == []


def test_the_bound_counts_records_being_sent():
    stats = Stats()
    buffer = Buffer(3, stats)
    for n in range(3):
        assert buffer.put("interaction", "bot", f"i{n}", b"{}")
    flying = buffer.take(batch_size=2, max_bytes=10**6)
    assert not buffer.put("interaction", "bot", "i3", b"{}")
    buffer.settle(flying)
    assert buffer.put("interaction", "bot", "i4", b"{}")
    assert (stats.enqueued, stats.dropped, buffer.pending) == (4, 1, 2)


def test_a_batch_stops_at_max_bytes_but_always_holds_one_record():
    buffer = Buffer(10, Stats())
    for n in range(4):
        buffer.put("interaction", "bot", f"i{n}", b'"' + b"x" * 98 + b'"')
    assert len(buffer.take(batch_size=10, max_bytes=250)) == 2
    assert len(buffer.take(batch_size=10, max_bytes=50)) == 1
    assert batch_body(buffer.take(batch_size=10, max_bytes=10**6)).count(b",") == 0


@pytest.mark.parametrize(
    "header, seconds",
    [
        ("7", 7.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("Thu, 05 Nov 2026 12:00:30 GMT", 30.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after(header, seconds):
    now = datetime(2026, 11, 5, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds(header, now=now) == seconds


def delivery(**options) -> tuple[Delivery, Stats, list[Rejection]]:
    stats, rejected = Stats(), []
    d = Delivery(Options(**options), stats, LogLimiter(0), "http://x", rejected.append)
    return d, stats, rejected


def test_what_each_answer_leads_to():
    d, stats, rejected = delivery(backoff_base=1, max_backoff=8, max_retries=3)
    buffer = buffer_with(*[("interaction", f"i{n}") for n in range(4)])
    batch = buffer.take(10, 10**6)

    throttled = d.response(batch, 429, {"retry-after": "5"}, b'{"detail": "slow down"}', 0)
    assert throttled.retry_in is not None and 5 <= throttled.retry_in <= 5.5
    unavailable = d.response(batch, 503, {}, b"", 2)
    assert unavailable.retry_in is not None and 2 <= unavailable.retry_in <= 4
    assert d.response(batch, 503, {}, b"", 3).settle == batch  # max_retries reached
    assert d.response(batch, 500, {}, b"{}", 0).settle == batch  # not retried
    split = d.response(batch, 413, {}, b'{"detail": "too big"}', 0)
    assert [ids(p) for p in split.resend] == [["i0", "i1"], ["i2", "i3"]]
    named = d.response(batch, 400, {}, b'{"detail": "items[2].input: a string longer"}', 0)
    assert ids(named.settle) == ["i2"] and [ids(p) for p in named.resend] == [["i0", "i1", "i3"]]
    stored = d.response(
        batch,
        200,
        {},
        b'{"created": 2, "duplicates": 1, "errors": [{"index": 3, "field": "confidence",'
        b' "message": "is required"}, {"index": 3, "field": "input", "message": "is required"}]}',
        0,
    )
    assert stored.settle == batch and stored.retry_in is None
    assert (stats.throttled, stats.retries, stats.failed, stats.splits) == (1, 2, 8, 1)
    assert (stats.acknowledged, stats.created, stats.duplicates, stats.rejected) == (3, 2, 1, 2)
    assert [(r.external_id, r.field) for r in rejected] == [("i2", "record"), ("i3", "confidence")]
    assert rejected[1].message == "confidence: is required; input: is required"


def test_backoff_grows_with_jitter_up_to_its_cap():
    d, _, _ = delivery(backoff_base=0.5, max_backoff=4)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (10_000, 4.0)]:
        delays = {d.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= x <= ceiling for x in delays) and len(delays) > 1


def test_repeated_log_lines_are_rate_limited(caplog):
    caplog.set_level(logging.WARNING, logger="coachdesk")
    limiter = LogLimiter(interval=3600)
    for n in range(5):
        limiter("same", logging.WARNING, "problem %d", n)
    limiter("other", logging.WARNING, "another problem")
    assert caplog.messages == ["problem 0", "another problem"]
    limiter.interval = 0
    limiter("same", logging.WARNING, "problem %d", 5)
    assert caplog.messages[-1] == "problem 5 (4 similar messages not logged)"


def test_encoding_refuses_what_the_server_cannot_read():
    assert encode({"a": datetime(2026, 11, 5, tzinfo=timezone.utc), "b": "é"}) == (
        '{"a":"2026-11-05T00:00:00+00:00","b":"é"}'.encode()
    )
    for bad in (float("nan"), float("inf"), object(), "\ud800"):
        with pytest.raises((TypeError, ValueError)):
            encode({"x": bad})


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_buffer"):
        Options(max_buffer=0)
    with pytest.raises(ValueError, match="max_retries"):
        Options(max_retries=-1)
    with pytest.raises(ValueError, match="base_url"):
        from coachdesk import Coachdesk

        Coachdesk("ftp://example.com", "t")


def test_small_helpers():
    assert kpi_params("bot", "2026-11-02", "2026-11-04", None) == {
        "agent": "bot",
        "from": "2026-11-02",
        "to": "2026-11-04",
    }
    assert kpi_params("bot", None, "2026-11-30", "v2")["from"] == "2026-11-01"
    assert download_name('attachment; filename="a-b.jsonl"', 3) == "a-b.jsonl"
    assert download_name('attachment; filename="../../etc/passwd"', 3) == "passwd"
    assert download_name("attachment; filename*=UTF-8''caf%C3%A9.csv", 3) == "café.csv"
    assert download_name(None, 3) == "batch-3"
    assert download_name('attachment; filename=".hidden"', 3) == "batch-3"
    assert parse_datetime("2026-11-05T12:00:00.5Z") == datetime(
        2026, 11, 5, 12, 0, 0, 500_000, tzinfo=timezone.utc
    )
    assert parse_datetime("not a date") is None and parse_datetime(None) is None
