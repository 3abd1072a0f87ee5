"""`GET /healthz`: 200 when the database answers; Redis, Celery and the outbox in the body.

`status` is "ok", "degraded" (the app works, but Redis or the read replica is down, or task
messages wait in the outbox longer than OUTBOX_STALE_SECONDS: background work is late) or
"down" (no database, answered 503). With a replica, its replay lag is in the body.
"""

import time

from django.conf import settings
from django.db import connection, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"; the detail is for the operator
        return f"down: {type(exc).__name__}"
    return "ok"


def _check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured (embedded mode)"
    import redis

    try:
        redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5
        ).ping()
    except redis.RedisError as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


def _check_replica() -> dict | str:
    """The replica's replay lag in seconds (None: nothing replayed yet, or idle and caught
    up with no recent commits to measure against)."""
    from core.db import REPLICA, has_replica

    if not has_replica():
        return "not configured"
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(
                "SELECT pg_is_in_recovery(), "
                "extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
            )
            row = cursor.fetchone()
    except Exception as exc:  # reads fall back to nothing: the operator must know
        return f"down: {type(exc).__name__}"
    standby, lag = row if row else (False, None)
    return {"standby": bool(standby), "lag_seconds": None if lag is None else round(lag, 1)}


def _check_outbox() -> dict | str:
    from core.outbox import outbox_backlog

    try:
        return outbox_backlog()
    except Exception as exc:  # the database check reports the cause
        return f"unknown: {type(exc).__name__}"


@never_cache
@require_GET
def healthz(request):
    started = time.monotonic()
    database = _check_database()
    redis_state = _check_redis()
    replica = _check_replica()
    outbox = _check_outbox() if database == "ok" else "unknown: no database"
    late = isinstance(outbox, dict) and (outbox["oldest_seconds"] or 0) > (
        settings.OUTBOX_STALE_SECONDS
    )
    degraded = redis_state.startswith("down") or late or str(replica).startswith("down")
    body = {
        "status": "ok"
        if database == "ok" and not degraded
        else ("degraded" if database == "ok" else "down"),
        "database": database,
        "redis": redis_state,
        "replica": replica,
        "celery": "eager (in-process)" if settings.CELERY_TASK_ALWAYS_EAGER else "broker",
        "outbox": outbox,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if database == "ok" else 503)
