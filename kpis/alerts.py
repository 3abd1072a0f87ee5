"""Alerts on KPIs and their webhook deliveries (writes of the KPI app).

`alerts_evaluate` runs after every recompute (`services.kpis_recompute`): it compares each
KPI an agent has a threshold for, over the threshold's last days of stored all-versions
snapshots, and raises or resolves `Alert` rows. Every raise and resolve with a webhook URL
configured makes an `AlertDelivery` outbox row in the same transaction; the POST is sent
after commit (`tasks.deliver_alert`) and retried with backoff (`tasks.deliver_due_alerts`).
Kept apart from recompute and runs (`services.py`) as its own sub-concern with its own
states: an alert is raised once (an insert the partial unique constraint guards) and
resolved by a compare-and-swap update; a delivery goes pending → delivered | failed, each
attempt claimed by a compare-and-swap on its attempt count.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import Agent
from core.outbox import outbox_enqueue
from core.transitions import StateMachine, transition
from kpis.definitions import ALL_VERSIONS, BY_KEY, combine, threshold_crossed
from kpis.models import Alert, AlertDelivery, KpiSnapshot
from kpis.periods import period_medians, utc_day

log = logging.getLogger(__name__)


# --- alerts -------------------------------------------------------------------------------------


def period_value(agent_id: int, kpi_key: str, first: date, last: date):
    """A KPI over an inclusive date range of the all-versions rows."""
    rows = KpiSnapshot.objects.filter(
        agent_id=agent_id, agent_version=ALL_VERSIONS, date__gte=first, date__lte=last
    ).order_by("date")
    medians = None
    if kpi_key == "median_time_to_review":
        medians = period_medians(agent_id, {"p": (first, last)}).get(("p", ALL_VERSIONS))
    stats = combine((r.stats for r in rows), across="days", medians=medians)
    return BY_KEY[kpi_key].of(stats)


def alerts_evaluate(*, agent: Agent, now: datetime | None = None) -> tuple[int, int]:
    """Raises an alert for each KPI of the agent past its threshold (once: the partial
    unique constraint allows one open alert per agent and KPI) and resolves open alerts
    whose KPI recovered, or whose threshold was removed. Returns (raised, resolved).

    A KPI without enough data (fewer than `min_n`) changes nothing: an open alert stays open.
    """
    now = now or timezone.now()
    today = utc_day(now)
    thresholds = agent.alert_thresholds if isinstance(agent.alert_thresholds, dict) else {}
    open_alerts = {a.kpi: a for a in Alert.objects.filter(agent=agent, resolved_at__isnull=True)}
    raised = resolved = 0
    for kpi_key, spec in thresholds.items():
        if kpi_key not in BY_KEY or not isinstance(spec, dict):
            log.warning("agent %s: ignoring alert threshold %r", agent.slug, kpi_key)
            continue
        days = int(spec.get("days", 7))
        value = period_value(agent.pk, kpi_key, today - timedelta(days=days - 1), today)
        crossed = threshold_crossed(spec, value)
        current = open_alerts.get(kpi_key)
        if crossed and current is None:
            raised += int(_alert_raise(agent, kpi_key, spec, value))
        elif crossed is False and current is not None:
            resolved += int(_alert_resolve(current, value.value, now=now))
    for kpi_key, current in open_alerts.items():
        if kpi_key not in thresholds:
            resolved += int(_alert_resolve(current, None, now=now))
    return raised, resolved


def _alert_raise(agent: Agent, kpi_key: str, spec: dict, value) -> bool:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                agent=agent, kpi=kpi_key, threshold=spec, value=value.value, n=value.n
            )
            _delivery_create(alert, AlertDelivery.Event.RAISED)
    except IntegrityError:  # a concurrent run raised it first
        return False
    return True


def _alert_resolve(alert: Alert, value: float | None, *, now: datetime) -> bool:
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
            resolved_at=now, resolved_value=value
        )
        if updated:
            alert.resolved_at, alert.resolved_value = now, value
            _delivery_create(alert, AlertDelivery.Event.RESOLVED)
    return bool(updated)


# --- webhook deliveries -------------------------------------------------------------------------


def alert_payload(alert: Alert, event: str) -> dict[str, Any]:
    kpi = BY_KEY.get(alert.kpi)
    label = kpi.label if kpi else alert.kpi
    bound = "below" if "below" in alert.threshold else "above"
    value = alert.value if event == AlertDelivery.Event.RAISED else alert.resolved_value
    shown = "n/a" if value is None else (f"{value:.3g}")
    text = (
        f"[Coachdesk] {alert.agent.slug}: {label} {shown} is {bound} "
        f"{alert.threshold.get(bound)} over {alert.threshold.get('days', 7)} days"
        if event == AlertDelivery.Event.RAISED
        else f"[Coachdesk] {alert.agent.slug}: {label} recovered ({shown})"
    )
    return {
        "event": f"alert.{event}",
        "alert_id": alert.pk,
        "agent": alert.agent.slug,
        "kpi": alert.kpi,
        "label": label,
        "threshold": alert.threshold,
        "value": alert.value,
        "n": alert.n,
        "resolved_value": alert.resolved_value,
        "raised_at": alert.raised_at.isoformat() if alert.raised_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "text": text,
    }


def _delivery_create(alert: Alert, event: str) -> AlertDelivery | None:
    """The outbox row of a webhook POST, in the caller's transaction; sent after commit."""
    url = settings.KPI_ALERT_WEBHOOK_URL
    if not url:
        return None
    delivery = AlertDelivery.objects.create(
        alert=alert,
        event=event,
        url=url,
        payload=alert_payload(alert, event),
        next_attempt_at=timezone.now(),
    )
    outbox_enqueue("kpis.tasks.deliver_alert", delivery.pk)
    return delivery


