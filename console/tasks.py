"""Celery tasks of the console: thin, idempotent, acknowledged late, retrying transient
database errors with backoff."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from console import services

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name="console.tasks.items_autoassign",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def items_autoassign() -> int:
    """Follow-up of an ingest batch that routed items of an auto-assigning agent (sent
    through the outbox). Idempotent: only unassigned items are touched."""
    return services.items_autoassign()
