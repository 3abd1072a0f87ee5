"""`Coachdesk`: the synchronous client, with a background sender thread."""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from coachdesk._core import (
    PATHS,
    Action,
    Buffer,
    Delivery,
    LoggingMixin,
    LogLimiter,
    Options,
    Record,
    api_error,
    batch_body,
    download_name,
    kpi_params,
    log,
    merge_run_part,
    normalize_base_url,
    read_retry_delay,
    regression_answers,
    regression_set_params,
    user_agent,
)
from coachdesk.errors import BatchNotReady, ChecksumMismatch, ConnectionFailed
from coachdesk.models import (
    Batch,
    BatchRequest,
    KpiRow,
    RecordKind,
    Rejection,
    Stats,
    parse_batch,
    parse_batch_request,
    parse_kpi_row,
)

_LIVE: weakref.WeakSet[Coachdesk] = weakref.WeakSet()


class Coachdesk(LoggingMixin):
    """Client of a Coachdesk server (synchronous).

    ```python
    cd = Coachdesk("https://coachdesk.example.com", token="cd_...", agent="support-bot")
    iid = cd.log_interaction(input="Where is my parcel?", output="On its way.", confidence=0.4)
    cd.log_feedback(iid, "thumbs_down")
    ```

    `log_interaction` / `log_feedback` put the record in a bounded in-memory buffer and
    return at once; a background thread sends the buffer in batches to
    `POST /api/v1/interactions` / `POST /api/v1/feedback`. Connection errors, 429 (after its
    `Retry-After`), 502, 503 and 504 are retried with exponential backoff and jitter, with
    the same external ids, so the server counts a re-sent record as a duplicate. A 413
    splits the batch; records the server refuses (its per-index errors) are logged, counted
    in `stats.rejected` and never re-sent.

    Call `flush()` to wait for delivery and `close()` (or use `with`) when done. Records
    still buffered when the interpreter exits are flushed by an `atexit` hook, for at most
    `close_timeout` seconds (not on `os._exit`, a fatal signal or a hard kill).

    Options:
        agent / agent_version: defaults for the records logged.
        max_buffer: records held at most (buffered or being sent); beyond it new records
            are dropped and counted in `stats.dropped`.
        batch_size / max_batch_bytes: the largest batch sent in one request.
        flush_interval: seconds a record waits at most for its batch to fill.
        timeout: seconds for one HTTP request.
        max_retries: retries of one batch before it is given up (`stats.failed`); None
            retries until the server answers or the client closes.
        backoff_base / max_backoff: the exponential backoff (seconds) between retries.
        max_retry_after: the longest `Retry-After` honoured (seconds).
        read_retries: retries of the read helpers on connection errors, 429, 502-504.
        log_interval: seconds between two log lines about the same problem.
        close_timeout: how long `close()` (and the exit hook) waits for delivery.
        on_rejected: called (in the sender thread) with a `Rejection` for every record
            refused as invalid.
        transport: an `httpx.BaseTransport` for every request (proxies, custom TLS, tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        agent: str | None = None,
        agent_version: str | None = None,
        max_buffer: int = 10_000,
        batch_size: int = 500,
        max_batch_bytes: int = 4 * 1024 * 1024,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        max_retries: int | None = None,
        backoff_base: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 300.0,
        read_retries: int = 3,
        log_interval: float = 60.0,
        close_timeout: float = 10.0,
        on_rejected: Callable[[Rejection], object] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self._token = token
        self._agent = agent
        self._agent_version = agent_version
        self.options = Options(
            max_buffer=max_buffer,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            flush_interval=flush_interval,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
            read_retries=read_retries,
            log_interval=log_interval,
            close_timeout=close_timeout,
        )
        self._transport = transport
        self._stats = Stats()
        self._limiter = LogLimiter(log_interval)
        self._delivery = Delivery(
            self.options, self._stats, self._limiter, self.base_url, on_rejected
        )
        self._buffer = Buffer(max_buffer, self._stats)
        self._cond = threading.Condition(self._buffer.lock)
        self._abort = threading.Event()
        self._worker: threading.Thread | None = None
        self._urgent = 0  # callers waiting in flush(): send partial batches at once
        self._closing = False
        self._closed = False
        self._reads_lock = threading.Lock()
        self._reads: httpx.Client | None = None
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Coachdesk({self.base_url!r}, agent={self._agent!r}, pending={self.pending})"

    # --- state ----------------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        """Delivery counters (`enqueued`, `acknowledged`, `rejected`, `dropped`, ...)."""
        return self._stats

    @property
    def pending(self) -> int:
        """Records buffered and not settled yet (queued or being sent)."""
        with self._cond:
            return self._buffer.pending

    @property
    def closed(self) -> bool:
        return self._closed

    # --- buffering ------------------------------------------------------------------------

    def _enqueue(self, kind: RecordKind, agent: str, external_id: str, body: bytes) -> bool:
        if self._closing:
            self._stats.add(dropped=1)
            self._log_dropped("the client is closed")
            return False
        with self._cond:
            accepted = self._buffer.put(kind, agent, external_id, body)
            queued = self._buffer.queued
            # Wake the sender for a full batch, and for a first record: asleep on an empty
            # buffer, it has no flush_interval timer running yet.
            if accepted and (queued == 1 or queued >= self.options.batch_size):
                self._cond.notify_all()
        if not accepted:
            self._log_dropped(f"the buffer is full ({self.options.max_buffer} records)")
            return False
        self._ensure_worker()
        return True

    def _ensure_worker(self) -> None:
        worker = self._worker
        if worker is not None and worker.is_alive():
            return
        with self._cond:
            if self._worker is not None and self._worker.is_alive():
                return
            thread = threading.Thread(target=self._run, name="coachdesk-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # e.g. at interpreter shutdown
                self._limiter(
                    "thread", logging.ERROR, "coachdesk: cannot start the sender: %s", exc
                )
                return
            self._worker = thread

    # --- the sender thread ----------------------------------------------------------------

    def _http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self._token}",
                "User-Agent": user_agent(),
            },
            timeout=self.options.timeout,
            transport=self._transport,
        )

    def _next_batch(self) -> list[Record] | None:
        """Waits for a batch worth sending; None when the sender should stop."""
        options = self.options
        with self._cond:
            while True:
                if self._abort.is_set():
                    return None
                wait = self._buffer.ready(
                    time.monotonic(),
                    options.batch_size,
                    options.flush_interval,
                    urgent=self._urgent > 0 or self._closing,
                )
                if wait == 0:
                    return self._buffer.take(options.batch_size, options.max_batch_bytes)
                if wait is None and self._closing:
                    return None
                self._cond.wait(wait)

    def _run(self) -> None:
        try:
            with self._http() as http:
                while True:
                    batch = self._next_batch()
                    if batch is None:
                        return
                    if batch:
                        self._deliver(http, batch)
        except Exception:
            log.exception("coachdesk: the sender stopped on an unexpected error")

    def _settle(self, records: list[Record]) -> None:
        with self._cond:
            self._buffer.settle(records)
            self._cond.notify_all()

    def _deliver(self, http: httpx.Client, batch: list[Record]) -> None:
        parts = [batch]
        while parts:
            part = parts.pop()
            attempt = 0
            while True:
                if self._abort.is_set():
                    self._settle(self._delivery.give_up(part, "the client was closed").settle)
                    break
                try:
                    action = self._attempt(http, part, attempt)
                except Exception as exc:  # a bug must not stop the thread or lose the count
                    log.exception("coachdesk: unexpected error while sending")
                    action = self._delivery.give_up(part, f"unexpected error: {exc!r}")
                if action.retry_in is None:
                    self._settle(action.settle)
                    parts.extend(reversed(action.resend))
                    break
                attempt += 1
                self._abort.wait(action.retry_in)

    def _attempt(self, http: httpx.Client, part: list[Record], attempt: int) -> Action:
        self._stats.add(requests=1)
        try:
            response = http.post(
                PATHS[part[0].kind],
                content=batch_body(part),
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            return self._delivery.transport_error(part, exc, attempt)
        return self._delivery.response(
            part, response.status_code, response.headers, response.content, attempt
        )

    # --- flush and close ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Sends what is buffered now (not waiting for full batches) and blocks until
        every buffered record is settled (acknowledged, rejected or given up) or `timeout`
        seconds passed (None: no limit). True when nothing is pending any more.

        Retries keep their backoff and the server's Retry-After: a flush during an outage
        waits for the server (or the timeout). Records logged meanwhile are waited for too.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._buffer.pending == 0:
                return True
            self._urgent += 1
            self._cond.notify_all()
        self._ensure_worker()
        try:
            with self._cond:
                while self._buffer.pending:
                    if self._worker is None or not self._worker.is_alive():
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    # Bounded waits: notice a sender that died without notifying.
                    self._cond.wait(1.0 if remaining is None else min(remaining, 1.0))
                return True
        finally:
            with self._cond:
                self._urgent -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Flushes for at most `timeout` seconds (default: the `close_timeout` option),
        then stops the sender: records still unsent are given up (`stats.failed`) and
        logged. Later `log_*` calls drop their records. True when everything was
        delivered. Closing twice is harmless."""
        if self._closed:
            return True
        timeout = self.options.close_timeout if timeout is None else timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        delivered = self.flush(timeout)
        self._abort.set()
        with self._cond:
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            # A request in flight ends within its own timeout.
            worker.join(self.options.timeout + 1)
        with self._cond:
            left = self._buffer.drain()
        if left:
            self._settle(self._delivery.give_up(left, "the client closed before delivery").settle)
        with self._reads_lock:
            if self._reads is not None:
                self._reads.close()
                self._reads = None
        self._closed = True
        _LIVE.discard(self)
        return delivered and not left

    def __enter__(self) -> Coachdesk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _after_fork(self) -> None:
        """In a child process: the sender thread did not survive the fork, and what the
        parent buffered is the parent's to send."""
        self._buffer.reset()
        # Locks another thread may have held at the fork would never be released here.
        self._stats._lock = threading.Lock()
        self._limiter._lock = threading.Lock()
        self._cond = threading.Condition(self._buffer.lock)
        self._abort = threading.Event()
        self._worker = None
        self._reads_lock = threading.Lock()
        self._reads = None
        self._urgent = 0

    # --- reads ----------------------------------------------------------------------------

    def _reads_client(self) -> httpx.Client:
        with self._reads_lock:
            if self._reads is None:
                self._reads = self._http()
            return self._reads

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """One read request with a few retries; raises ApiError for an error answer and
        ConnectionFailed when the server cannot be reached."""
        http = self._reads_client()
        attempt = 0
        while True:
            try:
                response = http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                delay = read_retry_delay(self._delivery, attempt, None, method)
                if delay is None:
                    raise ConnectionFailed(f"cannot reach {self.base_url}: {exc}") from exc
            else:
                if response.status_code < 400:
                    return response
                delay = read_retry_delay(self._delivery, attempt, response, method)
                if delay is None:
                    raise api_error(response)
            attempt += 1
            time.sleep(delay)

    def kpis(
        self,
        agent: str,
        start: date | str | None = None,
        end: date | str | None = None,
        version: str | None = None,
    ) -> list[KpiRow]:
        """Daily KPI rows of `agent` from `start` to `end` (inclusive UTC days; by default
        the 30 days up to today), over all versions or for `version`. Needs a token of
        an `ml` or `admin` user."""
        params = kpi_params(agent, start, end, version)
        data = self._request("GET", "/api/v1/kpis", params=params).json()
        return [parse_kpi_row(row) for row in data.get("rows", [])]

    def batch(self, batch_id: int) -> Batch:
        """A retraining batch's metadata: status, counts, sha256, manifest."""
        return parse_batch(self._request("GET", f"/api/v1/exports/{int(batch_id)}").json())

    def batches(
        self, agent: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Batch]:
        """Recent batches, newest first, optionally of one agent and / or status."""
        params: dict[str, Any] = {"limit": limit}
        if agent:
            params["agent"] = agent
        if status:
            params["status"] = status
        data = self._request("GET", "/api/v1/exports", params=params).json()
        return [parse_batch(b) for b in data.get("batches", [])]

    def request_batch(
        self,
        agent: str,
        format: str,
        *,
        new_only: bool = False,
        filters: Mapping[str, Any] | None = None,
        dataset: str | None = None,
    ) -> BatchRequest:
        """Asks for a retraining batch (built in the background); follow it with
        `batch(id)` until its status is `ready`, then `download_batch`."""
        body: dict[str, Any] = {"agent": agent, "format": format, "new_only": new_only}
        if filters is not None:
            body["filters"] = dict(filters)
        if dataset is not None:
            body["dataset"] = dataset
        return parse_batch_request(self._request("POST", "/api/v1/exports", json=body).json())

    def regression_set(
        self,
        agent: str,
        *,
        intent: str | None = None,
        domain: str | None = None,
        error_category: str | None = None,
        agent_version: str | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        page_size: int = 500,
    ) -> list[dict[str, Any]]:
        """The agent's regression set (held-out corrected and rejected items), every page:
        case objects with `id` (the case id to answer), `input`, `context`, `old_answer`,
        `reference` (empty for a rejected item), `error_category`, `intent`, `domain`,
        `agent_version`. Needs a token of an `ml` or `admin` user."""
        params = regression_set_params(
            intent=intent,
            domain=domain,
            error_category=error_category,
            agent_version=agent_version,
            date_from=date_from,
            date_to=date_to,
            page_size=page_size,
        )
        path = f"/api/v1/agents/{agent}/regression-set"
        cases: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "cursor": cursor} if cursor else params
            page = (self._request("GET", path, params=query)).json()
            cases.extend(page.get("cases", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return cases

    def regression_run(
        self,
        agent: str,
        version: str,
        answers: Any,
        *,
        label: str = "",
        filters: Mapping[str, Any] | None = None,
        chunk_size: int = 1000,
    ) -> dict[str, Any]:
        """Posts a version's answers to the regression set: `{case_id: answer}` or
        `(case_id, answer)` pairs. Sent in requests of `chunk_size` to the same run (version +
        label; idempotent, so calling it again stores nothing twice). Returns the summed
        `created`, `duplicates`, `matched`, `unchanged`, `routed`, the `errors` (index in
        `answers`, field, message) and the run's latest `summary`."""
        rows = regression_answers(answers)
        path = f"/api/v1/agents/{agent}/regression-runs"
        total: dict[str, Any] | None = None
        for start in range(0, max(len(rows), 1), max(1, chunk_size)):
            body: dict[str, Any] = {
                "version": version,
                "label": label,
                "answers": rows[start : start + chunk_size],
            }
            if filters is not None:
                body["filters"] = dict(filters)
            part = (self._request("POST", path, json=body)).json()
            total = merge_run_part(total, part, start)
        assert total is not None
        return total

    def regression_run_summary(self, run_id: int) -> dict[str, Any]:
        """A run's summary: fixed, still_wrong, worse, pending, total, share_fixed (value,
        low, high, n), sentence."""
        return (self._request("GET", f"/api/v1/regression-runs/{int(run_id)}")).json()  # type: ignore[no-any-return]

    def download_batch(self, batch_id: int, path: str | os.PathLike[str]) -> Path:
        """Streams a ready batch's file to `path` (a file, or an existing directory to
        put the server's file name in) and checks its sha256 against the batch's metadata.

        The file is written next to `path` under a temporary name and moved into place only
        when its checksum matches, so `path` never holds a partial or wrong file. Raises
        BatchNotReady, ChecksumMismatch, ApiError or ConnectionFailed. Returns the path.
        """
        meta = self.batch(batch_id)
        if not meta.ready:
            raise BatchNotReady(meta.id, meta.status, meta.failure_reason)
        target = Path(path)
        http = self._reads_client()
        try:
            with http.stream("GET", f"/api/v1/exports/{meta.id}/download") as response:
                if response.status_code >= 400:
                    response.read()
                    raise api_error(response)
                if target.is_dir():
                    name = download_name(response.headers.get("content-disposition"), meta.id)
                    target = target / name
                announced = response.headers.get("x-content-sha256")
                if announced and announced != meta.sha256:
                    raise ChecksumMismatch(meta.id, meta.sha256, announced)
                digest = hashlib.sha256()
                handle, temp_name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".part", dir=target.parent
                )
                temp = Path(temp_name)
                try:
                    with os.fdopen(handle, "wb") as out:
                        for chunk in response.iter_bytes(1024 * 1024):
                            digest.update(chunk)
                            out.write(chunk)
                    actual = digest.hexdigest()
                    if actual != meta.sha256:
                        raise ChecksumMismatch(meta.id, meta.sha256, actual)
                    os.replace(temp, target)
                except BaseException:
                    temp.unlink(missing_ok=True)
                    raise
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"download of batch {meta.id} failed: {exc}") from exc
        return target


def _close_all_at_exit() -> None:
    """The interpreter is exiting: deliver what every open client still holds, each for at
    most its `close_timeout`."""
    for client in list(_LIVE):
        try:
            pending = client.pending
            if not client.close() and pending:
                log.warning("coachdesk: exiting with records undelivered (stats: %r)", client.stats)
        except Exception:
            log.exception("coachdesk: flush at exit failed")


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._after_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
