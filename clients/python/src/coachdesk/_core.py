"""What the sync and async clients share, free of any I/O: options, record encoding, the
bounded buffer, what to do with each answer of the ingest API, and rate-limited log lines.

The clients only move bytes: they take a batch from the `Buffer`, POST it, and hand the
answer (or the exception) to `Delivery`, which says whether the batch is settled, must be
retried after a delay, or must be sent again as smaller parts.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from coachdesk.models import FeedbackKind, RecordKind, Rejection, Stats

log = logging.getLogger("coachdesk")

PATHS: dict[RecordKind, str] = {
    "interaction": "/api/v1/interactions",
    "feedback": "/api/v1/feedback",
}
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_ITEM_PATH = re.compile(r"^items\[(\d+)\]")


@dataclass(frozen=True)
class Options:
    """The tuning knobs of a client (see `Coachdesk` for what each one does)."""

    max_buffer: int = 10_000
    batch_size: int = 500
    max_batch_bytes: int = 4 * 1024 * 1024
    flush_interval: float = 1.0
    timeout: float = 10.0
    max_retries: int | None = None
    backoff_base: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    read_retries: int = 3
    log_interval: float = 60.0
    close_timeout: float = 10.0

    def __post_init__(self) -> None:
        positive_ints = ("max_buffer", "batch_size", "max_batch_bytes")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("timeout", "backoff_base", "max_backoff", "flush_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        for name in ("max_retry_after", "log_interval", "close_timeout", "read_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be None (no limit) or at least 0")


def normalize_base_url(base_url: str) -> str:
    """`https://host[/prefix]`, without a trailing slash; refuses anything but http(s)."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    return str(url).rstrip("/")


def user_agent() -> str:
    from coachdesk import __version__

    return f"coachdesk-python/{__version__} httpx/{httpx.__version__}"


# --- records ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(record: Mapping[str, Any]) -> bytes:
    """The record as compact UTF-8 JSON. Raises ValueError / TypeError for what the server
    could not read (NaN, infinity, lone surrogates, objects JSON has no form for)."""
    text = json.dumps(
        record,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
        default=_json_default,
    )
    return text.encode("utf-8")


def timestamp(value: datetime | date | str | None) -> str:
    """ISO 8601 for the server; now (UTC) when None, a naive datetime taken as UTC."""
    if value is None:
        return datetime.now(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).isoformat()


def new_external_id() -> str:
    return str(uuid.uuid4())


def interaction_record(
    *,
    agent: str,
    external_id: str,
    input: str,
    output: str,
    confidence: float,
    created_at: datetime | date | str | None,
    optional: Mapping[str, Any],
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "external_id": external_id,
        "agent": agent,
        "input": input,
        "output": output,
        "confidence": confidence,
    }
    for key, value in optional.items():
        if value is not None:
            record[key] = [dict(turn) for turn in value] if key == "context" else value
    # Stamped when logged, not when delivered: a record sent after an outage keeps its time.
    record["created_at"] = timestamp(created_at)
    return record


def feedback_record(
    *,
    agent: str,
    external_id: str,
    kind: FeedbackKind | str,
    item_ref: str | None,
    value: float | None,
    created_at: datetime | date | str | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {"agent": agent, "external_id": external_id, "kind": kind}
    if item_ref is not None:
        record["item_ref"] = item_ref
    if value is not None:
        record["value"] = value
    # The server tells a re-sent event from a new one by its fields, created_at included:
    # stamping it here makes two clicks two events, and a retried batch a duplicate.
    record["created_at"] = timestamp(created_at)
    return record


@dataclass(eq=False)
class Record:
    """One buffered record, encoded once: a retry sends the very same bytes."""

    seq: int
    kind: RecordKind
    agent: str
    external_id: str
    body: bytes
    queued_at: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.agent, self.external_id)


def batch_body(records: Sequence[Record]) -> bytes:
    return b"[" + b",".join(r.body for r in records) + b"]"


# --- the buffer ------------------------------------------------------------------------------


