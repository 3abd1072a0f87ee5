"""`AsyncCoachdesk`: the asyncio client, with a background sender task."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
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


class AsyncCoachdesk(LoggingMixin):
    """Client of a Coachdesk server for asyncio applications.

    ```python
    async with AsyncCoachdesk("https://coachdesk.example.com", "cd_...", agent="bot") as cd:
        iid = cd.log_interaction(input="Hi", output="Hello!", confidence=0.9)
        cd.log_feedback(iid, "thumbs_up")
    ```

    The same options and guarantees as `Coachdesk`, but the sender is an asyncio task of
    the running event loop. `log_interaction` / `log_feedback` are plain (not `async`)
    methods that never block or raise; call them from the event loop's thread. The task
    starts with the first record logged inside a running loop (or `async with`, or
    `flush()`). There is no exit hook: an event loop cannot run at interpreter exit, so
    use `async with` or `await client.close()` before the loop ends. `flush`, `close` and
    the read helpers are coroutines. `transport` is an `httpx.AsyncBaseTransport`.
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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._lock = self._buffer.lock  # log_* may be called from another thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._abort = asyncio.Event()
        self._urgent = 0
        self._closing = False
        self._closed = False
        self._reads: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"AsyncCoachdesk({self.base_url!r}, agent={self._agent!r}, pending={self.pending})"

    @property
    def stats(self) -> Stats:
        """Delivery counters (`enqueued`, `acknowledged`, `rejected`, `dropped`, ...)."""
        return self._stats

    @property
    def pending(self) -> int:
        """Records buffered and not settled yet (queued or being sent)."""
        with self._lock:
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
        with self._lock:
            accepted = self._buffer.put(kind, agent, external_id, body)
            queued = self._buffer.queued
        if not accepted:
            self._log_dropped(f"the buffer is full ({self.options.max_buffer} records)")
            return False
        self._ensure_task()
        # A full batch, or a first record (the sender waits without a timer on an empty
        # buffer).
        if queued == 1 or queued >= self.options.batch_size:
            self._signal(self._wake)
        return True

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def _ensure_task(self) -> None:
        """Starts the sender in the running loop unless one runs already."""
        task, loop = self._task, self._loop
        if task is not None and not task.done() and loop is not None and not loop.is_closed():
            return
        running = self._running_loop()
        if running is None:
            return  # started by the next call made inside a loop
        if task is not None and not task.done():
            # Its loop closed under it: what it was sending is lost.
            with self._lock:
                lost = self._buffer.abandon()
            if lost:
                self._settle_now(self._delivery.give_up(lost, "the event loop closed").settle)
        self._loop = running
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._abort = asyncio.Event()
        self._task = running.create_task(self._run(), name="coachdesk-sender")

    def _signal(self, event: asyncio.Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._running_loop() is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    # --- the sender task ------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self._token}",
                "User-Agent": user_agent(),
            },
            timeout=self.options.timeout,
            transport=self._transport,
        )

    async def _run(self) -> None:
        options = self.options
        try:
            async with self._http() as http:
                while True:
                    self._wake.clear()
                    with self._lock:
                        if self._abort.is_set():
                            return
                        wait = self._buffer.ready(
                            time.monotonic(),
                            options.batch_size,
                            options.flush_interval,
                            urgent=self._urgent > 0 or self._closing,
                        )
                        batch = (
                            self._buffer.take(options.batch_size, options.max_batch_bytes)
                            if wait == 0
                            else []
                        )
                    if batch:
                        await self._deliver(http, batch)
                        continue
                    if wait is None and self._closing:
                        return
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("coachdesk: the sender stopped on an unexpected error")
        finally:
            self._progress.set()

    def _settle_now(self, records: list[Record]) -> None:
        with self._lock:
            self._buffer.settle(records)
        self._progress.set()

    async def _deliver(self, http: httpx.AsyncClient, batch: list[Record]) -> None:
        parts = [batch]
        while parts:
            part = parts.pop()
            attempt = 0
            while True:
                if self._abort.is_set():
                    self._settle_now(self._delivery.give_up(part, "the client was closed").settle)
                    break
                try:
                    action = await self._attempt(http, part, attempt)
                except Exception as exc:
                    log.exception("coachdesk: unexpected error while sending")
                    action = self._delivery.give_up(part, f"unexpected error: {exc!r}")
                if action.retry_in is None:
                    self._settle_now(action.settle)
                    parts.extend(reversed(action.resend))
                    break
                attempt += 1
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._abort.wait(), action.retry_in)

    async def _attempt(self, http: httpx.AsyncClient, part: list[Record], attempt: int) -> Action:
        self._stats.add(requests=1)
        try:
            response = await http.post(
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

    async def flush(self, timeout: float | None = None) -> bool:
        """Sends what is buffered now and waits until every buffered record is settled
        (acknowledged, rejected or given up) or `timeout` seconds passed (None: no limit).
        True when nothing is pending any more."""
        with self._lock:
            if self._buffer.pending == 0:
                return True
        self._ensure_task()
        task = self._task
        if task is None:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._loop is not asyncio.get_running_loop():
            return await self._poll_until_idle(deadline)
        self._urgent += 1
        self._wake.set()
        try:
            while True:
                self._progress.clear()
                if self.pending == 0:
                    return True
                if task.done():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), remaining)
        finally:
            self._urgent -= 1

    async def _poll_until_idle(self, deadline: float | None) -> bool:
        """flush() from another event loop than the sender's: its events are not ours."""
        self._signal(self._wake)
        while self.pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self, timeout: float | None = None) -> bool:
        """Flushes for at most `timeout` seconds (default: the `close_timeout` option),
        then stops the sender: records still unsent are given up (`stats.failed`) and
        logged. Later `log_*` calls drop their records. True when everything was delivered.
        Closing twice is harmless."""
        if self._closed:
            return True
        timeout = self.options.close_timeout if timeout is None else timeout
        self._closing = True
        self._signal(self._wake)
        delivered = await self.flush(timeout)
        self._signal(self._abort)
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            try:
                await asyncio.wait_for(asyncio.shield(task), self.options.timeout + 1)
            except asyncio.TimeoutError:
                task.cancel()
                await asyncio.wait({task})  # unlike `await task`, raises nothing
        with self._lock:
            left = self._buffer.drain()
            if task is None or task.done():
                left += [r for r in self._buffer.abandon() if r not in left]
        if left:
            self._settle_now(
                self._delivery.give_up(left, "the client closed before delivery").settle
            )
        if self._reads is not None:
            await self._reads.aclose()
            self._reads = None
        self._closed = True
        return delivered and not left

    aclose = close

    async def __aenter__(self) -> AsyncCoachdesk:
        self._ensure_task()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- reads ----------------------------------------------------------------------------

    def _reads_client(self) -> httpx.AsyncClient:
        if self._reads is None:
            self._reads = self._http()
        return self._reads

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        http = self._reads_client()
        attempt = 0
        while True:
            try:
                response = await http.request(method, path, params=params, json=json)
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
            await asyncio.sleep(delay)

    async def kpis(
        self,
        agent: str,
        start: date | str | None = None,
        end: date | str | None = None,
        version: str | None = None,
    ) -> list[KpiRow]:
        """Daily KPI rows of `agent` (see `Coachdesk.kpis`)."""
        params = kpi_params(agent, start, end, version)
        data = (await self._request("GET", "/api/v1/kpis", params=params)).json()
        return [parse_kpi_row(row) for row in data.get("rows", [])]

    async def batch(self, batch_id: int) -> Batch:
        """A retraining batch's metadata: status, counts, sha256, manifest."""
        response = await self._request("GET", f"/api/v1/exports/{int(batch_id)}")
        return parse_batch(response.json())

    async def batches(
        self, agent: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[Batch]:
        """Recent batches, newest first, optionally of one agent and / or status."""
        params: dict[str, Any] = {"limit": limit}
        if agent:
            params["agent"] = agent
        if status:
            params["status"] = status
        data = (await self._request("GET", "/api/v1/exports", params=params)).json()
        return [parse_batch(b) for b in data.get("batches", [])]

    async def request_batch(
        self,
        agent: str,
        format: str,
        *,
        new_only: bool = False,
        filters: Mapping[str, Any] | None = None,
        dataset: str | None = None,
    ) -> BatchRequest:
        """Asks for a retraining batch (see `Coachdesk.request_batch`)."""
        body: dict[str, Any] = {"agent": agent, "format": format, "new_only": new_only}
        if filters is not None:
            body["filters"] = dict(filters)
        if dataset is not None:
            body["dataset"] = dataset
        response = await self._request("POST", "/api/v1/exports", json=body)
        return parse_batch_request(response.json())

    async def regression_set(
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
            page = (await self._request("GET", path, params=query)).json()
            cases.extend(page.get("cases", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return cases

    async def regression_run(
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
            part = (await self._request("POST", path, json=body)).json()
            total = merge_run_part(total, part, start)
        assert total is not None
        return total

    async def regression_run_summary(self, run_id: int) -> dict[str, Any]:
        """A run's summary: fixed, still_wrong, worse, pending, total, share_fixed (value,
        low, high, n), sentence."""
        return (await self._request("GET", f"/api/v1/regression-runs/{int(run_id)}")).json()  # type: ignore[no-any-return]

    async def download_batch(self, batch_id: int, path: str | os.PathLike[str]) -> Path:
        """Streams a ready batch's file to `path` and checks its sha256 (see
        `Coachdesk.download_batch`)."""
        meta = await self.batch(batch_id)
        if not meta.ready:
            raise BatchNotReady(meta.id, meta.status, meta.failure_reason)
        target = Path(path)
        http = self._reads_client()
        try:
            async with http.stream("GET", f"/api/v1/exports/{meta.id}/download") as response:
                if response.status_code >= 400:
                    await response.aread()
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
                        async for chunk in response.aiter_bytes(1024 * 1024):
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
