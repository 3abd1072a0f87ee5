"""Celery tasks of the retraining app: thin, idempotent, arguments are ids.

`acks_late` is safe because a build is idempotent: a task redelivered after its worker died
finds the batch building under an expired lease and takes it over, or finds it finished and
does nothing.
"""

from celery import shared_task

from retraining import services


@shared_task(
    name="retraining.tasks.build_batch",
    acks_late=True,
    autoretry_for=services.TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def build_batch(batch_id: int) -> str:
    """Builds one batch; transient database / network errors are retried with backoff (the
    service has put the batch back to `queued` first)."""
    return services.batch_build(batch_id=batch_id)


@shared_task(
    name="retraining.tasks.sweep_batches",
    acks_late=True,
    autoretry_for=services.TRANSIENT_ERRORS,
    retry_backoff=2,
    max_retries=5,
)
def sweep_batches() -> dict[str, int]:
    """Periodic: takes over or fails builds whose worker died, re-enqueues forgotten ones."""
    return services.batches_sweep()