class Buffer:
    """The bounded in-memory buffer. Every method must be called with `lock` held.

    `max_size` bounds the records not yet settled, those being sent included, so the memory
    used stays bounded however long the server is away. Interactions and feedback wait in
    two queues; a feedback event is held back while the interaction it names (logged by this
    client) is still unsent, so the server never sees feedback before its interaction.
    """

    def __init__(self, max_size: int, stats: Stats) -> None:
        self.lock = threading.Lock()
        self.max_size = max_size
        self.stats = stats
        self._interactions: deque[Record] = deque()
        self._feedback: deque[Record] = deque()
        self._flying: dict[int, Record] = {}  # taken by the sender, not settled yet
        self._unsent: dict[tuple[str, str], int] = {}
        self._seq = 0

    @property
    def queued(self) -> int:
        return len(self._interactions) + len(self._feedback)

    @property
    def pending(self) -> int:
        """Buffered and not settled yet (queued or being sent)."""
        return self.queued + len(self._flying)

    def put(self, kind: RecordKind, agent: str, external_id: str, body: bytes) -> bool:
        """Buffers a record; False (and counted as dropped) when the buffer is full."""
        if self.pending >= self.max_size:
            self.stats.add(dropped=1)
            return False
        self._seq += 1
        record = Record(self._seq, kind, agent, external_id, body, time.monotonic())
        if kind == "interaction":
            self._interactions.append(record)
            self._unsent[record.key] = self._unsent.get(record.key, 0) + 1
        else:
            self._feedback.append(record)
        self.stats.add(enqueued=1)
        return True

    def ready(self, now: float, batch_size: int, interval: float, urgent: bool) -> float | None:
        """0 when a batch should be sent now, else the seconds until the oldest record has
        waited `interval` (None: nothing queued, wait to be woken)."""
        queued = self.queued
        if not queued:
            return None
        if urgent or queued >= batch_size:
            return 0.0
        oldest = min(q[0].queued_at for q in (self._interactions, self._feedback) if q)
        return max(0.0, interval - (now - oldest))

    def _feedback_ready(self, record: Record) -> bool:
        return record.key not in self._unsent

    def take(self, batch_size: int, max_bytes: int) -> list[Record]:
        """The next batch, oldest first: all interactions or all feedback, at most
        `batch_size` records and (beyond its first record) `max_bytes` of JSON."""
        first_feedback = next((r for r in self._feedback if self._feedback_ready(r)), None)
        if self._interactions and (
            first_feedback is None or self._interactions[0].seq < first_feedback.seq
        ):
            batch = self._take_from(self._interactions, batch_size, max_bytes, lambda r: True)
        elif first_feedback is not None:
            batch = self._take_from(self._feedback, batch_size, max_bytes, self._feedback_ready)
        elif self._feedback:
            # Only held-back feedback and nothing to wait for (cannot happen while one sender
            # runs): send it rather than wait forever.
            batch = self._take_from(self._feedback, batch_size, max_bytes, lambda r: True)
        else:
            batch = []
        self._flying.update((r.seq, r) for r in batch)
        return batch

    @staticmethod
    def _take_from(
        queue: deque[Record], batch_size: int, max_bytes: int, eligible: Callable[[Record], bool]
    ) -> list[Record]:
        batch: list[Record] = []
        kept: list[Record] = []
        size = 2
        while queue and len(batch) < batch_size:
            record = queue.popleft()
            if not eligible(record):
                kept.append(record)
                continue
            if batch and size + len(record.body) + 1 > max_bytes:
                queue.appendleft(record)
                break
            batch.append(record)
            size += len(record.body) + 1
        queue.extendleft(reversed(kept))
        return batch

    def settle(self, records: Sequence[Record]) -> None:
        """Records that are done with (acknowledged, rejected or given up)."""
        for record in records:
            if self._flying.pop(record.seq, None) is None:
                continue  # settled already
            if record.kind == "interaction":
                left = self._unsent.get(record.key, 0) - 1
                if left > 0:
                    self._unsent[record.key] = left
                else:
                    self._unsent.pop(record.key, None)

    def drain(self) -> list[Record]:
        """Removes every queued record (the client is closing): they are settled as failed."""
        records = [*self._interactions, *self._feedback]
        self._interactions.clear()
        self._feedback.clear()
        self._flying.update((r.seq, r) for r in records)
        return records

    def abandon(self) -> list[Record]:
        """The records taken by a sender that is gone (cancelled, or its event loop closed):
        they are settled as failed."""
        return list(self._flying.values())

    def reset(self) -> None:
        """Forgets everything (in a child process after fork: the parent sends those)."""
        self.lock = threading.Lock()
        self._interactions.clear()
        self._feedback.clear()
        self._flying.clear()
        self._unsent.clear()


