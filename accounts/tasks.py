"""Celery tasks of the accounts app: thin and idempotent."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from accounts.services import login_logs_prune


@shared_task(
    name="accounts.tasks.prune_login_logs",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    max_retries=5,
)
def prune_login_logs() -> int:
    """Periodic: deletes sign-in log rows older than LOGIN_LOG_DAYS (running it twice
    deletes nothing more)."""
    return login_logs_prune()
