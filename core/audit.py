"""The audit log's one writer: every state change of the project is recorded through here.

`audit_record` writes one event in the caller's transaction (so the log never claims a change
that was rolled back); `audit_records` writes many in one statement (bulk console actions).
Values are stored as JSON: instances become their pk, dates and times ISO 8601 text.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from core.models import AuditEvent


def plain(value: Any) -> Any:
    """A JSON-storable form of a value the services pass around."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "pk"):
        return value.pk
    return value


def _plain_map(values: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: plain(v) for k, v in (values or {}).items()}


def audit_event(
    *,
    actor: Any = None,
    actor_id: int | None = None,
    action: str,
    target_type: str,
    target_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """An unsaved event (for `audit_records`). `actor` is a user, or give `actor_id`."""
    return AuditEvent(
        actor_id=actor.pk if actor is not None else actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=_plain_map(before),
        after=_plain_map(after),
    )


def audit_record(
    *,
    actor: Any = None,
    actor_id: int | None = None,
    action: str,
    target_type: str,
    target_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Writes one audit event now, in the caller's transaction."""
    event = audit_event(
        actor=actor,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
    )
    event.save(force_insert=True)
    return event


def audit_records(events: Iterable[AuditEvent]) -> int:
    """Writes many events made by `audit_event` in as few statements as possible."""
    return len(AuditEvent.objects.bulk_create(list(events), batch_size=5000))