# --- logging ---------------------------------------------------------------------------------


class LogLimiter:
    """At most one line per key every `interval` seconds; the next line says how many were
    left out. A client that cannot reach its server must not flood the application's log."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, key: str, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return
            self._last[key] = now
            skipped = self._skipped.pop(key, 0)
        if skipped:
            message += " (%d similar messages not logged)"
            args = (*args, skipped)
        log.log(level, message, *args)


# --- what to do with an answer -----------------------------------------------------------------


@dataclass
class Action:
    """What to do after one attempt: settle some records, send some parts next, or retry
    the same batch after `retry_in` seconds."""

    settle: list[Record] = field(default_factory=list)
    resend: list[list[Record]] = field(default_factory=list)
    retry_in: float | None = None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _detail(content: bytes) -> tuple[str, Any]:
    """(`detail` of an error body, the decoded body or None)."""
    try:
        data = json.loads(content)
    except ValueError:
        return content[:200].decode("utf-8", "replace").strip(), None
    if isinstance(data, dict):
        return str(data.get("detail", "")), data
    return "", data


class Delivery:
    """Decides, for one attempt at one batch, what comes next (see `Action`), and keeps the
    stats and the log. Shared by the sync and async senders."""

    def __init__(
        self,
        options: Options,
        stats: Stats,
        limiter: LogLimiter,
        base_url: str,
        on_rejected: Callable[[Rejection], object] | None,
    ) -> None:
        self.options = options
        self.stats = stats
        self.limiter = limiter
        self.base_url = base_url
        self.on_rejected = on_rejected

    # The delay before retry number `attempt + 1`: exponential with "equal jitter" (half
    # fixed, half random), capped; or the server's Retry-After, honoured in full.
    def backoff(self, attempt: int) -> float:
        ceiling = min(self.options.max_backoff, self.options.backoff_base * 2 ** min(attempt, 40))
        return random.uniform(ceiling / 2, ceiling)

    def _retry_or_give_up(
        self, batch: list[Record], attempt: int, why: str, retry_after: float | None
    ) -> Action:
        limit = self.options.max_retries
        if limit is not None and attempt >= limit:
            return self.give_up(batch, f"{why}; gave up after {attempt} retries")
        if retry_after is not None:
            wait = min(retry_after, self.options.max_retry_after)
            delay = wait + random.uniform(0, min(1.0, wait / 10))
        else:
            delay = self.backoff(attempt)
        self.stats.add(retries=1)
        self.limiter(
            f"retry:{why[:40]}",
            logging.WARNING,
            "coachdesk: %s; retrying %d %s records in %.1f s (Retry-After: %s)",
            why,
            len(batch),
            batch[0].kind,
            delay,
            "none" if retry_after is None else f"{retry_after:g} s",
        )
        return Action(retry_in=delay)

    def give_up(self, batch: list[Record], why: str) -> Action:
        self.stats.add(failed=len(batch))
        self.limiter(
            f"failed:{why[:40]}",
            logging.ERROR,
            "coachdesk: %d %s records not delivered to %s: %s",
            len(batch),
            batch[0].kind if batch else "",
            self.base_url,
            why,
        )
        return Action(settle=batch)

    def reject(self, record: Record, field_name: str, message: str) -> None:
        """A record refused as invalid (by the server, or before it was sent)."""
        self.stats.add(rejected=1)
        self.limiter(
            "rejected",
            logging.WARNING,
            "coachdesk: the server rejected %s %r of agent %r: %s: %s",
            record.kind,
            record.external_id,
            record.agent,
            field_name,
            message,
        )
        self.notify_rejected(
            Rejection(record.kind, record.agent, record.external_id, field_name, message)
        )

    def notify_rejected(self, rejection: Rejection) -> None:
        if self.on_rejected is None:
            return
        try:
            self.on_rejected(rejection)
        except Exception:  # the callback is the application's: it must not stop delivery
            log.exception("coachdesk: on_rejected raised")

    def transport_error(self, batch: list[Record], exc: Exception, attempt: int) -> Action:
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return self.give_up(batch, f"{type(exc).__name__}: {exc}")
        why = f"cannot reach {self.base_url} ({type(exc).__name__}: {exc or 'no detail'})"
        return self._retry_or_give_up(batch, attempt, why, None)

    def response(
        self,
        batch: list[Record],
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        attempt: int,
    ) -> Action:
        if 200 <= status < 300:
            return self._stored(batch, content)
        detail, _ = _detail(content)
        if status in RETRY_STATUSES:
            if status == 429:
                self.stats.add(throttled=1)
            after = retry_after_seconds(headers.get("retry-after"))
            return self._retry_or_give_up(batch, attempt, f"the server answered {status}", after)
        if status == 413:
            return self._too_large(batch, detail)
        if status == 400:
            return self._refused_body(batch, detail)
        if status in (401, 403):
            why = f"the server refused the token ({status}: {detail})"
        else:
            why = f"the server answered {status}: {detail or 'no detail'}"
        return self.give_up(batch, why)

    def _stored(self, batch: list[Record], content: bytes) -> Action:
        _, data = _detail(content)
        if not isinstance(data, dict) or "created" not in data:
            return self.give_up(batch, "the server's answer is not an ingest result")
        created = int(data.get("created") or 0)
        duplicates = int(data.get("duplicates") or 0)
        errors = data.get("errors") or []
        refused: dict[int, list[tuple[str, str]]] = {}
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, dict):
                continue
            index = error.get("index")
            if isinstance(index, int) and 0 <= index < len(batch):
                field_name = str(error.get("field", ""))
                refused.setdefault(index, []).append((field_name, str(error.get("message", ""))))
        for index, problems in refused.items():
            text = "; ".join(f"{f}: {m}" for f, m in problems)
            self.reject(batch[index], problems[0][0], text if len(problems) > 1 else problems[0][1])
        self.stats.add(acknowledged=created + duplicates, created=created, duplicates=duplicates)
        return Action(settle=batch)

    def _halves(self, batch: list[Record]) -> Action:
        self.stats.add(splits=1)
        middle = len(batch) // 2
        return Action(resend=[batch[:middle], batch[middle:]])

    def _too_large(self, batch: list[Record], detail: str) -> Action:
        if len(batch) > 1:
            log.debug("coachdesk: 413 for %d records; sending them in two halves", len(batch))
            return self._halves(batch)
        self.reject(batch[0], "record", f"too large for the server: {detail}")
        return Action(settle=batch)

    def _refused_body(self, batch: list[Record], detail: str) -> Action:
        """400 for the whole body: one record broke a limit of the body (e.g. a string longer
        than the server reads). The same body is never sent again: the record the server
        names (`items[N]...`) is rejected and the others are sent without it; when it names
        none, the batch is halved until the culprit is alone."""
        if len(batch) == 1:
            self.reject(batch[0], "record", detail or "refused (400)")
            return Action(settle=batch)
        match = _ITEM_PATH.match(detail)
        if match and int(match.group(1)) < len(batch):
            index = int(match.group(1))
            self.reject(batch[index], "record", detail)
            rest = batch[:index] + batch[index + 1 :]
            return Action(settle=[batch[index]], resend=[rest])
        return self._halves(batch)


# --- what both clients offer ------------------------------------------------------------------


class LoggingMixin:
    """`log_interaction` / `log_feedback`, identical for both clients: they build the
    record, encode it, and hand it to the client's `_enqueue` (which never blocks)."""

    _agent: str | None
    _agent_version: str | None
    _delivery: Delivery
    _limiter: LogLimiter
    _stats: Stats

    def _enqueue(self, kind: RecordKind, agent: str, external_id: str, body: bytes) -> bool:
        raise NotImplementedError

    def _refuse_locally(self, kind: RecordKind, agent: str, external_id: str, why: str) -> None:
        self._stats.add(rejected=1)
        self._limiter(
            "invalid",
            logging.WARNING,
            "coachdesk: %s %r not sent: %s",
            kind,
            external_id,
            why,
        )
        field_name, _, message = why.partition(": ")
        self._delivery.notify_rejected(Rejection(kind, agent, external_id, field_name, message))

    def _submit(
        self, kind: RecordKind, agent: str | None, external_id: str, build: Callable[[], Any]
    ) -> bool:
        if not agent:
            self._refuse_locally(kind, "", external_id, "agent: no agent given (and no default)")
            return False
        try:
            body = encode(build())
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            self._refuse_locally(kind, agent, external_id, f"record: not valid JSON ({exc})")
            return False
        return self._enqueue(kind, agent, external_id, body)

    def log_interaction(
        self,
        input: str,
        output: str,
        confidence: float,
        *,
        agent: str | None = None,
        external_id: str | None = None,
        agent_version: str | None = None,
        conversation_id: str | None = None,
        context: Sequence[Mapping[str, str]] | None = None,
        intent: str | None = None,
        domain: str | None = None,
        resolved: bool | None = None,
        escalated: bool | None = None,
        sentiment: float | None = None,
        turns: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | date | str | None = None,
    ) -> str:
        """Buffers one interaction for delivery and returns its `external_id` at once.

        Never blocks and never raises: when the buffer is full the record is dropped
        (`stats.dropped`, and a log line at most once per `log_interval`); a record that
        cannot be encoded is counted in `stats.rejected`. Without `external_id` a new
        UUID4 is made; pass the returned id to `log_feedback`. The id is the server's
        idempotency key with the agent: re-sends (retries included) are duplicates, never
        second rows. `agent` / `agent_version` default to the client's. `created_at`
        defaults to now (UTC), the moment of the call, not of delivery. The other fields are
        those of the interaction format (DESIGN.md); None leaves a field out.
        """
        external_id = external_id if external_id is not None else new_external_id()
        try:
            agent = agent or self._agent
            optional = {
                "agent_version": agent_version or self._agent_version,
                "conversation_id": conversation_id,
                "context": context,
                "intent": intent,
                "domain": domain,
                "resolved": resolved,
                "escalated": escalated,
                "sentiment": sentiment,
                "turns": turns,
                "metadata": metadata,
            }
            self._submit(
                "interaction",
                agent,
                external_id,
                lambda: interaction_record(
                    agent=agent or "",
                    external_id=external_id,
                    input=input,
                    output=output,
                    confidence=confidence,
                    created_at=created_at,
                    optional=optional,
                ),
            )
        except Exception:  # never in the caller's way
            self._stats.add(dropped=1)
            log.exception("coachdesk: could not buffer an interaction")
        return external_id

    def log_feedback(
        self,
        external_id: str,
        kind: FeedbackKind | str,
        *,
        agent: str | None = None,
        item_ref: str | None = None,
        value: float | None = None,
        created_at: datetime | date | str | None = None,
    ) -> bool:
        """Buffers one feedback event on the interaction `external_id` (of `agent`, by
        default the client's); True when it was buffered.

        `kind` is one of clicked, skipped, thumbs_up, thumbs_down, resolved, escalated;
        `item_ref` names e.g. the product clicked. Never blocks and never raises (see
        `log_interaction`). It is sent after the interaction it names when that one was
        logged by this client and is still unsent. `created_at` (default: now) is part of
        the event's identity on the server: two events that differ only in it are two
        events, a retried batch is the same events again.
        """
        try:
            agent = agent or self._agent
            return self._submit(
                "feedback",
                agent,
                external_id,
                lambda: feedback_record(
                    agent=agent or "",
                    external_id=external_id,
                    kind=kind,
                    item_ref=item_ref,
                    value=value,
                    created_at=created_at,
                ),
            )
        except Exception:
            self._stats.add(dropped=1)
            log.exception("coachdesk: could not buffer a feedback event")
            return False

    def _log_dropped(self, reason: str) -> None:
        self._limiter(
            f"dropped:{reason}",
            logging.WARNING,
            "coachdesk: record dropped: %s (%d dropped so far)",
            reason,
            self._stats.dropped,
        )


