"""Domain errors of the retraining app; `str()` of each is a message for the user."""

from django.db import OperationalError


class ExportError(Exception):
    """Base of the domain errors; `str()` is a message for the user."""


class Conflict(ExportError):
    """The batch is not in the state the caller expected."""


class LeaseLost(Conflict):
    """Another builder took this batch over (this one was presumed dead)."""


class InvalidRequest(ExportError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class BatchExists(ExportError):
    """An identical batch (same request, same rows) is already ready, queued or building:
    `batch` is offered instead of building the same file again."""

    def __init__(self, batch) -> None:
        super().__init__(f"An identical batch (#{batch.pk}, {batch.status}) already exists.")
        self.batch = batch


class TooManyActive(ExportError):
    """The requester already has as many batches (or rows) queued or building as allowed."""


class NothingToExport(ExportError):
    """A build found no rows: it fails with this reason instead of a 0-row `ready` batch."""


class StaleRead(OperationalError):
    """The rows streamed for a build were fewer than it selected: read from a replica that
    had not replayed the selection yet. Transient: the build is put back and retried."""
