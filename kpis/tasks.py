"""Celery tasks of the KPI app: thin and idempotent; arguments are ids, bodies call services.

Progress and outcomes live on our own rows (KpiRun, AlertDelivery), not in a result backend.
"""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from kpis import alerts, services, sla

# Periodic tasks retry a dropped database connection with backoff; they are idempotent.
_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 5,
}

log = logging.getLogger(__name__)


@shared_task(name="kpis.tasks.recompute", acks_late=True, **_RETRY)
def recompute() -> int | None:
    """Periodic (CELERY_BEAT_SCHEDULE["kpis.recompute"]): recomputes the days touched since
    the last run. Twice in a row is harmless: the second finds nothing new (and recomputes
    only today's backlog)."""
    run = services.run_scheduled()
    return run.pk if run else None


@shared_task(name="kpis.tasks.settle", acks_late=True, **_RETRY)
def settle() -> int:
    """Daily (CELERY_BEAT_SCHEDULE["kpis.settle"]): recomputes the last KPI_SETTLE_DAYS days."""
    return services.run_settle().pk


@shared_task(name="kpis.tasks.run_recompute", acks_late=True)
def run_recompute(run_id: int) -> str:
    """Executes a queued KpiRun (the "recompute now" button). A redelivered message finds the
    run already claimed and does nothing. A failure is recorded on the run (shown to the
    admin) and not retried here: the next periodic run covers the same days."""
    try:
        return services.run_execute(run_id=run_id).state
    except Exception:
        log.exception("KPI recompute run %s failed", run_id)
        return "failed"


@shared_task(name="kpis.tasks.deliver_alert", acks_late=True)
def deliver_alert(delivery_id: int) -> str | None:
    """First attempt of an alert webhook, sent after the alert's transaction commits.
    Retries are made by `deliver_due_alerts` (so they survive a worker restart)."""
    delivery = alerts.delivery_attempt(delivery_id=delivery_id)
    return delivery.state if delivery else None


@shared_task(name="kpis.tasks.deliver_due_alerts", acks_late=True, **_RETRY)
def deliver_due_alerts() -> int:
    """Periodic: retries the webhook deliveries whose backoff has passed."""
    return alerts.deliveries_retry_due()


@shared_task(name="kpis.tasks.sla_sweep", acks_late=True, **_RETRY)
def sla_sweep() -> dict[str, int]:
    """Periodic (CELERY_BEAT_SCHEDULE["kpis.sla-sweep"]): raises near / past-due items once
    per step, records each breach once and queues its alert."""
    return sla.sla_sweep()


@shared_task(name="kpis.tasks.sla_breach_alert", acks_late=True, **_RETRY)
def sla_breach_alert(breach_id: int) -> str | None:
    """A breach's e-mail to the leads (once) and its first webhook attempt; sent through
    the outbox after the sweep's commit. Webhook retries are made by the sweep."""
    breach = sla.breach_alert(breach_id=breach_id)
    return breach.webhook_state if breach else None


@shared_task(name="kpis.tasks.sla_digest", acks_late=True, **_RETRY)
def sla_digest() -> int:
    """Periodic (every 15 min): the leads' daily digests, once the digest hour has come;
    once per lead and day."""
    return sla.digests_send()