# --- reads -----------------------------------------------------------------------------------


def kpi_params(
    agent: str,
    start: date | str | None,
    end: date | str | None,
    version: str | None,
    default_days: int = 30,
) -> dict[str, str]:
    """Query parameters of GET /api/v1/kpis; the range defaults to the `default_days`
    UTC days up to today."""
    end_day = _day(end) if end is not None else datetime.now(timezone.utc).date()
    if start is not None:
        start_day = _day(start)
    else:
        start_day = date.fromordinal(end_day.toordinal() - (default_days - 1))
    params = {"agent": agent, "from": start_day.isoformat(), "to": end_day.isoformat()}
    if version:
        params["version"] = version
    return params


def regression_set_params(
    *,
    intent: str | None,
    domain: str | None,
    error_category: str | None,
    agent_version: str | None,
    date_from: date | str | None,
    date_to: date | str | None,
    page_size: int,
) -> dict[str, Any]:
    """Query parameters of GET /api/v1/agents/{slug}/regression-set (without the cursor)."""
    params: dict[str, Any] = {"limit": page_size}
    for name, value in (
        ("intent", intent),
        ("domain", domain),
        ("error_category", error_category),
        ("agent_version", agent_version),
    ):
        if value:
            params[name] = value
    if date_from is not None:
        params["date_from"] = _day(date_from).isoformat()
    if date_to is not None:
        params["date_to"] = _day(date_to).isoformat()
    return params


