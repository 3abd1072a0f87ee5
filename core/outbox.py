"""Durable task delivery: a transactional outbox in front of Celery.

`outbox_enqueue("app.tasks.name", *ids)` writes an `OutboxMessage` in the caller's
transaction. Right after the commit the message is published and its row deleted. When the
broker (Redis) cannot be reached, publishing fails fast, the row stays, and this process
stops trying for OUTBOX_BREAKER_SECONDS; the periodic `outbox_sweep` publishes every row
older than OUTBOX_GRACE_SECONDS once the broker answers again. So:

- a committed change never loses its follow-up work to a Redis outage, and a rolled-back
  change never sends any (the row goes with the transaction);
- ingest and reviewing keep working while Redis is down (nothing waits for it);
- a message can be delivered twice (published, then the delete failed, or the sweep and the
  commit hook raced), so every task sent this way is idempotent.

In embedded mode (no Redis, tasks eager) publishing runs the task in-process.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from core.models import OutboxMessage

log = logging.getLogger(__name__)


class _Breaker:
    """Per process: after a failed publish, skip the broker until `open_until`."""

    open_until = 0.0

    @classmethod
    def is_open(cls) -> bool:
        return time.monotonic() < cls.open_until

    @classmethod
    def trip(cls) -> None:
        cls.open_until = time.monotonic() + settings.OUTBOX_BREAKER_SECONDS

    @classmethod
    def reset(cls) -> None:
        cls.open_until = 0.0


def _broker_errors() -> tuple[type[BaseException], ...]:
    import redis
    from kombu.exceptions import OperationalError as KombuOperationalError

    return (KombuOperationalError, redis.RedisError, ConnectionError, TimeoutError, OSError)


def publish(task: str, args: list) -> str | None:
    """Sends one task message now. Returns None when sent, else why it was not (the broker
    is unreachable)."""
    if _Breaker.is_open():
        return "broker unreachable (waiting before the next attempt)"
    from celery import current_app as app

    if task not in app.tasks:  # a web process has not imported every app's tasks module
        app.loader.import_default_modules()
    try:
        app.tasks[task].apply_async(args=args, retry=False)
    except _broker_errors() as exc:
        _Breaker.trip()
        return f"{type(exc).__name__}: {exc}"[:500]
    except Exception:
        if not app.conf.task_always_eager:
            raise
        # Embedded mode ran the task here and it failed: like a worker, log it and move on
        # (the task records failures on its own rows); sending it again would loop.
        log.exception("outbox: %s%s failed in-process", task, tuple(args))
    return None


def outbox_enqueue(task: str, *args: int | str) -> OutboxMessage:
    """Records `task(*args)` in the current transaction and publishes it after the commit.
    Outside a transaction (autocommit) it is published at once."""
    message = OutboxMessage.objects.create(
        task=task,
        args=list(args),
        next_attempt_at=timezone.now() + timedelta(seconds=settings.OUTBOX_GRACE_SECONDS),
    )
    transaction.on_commit(lambda: _send(message.pk, task, list(args)), robust=True)
    return message


def _send(pk: int, task: str, args: list) -> None:
    error = publish(task, args)
    try:
        if error is None:
            OutboxMessage.objects.filter(pk=pk).delete()
        else:
            log.warning("outbox: %s kept for the sweep (%s)", task, error)
            OutboxMessage.objects.filter(pk=pk).update(attempts=F("attempts") + 1, last_error=error)
    except DatabaseError:  # sent but not deleted: the sweep sends it again (idempotent)
        log.exception("outbox: could not update message %s", pk)


def outbox_sweep(*, limit: int = 1000) -> dict[str, int]:
    """Periodic: publishes the messages left behind (broker was down), oldest first. Stops
    at the first failure (the broker is still down). Rows are locked with SKIP LOCKED, so
    two sweeps never send the same message at once. Returns counts."""
    now = timezone.now()
    sent = kept = 0
    with transaction.atomic():
        due = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now)
            .order_by("pk")[:limit]
        )
        _Breaker.reset()  # the sweep always tries the broker once
        done: list[int] = []
        for message in due:
            error = publish(message.task, message.args)
            if error is not None:
                OutboxMessage.objects.filter(pk=message.pk).update(
                    attempts=F("attempts") + 1,
                    last_error=error,
                    next_attempt_at=now + timedelta(seconds=settings.OUTBOX_GRACE_SECONDS),
                )
                kept = len(due) - len(done)
                break
            done.append(message.pk)
        OutboxMessage.objects.filter(pk__in=done).delete()
        sent = len(done)
    if sent or kept:
        log.info("outbox sweep: %s sent, %s kept", sent, kept)
    return {"sent": sent, "kept": kept}


def outbox_backlog() -> dict[str, float | int | None]:
    """Unsent messages and the age in seconds of the oldest (for /healthz)."""
    row = OutboxMessage.objects.aggregate(pending=Count("pk"), oldest=Min("created_at"))
    age = (timezone.now() - row["oldest"]).total_seconds() if row["oldest"] else None
    return {"pending": row["pending"], "oldest_seconds": round(age, 1) if age is not None else None}
