"""Celery tasks of the reviews app: thin, idempotent, arguments are ids.

Every task is acknowledged late (a worker killed mid-task leaves its message to be handed
out again) and retries transient database errors with backoff.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from reviews.services import leases_expire

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name="reviews.tasks.expire_leases",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    max_retries=5,
)
def expire_leases() -> int:
    """Periodic: returns items with an expired lease to their queue. Running it twice, or two
    workers at once, releases each item once (compare-and-swap in the service)."""
    return leases_expire()
