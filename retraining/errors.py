"""Domain errors of the retraining app; `str()` of each is a message for the user."""


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
