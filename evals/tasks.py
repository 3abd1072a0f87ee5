"""Celery tasks of the evals app: thin, idempotent, acknowledged late (as reviews/tasks.py)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from evals.claims import comparison_leases_expire

TRANSIENT = (OperationalError, InterfaceError)


@shared_task(
    name="evals.tasks.expire_comparison_leases",
    acks_late=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    max_retries=5,
)
def expire_comparison_leases() -> int:
    """Periodic: returns comparisons with an expired lease to their queue. Running it twice,
    or two workers at once, releases each comparison once (compare-and-swap in the service)."""
    return comparison_leases_expire()
