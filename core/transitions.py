"""The one way a status changes: a compare-and-swap UPDATE and its audit event, together.

Each app that owns a state machine declares it as data (a `StateMachine`: the model, the
allowed `(from, to)` moves with the action name the audit log records, the error to raise
when someone else moved the row first) and calls `transition` from its services, inside
the caller's transaction. No other code assigns a status field (a test enforces it).

The UPDATE is guarded by the status the caller believes the row is in (and optional extra
conditions, e.g. "the lease has still expired"), so two workers, two reviewers or a retry
can never both win: the loser matches zero rows and gets the machine's conflict error.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import F, Model
from django.utils import timezone

from core import statements
from core.audit import audit_event, plain


@dataclass(frozen=True)
class StateMachine:
    """The states of one model. `moves` maps (from, to) to the audit action.

    `version_field` is bumped on every move (a page rendered at version N cannot act on
    version N+1); `touched_field` gets the time of the move; `audited_fields` are recorded in
    the event's `before` (name in the log → attribute); `audit_changes` puts the changed
    fields in `after` too.
    """

    model: type[Model]
    target_type: str
    moves: Mapping[tuple[str, str], str]
    conflict: type[Exception]
    conflict_message: str
    status_field: str = "status"
    version_field: str | None = None
    touched_field: str | None = None
    audited_fields: Mapping[str, str] = field(default_factory=dict)
    audit_changes: bool = False

    def action(self, expect: tuple[str, ...], to: str) -> str:
        """The audit action of moving from any of `expect` to `to`; ValueError when a
        move is not allowed (or the moves would be recorded differently)."""
        actions = {self.moves.get((status, to)) for status in expect}
        if None in actions or len(actions) != 1:
            raise ValueError(f"transition {expect} → {to} is not allowed")
        return actions.pop()  # type: ignore[return-value]


def transition(
    machine: StateMachine,
    obj: Model,
    to: str,
    *,
    actor: Any = None,
    expect: tuple[str, ...] | None = None,
    guard: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
    note: Mapping[str, Any] | None = None,
) -> str:
    """Moves `obj` to status `to` and records it; returns the audit action.

    `expect`: the statuses the caller believes `obj` is in (default: its current status).
    `guard`: extra conditions of the compare-and-swap. `changes`: other fields written by
    the same UPDATE (expressions allowed; plain values are mirrored on `obj`). `note`: extra
    facts for the event's `after`. Raises `machine.conflict` when no row matched, ValueError
    for a move the machine does not allow. Call it inside a transaction: the UPDATE and
    the event commit together.
    """
    current = getattr(obj, machine.status_field)
    expect = expect or (current,)
    action = machine.action(expect, to)
    changes = dict(changes or {})
    values: dict[str, Any] = {machine.status_field: to, **changes}
    now = timezone.now()
    if machine.version_field:
        values[machine.version_field] = F(machine.version_field) + 1
    if machine.touched_field:
        values[machine.touched_field] = now
    rows = machine.model._base_manager.filter(
        pk=obj.pk, **{f"{machine.status_field}__in": expect}, **(guard or {})
    )
    before = {machine.status_field: current}
    before.update({name: getattr(obj, attr) for name, attr in machine.audited_fields.items()})
    after = {machine.status_field: to}
    if machine.audit_changes:
        after.update({k: plain(v) for k, v in changes.items()})
    after.update(note or {})
    event = audit_event(
        actor=actor,
        action=action,
        target_type=machine.target_type,
        target_id=obj.pk,
        before=before,
        after=after,
    )
    if statements.supported(rows.db):
        # The move and its event in one round trip: the event is inserted once per row
        # the guarded UPDATE moved, that is once or (a lost race) not at all.
        update, update_params = statements.update_sql(rows, values)
        insert, insert_params = statements.insert_from(event, "moved")
        with connections[rows.db].cursor() as cursor:
            cursor.execute(
                f"WITH moved AS ({update} RETURNING 1) {insert} RETURNING 1",
                (*update_params, *insert_params),
            )
            moved = cursor.rowcount
    else:
        moved = rows.update(**values)
        if moved:
            event.save(force_insert=True)
    if not moved:
        raise machine.conflict(machine.conflict_message)
    setattr(obj, machine.status_field, to)
    if machine.version_field:
        setattr(obj, machine.version_field, getattr(obj, machine.version_field) + 1)
    if machine.touched_field:
        setattr(obj, machine.touched_field, now)
    for name, value in changes.items():
        if not hasattr(value, "resolve_expression"):
            setattr(obj, name, value)
    return action
