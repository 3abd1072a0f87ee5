"""Exceptions raised by the read helpers (`kpis`, `batch`, `download_batch`, ...).

The logging methods (`log_interaction`, `log_feedback`) never raise: what goes wrong with
them is counted in `client.stats` and logged on the `coachdesk` logger.
"""

from __future__ import annotations

from collections.abc import Mapping


class CoachdeskError(Exception):
    """Base class of every error this package raises."""


class ApiError(CoachdeskError):
    """The server answered with an error status.

    `status` is the HTTP status, `detail` the server's message and `errors` its field errors
    (`{"field": "message"}`, empty when the server gave none).
    """

    def __init__(self, status: int, detail: str, errors: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.errors: dict[str, str] = dict(errors or {})
        text = f"{status}: {detail}"
        if self.errors:
            text += " (" + "; ".join(f"{k}: {v}" for k, v in self.errors.items()) + ")"
        super().__init__(text)


class ConnectionFailed(CoachdeskError):
    """The server could not be reached (or stopped answering) after the read helper's
    retries; the underlying `httpx` exception is the `__cause__`."""


class BatchNotReady(CoachdeskError):
    """`download_batch` on a batch that is not `ready` (queued, building or failed)."""

    def __init__(self, batch_id: int, status: str, failure_reason: str = "") -> None:
        self.batch_id = batch_id
        self.status = status
        self.failure_reason = failure_reason
        why = f": {failure_reason}" if failure_reason else ""
        super().__init__(f"batch {batch_id} is {status}, not ready{why}")


class ChecksumMismatch(CoachdeskError):
    """The downloaded file's sha256 is not the one in the batch's metadata; nothing was
    written to the destination path."""

    def __init__(self, batch_id: int, expected: str, actual: str) -> None:
        self.batch_id = batch_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"batch {batch_id}: the downloaded file's sha256 is {actual}, "
            f"the batch's metadata says {expected}"
        )
