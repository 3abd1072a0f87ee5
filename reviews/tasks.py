"""Celery tasks of the reviews app: thin, idempotent, arguments are ids."""

from celery import shared_task

from reviews.services import leases_expire


@shared_task(name="reviews.tasks.expire_leases", acks_late=True)
def expire_leases() -> int:
    """Periodic: returns items with an expired lease to their queue. Running it twice, or two
    workers at once, releases each item once (compare-and-swap in the service)."""
    return leases_expire()
