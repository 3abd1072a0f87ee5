"""The values the client hands back: delivery counters, rejections, KPI rows, batches."""

from __future__ import annotations

import datetime as _dt
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RecordKind = Literal["interaction", "feedback"]
FeedbackKind = Literal["clicked", "skipped", "thumbs_up", "thumbs_down", "resolved", "escalated"]


class Stats:
    """What happened to the records given to `log_interaction` / `log_feedback`.

    Counters only grow; read them at any time (`client.stats.dropped`). A record ends in
    exactly one of `acknowledged` (the server stored it, or already had it), `rejected`
    (the server, or the client before sending, refused it as invalid), `failed` (given up:
    a non-retryable answer such as 401, retries exhausted, or still unsent when the client
    closed) or `dropped` (the buffer was full, or the client closed, so it was never
    buffered). `pending` on the client counts those not settled yet.
    """

    __slots__ = (
        "_lock",
        "enqueued",
        "acknowledged",
        "created",
        "duplicates",
        "rejected",
        "dropped",
        "failed",
        "requests",
        "retries",
        "throttled",
        "splits",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Records accepted into the buffer.
        self.enqueued = 0
        #: Records the server answered as stored (`created` + `duplicates`).
        self.acknowledged = 0
        #: Of those, records the server stored for the first time.
        self.created = 0
        #: Of those, records the server already had (a re-sent batch, or a re-used id).
        self.duplicates = 0
        #: Records refused as invalid, by the server (per index) or before sending.
        self.rejected = 0
        #: Records not buffered: the buffer was full (or the client closed).
        self.dropped = 0
        #: Records given up on after they were buffered.
        self.failed = 0
        #: HTTP requests sent to the ingest endpoints.
        self.requests = 0
        #: Requests repeated after a connection error, 429, 502, 503 or 504.
        self.retries = 0
        #: 429 answers (the per-token rate limit).
        self.throttled = 0
        #: Batches split in two after a 413 (too large) or a 400 for the whole body.
        self.splits = 0

    def add(self, **counts: int) -> None:
        """Adds to the named counters (thread-safe)."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """A consistent copy of every counter."""
        with self._lock:
            return {name: getattr(self, name) for name in self.__slots__ if name != "_lock"}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"Stats({inner})"


@dataclass(frozen=True)
class Rejection:
    """A record refused as invalid: by the server (its per-index error) or by the client
    before sending (e.g. a value that is not JSON). Passed to `on_rejected`."""

    kind: RecordKind
    agent: str
    external_id: str
    field: str
    message: str


@dataclass(frozen=True)
class KpiValue:
    """One KPI of one row. Rates have `n`, `low`, `high` (95% Wilson interval), means have
    `n`, counts only `value`. `value` is None when there is no data; breakdown KPIs hold a
    mapping or list in `value`."""

    value: Any
    n: int | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class KpiRow:
    """One day of one agent's KPIs; `agent_version` None is the row over all versions.
    `row["resolution_rate"].value` reads a KPI; `row.kpis` has them all."""

    date: _dt.date
    agent: str
    agent_version: str | None
    kpis: Mapping[str, KpiValue] = field(default_factory=dict)

    def __getitem__(self, key: str) -> KpiValue:
        return self.kpis[key]

    def __contains__(self, key: object) -> bool:
        return key in self.kpis


@dataclass(frozen=True)
class BatchRequest:
    """The answer to `request_batch`: the batch's id, its status, and whether an identical
    batch already existed (then no new one was queued)."""

    id: int
    status: str
    already_existed: bool


@dataclass(frozen=True)
class Batch:
    """A retraining export batch's metadata (`GET /api/v1/exports/{id}`); `raw` has the
    server's whole answer."""

    id: int
    agent: str
    dataset: str
    format: str
    status: str
    row_count: int
    sha256: str
    size_bytes: int
    counts: Mapping[str, Any]
    filters: Mapping[str, Any]
    manifest: Mapping[str, Any]
    failure_reason: str
    created_at: _dt.datetime | None
    finished_at: _dt.datetime | None
    download_url: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status == "ready"


# --- parsing ---------------------------------------------------------------------------------

_FRACTION = re.compile(r"\.(\d+)")


def parse_datetime(text: Any) -> _dt.datetime | None:
    """An ISO 8601 timestamp as the server writes it ("...Z" included, which
    `datetime.fromisoformat` reads only from Python 3.11 on)."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python 3.10 reads exactly 3 or 6 digits of fractions.
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    try:
        return _dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def parse_kpi_row(row: Mapping[str, Any]) -> KpiRow:
    kpis: dict[str, KpiValue] = {}
    for key, raw in row.items():
        if key in ("date", "agent", "agent_version") or not isinstance(raw, Mapping):
            continue
        kpis[key] = KpiValue(
            value=raw.get("value"), n=raw.get("n"), low=raw.get("low"), high=raw.get("high")
        )
    return KpiRow(
        date=_dt.date.fromisoformat(str(row["date"])),
        agent=str(row.get("agent", "")),
        agent_version=row.get("agent_version"),
        kpis=kpis,
    )


def parse_batch(data: Mapping[str, Any]) -> Batch:
    return Batch(
        id=int(data["id"]),
        agent=str(data.get("agent", "")),
        dataset=str(data.get("dataset", "")),
        format=str(data.get("format", "")),
        status=str(data.get("status", "")),
        row_count=int(data.get("row_count") or 0),
        sha256=str(data.get("sha256") or ""),
        size_bytes=int(data.get("size_bytes") or 0),
        counts=dict(data.get("counts") or {}),
        filters=dict(data.get("filters") or {}),
        manifest=dict(data.get("manifest") or {}),
        failure_reason=str(data.get("failure_reason") or ""),
        created_at=parse_datetime(data.get("created_at")),
        finished_at=parse_datetime(data.get("finished_at")),
        download_url=data.get("download_url"),
        raw=dict(data),
    )


def parse_batch_request(data: Mapping[str, Any]) -> BatchRequest:
    return BatchRequest(
        id=int(data["id"]),
        status=str(data.get("status", "")),
        already_existed=bool(data.get("already_existed", False)),
    )


__all__ = [
    "Batch",
    "BatchRequest",
    "FeedbackKind",
    "KpiRow",
    "KpiValue",
    "RecordKind",
    "Rejection",
    "Stats",
]