def regression_answers(answers: Any) -> list[dict[str, Any]]:
    """`{case_id: answer}`, or an iterable of `(case_id, answer)` pairs or
    `{"case_id", "answer"}` objects, as the API's answer objects."""
    if isinstance(answers, Mapping):
        return [{"case_id": k, "answer": v} for k, v in answers.items()]
    out: list[dict[str, Any]] = []
    for row in answers:
        if isinstance(row, Mapping):
            out.append({"case_id": row["case_id"], "answer": row["answer"]})
        else:
            case_id, answer = row
            out.append({"case_id": case_id, "answer": answer})
    return out


def merge_run_part(
    total: dict[str, Any] | None, part: Mapping[str, Any], offset: int
) -> dict[str, Any]:
    """Adds one request's answer to a run posted in parts: counts summed, error indexes
    shifted to the position in the whole list, the latest summary kept."""
    errors = [{**e, "index": int(e["index"]) + offset} for e in part.get("errors", [])]
    if total is None:
        return {**part, "errors": errors}
    merged = dict(total)
    for key in ("created", "duplicates", "matched", "unchanged", "routed"):
        merged[key] = int(total.get(key, 0)) + int(part.get(key, 0))
    merged["errors"] = [*total.get("errors", []), *errors]
    merged["summary"] = part.get("summary")
    return merged


