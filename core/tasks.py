"""Celery tasks of the core app: thin, idempotent, acknowledged late."""

from celery import shared_task

from core import outbox


@shared_task(name="core.tasks.outbox_sweep", acks_late=True)
def outbox_sweep() -> dict[str, int]:
    """Periodic: publishes the outbox messages the broker missed while it was down."""
    return outbox.outbox_sweep()