class Transient(Exception):
    """A failure worth retrying: timeouts, connection errors, 408, 429 and 5xx answers."""


def webhook_post(url: str, payload: dict, *, idempotency_key: str) -> int:
    """POSTs `payload` as JSON; returns the answer's status, or raises Transient. Receivers
    may drop repeats by `idempotency_key`: a delivery is retried until acknowledged."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 (the URL is the operator's setting)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Coachdesk-alerts/1",
            "Idempotency-Key": idempotency_key,
        },
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=settings.KPI_ALERT_WEBHOOK_TIMEOUT
        ) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        if exc.code in (408, 429) or exc.code >= 500:
            raise Transient(f"HTTP {exc.code}") from exc
        return exc.code
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise Transient(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc


class DeliveryConflict(Exception):
    """The delivery moved on (a later attempt) while this one was being sent."""


DELIVERY_STATES = StateMachine(
    model=AlertDelivery,
    target_type="alert_delivery",
    status_field="state",
    moves={
        (AlertDelivery.State.PENDING, AlertDelivery.State.PENDING): "delivery.retry_scheduled",
        (AlertDelivery.State.PENDING, AlertDelivery.State.DELIVERED): "delivery.delivered",
        (AlertDelivery.State.PENDING, AlertDelivery.State.FAILED): "delivery.failed",
    },
    conflict=DeliveryConflict,
    conflict_message="This delivery changed in the meantime.",
)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=settings.KPI_ALERT_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempts - 1))


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> AlertDelivery | None:
    """One POST of a pending delivery that is due. The claim is a compare-and-swap on the
    attempt count that also pushes `next_attempt_at` past the request timeout, so two workers
    never send the same attempt. 2xx: delivered; other 4xx: failed (retrying will not help);
    timeouts, connection errors, 408, 429, 5xx: retried with exponential backoff until
    KPI_ALERT_WEBHOOK_ATTEMPTS attempts were made. Returns the delivery (None if not due)."""
    now = now or timezone.now()
    delivery = AlertDelivery.objects.filter(
        pk=delivery_id, state=AlertDelivery.State.PENDING, next_attempt_at__lte=now
    ).first()
    if delivery is None:
        return None
    attempts = delivery.attempts + 1
    lease = now + timedelta(seconds=settings.KPI_ALERT_WEBHOOK_TIMEOUT * 2 + 5)
    claimed = AlertDelivery.objects.filter(
        pk=delivery.pk, state=AlertDelivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=attempts, next_attempt_at=lease)
    if not claimed:
        return None
    key = f"coachdesk-alert-delivery-{delivery.pk}"
    sent = webhook_attempt(delivery.url, delivery.payload, idempotency_key=key, attempts=attempts)
    changes = {
        "last_status": sent.status,
        "last_error": sent.error,
        "delivered_at": sent.delivered_at,
        "next_attempt_at": sent.next_at,
    }
    try:
        with transaction.atomic():
            # Guarded by the attempt this worker claimed: a later attempt's outcome wins.
            transition(
                DELIVERY_STATES, delivery, sent.state, guard={"attempts": attempts}, changes=changes
            )
    except DeliveryConflict:
        pass
    delivery.refresh_from_db()
    return delivery


@dataclass(frozen=True)
class Attempt:
    """What one POST of a webhook came to: the state its delivery moves to ("delivered";
    "failed": a 4xx other than 408/429, or out of attempts; "pending": retried at
    `next_at`), the answer's status and the error, when there is one."""

    state: str
    status: int | None
    error: str
    next_at: datetime | None = None
    delivered_at: datetime | None = None


def webhook_attempt(url: str, payload: dict, *, idempotency_key: str, attempts: int) -> Attempt:
    """POSTs the payload, as attempt number `attempts` (already claimed by the caller), and
    classifies the outcome with the retry rules every webhook here follows: 2xx delivered;
    other 4xx failed; timeouts, connection errors, 408, 429 and 5xx retried with exponential
    backoff until KPI_ALERT_WEBHOOK_ATTEMPTS attempts were made."""
    try:
        code = webhook_post(url, payload, idempotency_key=idempotency_key)
    except Transient as exc:
        if attempts >= settings.KPI_ALERT_WEBHOOK_ATTEMPTS:
            return Attempt("failed", status_of(exc), str(exc)[:1000])
        return Attempt(
            "pending", status_of(exc), str(exc)[:1000], timezone.now() + _backoff(attempts)
        )
    if 200 <= code < 300:
        return Attempt("delivered", code, "", delivered_at=timezone.now())
    return Attempt("failed", code, f"HTTP {code}")


def status_of(exc: Transient) -> int | None:
    text = str(exc)
    return int(text[5:8]) if text.startswith("HTTP ") and text[5:8].isdigit() else None


def deliveries_due(*, now: datetime | None = None) -> list[int]:
    """Ids of pending deliveries whose next attempt is due (the periodic retry sweep)."""
    now = now or timezone.now()
    return list(
        AlertDelivery.objects.filter(state=AlertDelivery.State.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:100]
    )


def deliveries_retry_due() -> int:
    """Attempts every due delivery now; returns how many were attempted."""
    attempted = 0
    for delivery_id in deliveries_due():
        if delivery_attempt(delivery_id=delivery_id) is not None:
            attempted += 1
    return attempted