def _day(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def read_retry_delay(
    delivery: Delivery, attempt: int, response: httpx.Response | None, method: str
) -> float | None:
    """Seconds before retrying a read helper's request, or None to raise now: after a
    connection error (response None), 502, 503 or 504, and for GET a 429, within
    `read_retries`. A Retry-After longer than `max_backoff` is not waited for here (the
    caller gets the 429): a read helper does not block for minutes."""
    options = delivery.options
    if attempt >= options.read_retries:
        return None
    if response is None:
        return delivery.backoff(attempt)
    retryable = RETRY_STATUSES if method == "GET" else RETRY_STATUSES - {429}
    if response.status_code not in retryable:
        return None
    after = retry_after_seconds(response.headers.get("retry-after"))
    if after is None:
        return delivery.backoff(attempt)
    return after if after <= options.max_backoff else None


def api_error(response: httpx.Response) -> Exception:
    from coachdesk.errors import ApiError

    detail, data = _detail(response.content)
    errors = data.get("errors") if isinstance(data, dict) else None
    return ApiError(
        response.status_code,
        detail or response.reason_phrase,
        {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else None,
    )


_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


def download_name(content_disposition: str | None, batch_id: int) -> str:
    """The file name the server suggests, reduced to a safe base name."""
    from urllib.parse import unquote

    name = ""
    if content_disposition:
        found = _FILENAME.findall(content_disposition)
        if found:
            name = unquote(found[-1]).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or name.startswith("."):
        name = f"batch-{batch_id}"
    return name
