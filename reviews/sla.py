"""Review deadlines: the escalation of items close to or past their due time (writes).

`items_escalate` is the sweep's body (kpis.sla.sla_sweep runs it every SLA_SWEEP_SECONDS):

1. "near": open items whose `sla_near_at` has passed and that were not raised yet get
   `priority + SLA_NEAR_BOOST` and `sla_level = 1`;
2. "breached": open items past `due_at` not breached yet get `priority + SLA_BREACH_BOOST`,
   `sla_level = 2` and one `SlaBreach` row each.

Each step is one set-based UPDATE whose WHERE names the level it moves from, so it is
idempotent and safe with two workers: PostgreSQL re-checks the WHERE of a row another
transaction changed meanwhile, and the second sweep matches nothing. An item past due that
was never raised takes both steps in one sweep (its priority ends the same either way).
`SlaBreach.item` is unique too, so a breach can never be recorded twice.

Priority is not a status (core.transitions does not apply), and the item's `version` is
left alone: a priority change must not invalidate the page a reviewer is deciding on. Each
change is still audited (`item.sla_near`, `item.sla_breached`), like the console's
priority changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from core import statements
from core.audit import audit_event, audit_record, audit_records
from reviews.models import Deadline, ReviewItem, SlaBreach
from reviews.services import ITEM_STATES

Level = ReviewItem.SlaLevel
_RETURNS = ("id", "priority", "agent_id", "domain", "due_at")


@dataclass
class Escalation:
    near: int = 0
    breached: int = 0
    breach_ids: list[int] = field(default_factory=list)


def _open() -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(status__in=ReviewItem.SLA_OPEN_STATUSES)


def _raise(rows: QuerySet[ReviewItem], *, level: int, boost: int, now: datetime) -> list[tuple]:
    """Raises `rows` to `level` (priority + boost) in one UPDATE; returns the moved rows as
    (_RETURNS) tuples. `rows` must filter on the level it moves from."""
    values: dict[str, Any] = {
        "priority": F("priority") + boost,
        "sla_level": level,
        "updated_at": now,
    }
    if statements.supported(rows.db):
        sql, params = statements.update_sql(rows, values)
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {', '.join(_RETURNS)}", params)
            return cursor.fetchall()
    # Other databases (SQLite: writers are serialised): select, then the same guarded UPDATE.
    moved = list(rows.values_list(*_RETURNS))
    rows.filter(pk__in=[r[0] for r in moved]).update(**values)
    return [(pk, priority + boost, *rest) for pk, priority, *rest in moved]


def _audit(rows: Iterable[tuple], *, action: str, boost: int, level: int) -> None:
    audit_records(
        audit_event(
            action=action,
            target_type=ITEM_STATES.target_type,
            target_id=pk,
            before={"priority": priority - boost, "sla_level": level - 1},
            after={"priority": priority, "sla_level": level, "due_at": due_at},
        )
        for pk, priority, _agent, _domain, due_at in rows
    )


@transaction.atomic
def items_escalate(*, now: datetime | None = None) -> Escalation:
    """One sweep: raises near-due items, then breaches past-due ones and records their
    `SlaBreach` rows (webhook pending when SLA_ALERT_WEBHOOK_URL is set). Returns counts
    and the new breaches' ids, for the caller to enqueue their alerts in this transaction.
    Items decided (done) before their due time are never touched."""
    now = now or timezone.now()
    result = Escalation()
    near_boost, breach_boost = settings.SLA_NEAR_BOOST, settings.SLA_BREACH_BOOST
    near = _raise(
        _open().filter(sla_level=Level.NONE, sla_near_at__lte=now),
        level=Level.NEAR,
        boost=near_boost,
        now=now,
    )
    _audit(near, action="item.sla_near", boost=near_boost, level=Level.NEAR)
    result.near = len(near)
    breached = _raise(
        _open().filter(sla_level=Level.NEAR, due_at__lte=now),
        level=Level.BREACHED,
        boost=breach_boost,
        now=now,
    )
    _audit(breached, action="item.sla_breached", boost=breach_boost, level=Level.BREACHED)
    result.breached = len(breached)
    if breached:
        result.breach_ids = _breaches_record(breached, now=now)
    return result


def _breaches_record(rows: list[tuple], *, now: datetime) -> list[int]:
    webhook = bool(settings.SLA_ALERT_WEBHOOK_URL)
    state = SlaBreach.WebhookState.PENDING if webhook else SlaBreach.WebhookState.NONE
    SlaBreach.objects.bulk_create(
        [
            SlaBreach(
                item_id=pk,
                agent_id=agent_id,
                domain=domain,
                due_at=due_at,
                breached_at=now,
                webhook_state=state,
                webhook_next_at=now if webhook else None,
            )
            for pk, _priority, agent_id, domain, due_at in rows
        ],
        batch_size=2000,
        ignore_conflicts=True,  # one breach per item, ever (SlaBreach.item is unique)
    )
    ids = [r[0] for r in rows]
    return list(
        SlaBreach.objects.filter(item_id__in=ids, breached_at=now)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


# --- deadline rules (set by admins in the console) ----------------------------------------------


@transaction.atomic
def deadline_set(
    *, agent_id: int | None, domain: str, hours: float, working_hours: bool, actor: Any
) -> Deadline:
    """Creates or replaces the deadline of one scope (agent, domain, or both) and audits it.
    Applies to items routed from now on; items already queued keep their due time."""
    domain = domain.strip()
    if agent_id is None and not domain:
        raise ValueError("a deadline needs an agent, a domain or both")
    # agent_id None is the domain-wide rule (agent IS NULL).
    scope: dict[str, Any] = {"agent_id": agent_id, "domain": domain}
    before = Deadline.objects.filter(**scope).first()
    rule, _ = Deadline.objects.update_or_create(
        **scope,
        defaults={"hours": float(hours), "working_hours": working_hours, "updated_by": actor},
    )
    audit_record(
        actor=actor,
        action="deadline.set",
        target_type="deadline",
        target_id=rule.pk,
        before={"hours": before.hours, "working_hours": before.working_hours} if before else {},
        after={
            "agent": agent_id,
            "domain": domain,
            "hours": float(rule.hours),
            "working_hours": working_hours,
        },
    )
    return rule


@transaction.atomic
def deadline_remove(*, deadline_id: int, actor: Any) -> bool:
    rule = Deadline.objects.select_for_update().filter(pk=deadline_id).order_by("pk").first()
    if rule is None:
        return False
    audit_record(
        actor=actor,
        action="deadline.removed",
        target_type="deadline",
        target_id=rule.pk,
        before={
            "agent": rule.agent_id,
            "domain": rule.domain,
            "hours": rule.hours,
            "working_hours": rule.working_hours,
        },
    )
    rule.delete()
    return True
