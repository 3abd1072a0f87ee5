"""Several databases behind one app: the primary, an optional read replica, a pooler.

- **Replica reads** (`DATABASE_REPLICA_URL`): code that only shows data (dashboards, KPI
  reads, the queue browser's counts, export reads) runs inside `replica_reads()` and its
  queries go to the `replica` alias; every write, and every read outside that block, goes to
  the primary. A user who just wrote something is *pinned* to the primary for
  `REPLICA_PIN_SECONDS` (the `ReplicaPinMiddleware` sets a cookie on every non-GET request),
  so a page never shows them a state older than their own last write.
- **Connection poolers in transaction mode** (`DATABASE_POOLER=transaction`, PgBouncer):
  nothing may rely on session state, since consecutive transactions of one Django connection
  can run on different server connections. Locks that must outlive one statement are
  therefore taken with `advisory_xact_locks()`, on a connection of their own inside an open
  transaction (which a pooler keeps on one server connection until it ends).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction

REPLICA = "replica"
PIN_COOKIE = "cd_primary"

_reads_on_replica: ContextVar[bool] = ContextVar("reads_on_replica", default=False)
_pinned_to_primary: ContextVar[bool] = ContextVar("pinned_to_primary", default=False)


def has_replica() -> bool:
    return REPLICA in settings.DATABASES


def read_alias() -> str:
    """Where a read that may be slightly stale goes right now: the replica inside
    `replica_reads()` (unless this request is pinned to the primary), else the primary."""
    if _reads_on_replica.get() and not _pinned_to_primary.get() and has_replica():
        return REPLICA
    return DEFAULT_DB_ALIAS


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside this block may go to the replica (writes never do)."""
    token = _reads_on_replica.set(True)
    try:
        yield
    finally:
        _reads_on_replica.reset(token)


@contextmanager
def primary_pinned(pinned: bool = True) -> Iterator[None]:
    token = _pinned_to_primary.set(pinned)
    try:
        yield
    finally:
        _pinned_to_primary.reset(token)


def replica_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """A view whose reads may go to the replica (see `replica_reads`): for pages that only
    show data. Its response must be rendered inside the view (no lazy streaming)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with replica_reads():
            return view(*args, **kwargs)

    return wrapper


class ReplicaRouter:
    """Reads go where `read_alias()` says; writes and migrations only to the primary. The
    replica holds the same rows, so relations across the two aliases are fine."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS


class ReplicaPinMiddleware:
    """Pins a user's reads to the primary for REPLICA_PIN_SECONDS after any request that may
    have written (every method but GET, HEAD and OPTIONS), and while the pin cookie lives."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if not has_replica():
            return self.get_response(request)
        writes = request.method not in {"GET", "HEAD", "OPTIONS"}
        with primary_pinned(writes or PIN_COOKIE in request.COOKIES):
            response = self.get_response(request)
        if writes:
            response.set_cookie(
                PIN_COOKIE,
                "1",
                max_age=settings.REPLICA_PIN_SECONDS,
                httponly=True,
                samesite="Lax",
                secure=request.is_secure(),
            )
        return response


def replica_caught_up(lsn: str, *, timeout: float) -> bool:
    """Waits (up to `timeout` seconds) until the replica has replayed the primary's WAL up to
    `lsn` (from `primary_lsn()`); False when it has not, or when there is no replica."""
    if not has_replica():
        return False
    deadline = time.monotonic() + timeout
    with connections[REPLICA].cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
            row = cursor.fetchone()
            if row and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def primary_lsn() -> str:
    """The primary's WAL insert position (PostgreSQL): past everything committed so far,
    also commits made with synchronous_commit off, whose records may not be written out yet
    (`pg_current_wal_lsn()`, the write position, can still be before them)."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        row = cursor.fetchone()
    assert row is not None
    return str(row[0])


@contextmanager
def advisory_xact_locks(space: int, keys: Iterable[int]) -> Iterator[None]:
    """Holds PostgreSQL advisory locks (`space`, key) for the duration of the block, taken in
    key order, on a connection of its own inside an open transaction: correct through a
    pooler in transaction mode (the transaction keeps one server connection) and released
    when the block ends, on errors, or when the process dies (its connection closes and the
    transaction with it). The caller's own connection is untouched, so its queries run and
    commit as usual while the locks are held."""
    ordered = sorted({key % 2**31 for key in keys})
    holder = connections[DEFAULT_DB_ALIAS].copy()
    try:
        holder.ensure_connection()
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            for key in ordered:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [space, key])
        yield
    finally:
        try:
            if holder.connection is not None:
                holder.rollback()  # ends the transaction: the locks go with it
        finally:
            holder.close()


def chunked(queryset: Any, chunk_size: int) -> Iterator[Any]:
    """`queryset.iterator(chunk_size)` inside a transaction on PostgreSQL: Django's
    server-side cursor is then declared WITHOUT HOLD and lives only as long as this
    transaction, which a pooler in transaction mode keeps on one server connection (in
    autocommit Django declares it WITH HOLD, a cursor a pooler can hand to another client's
    connection). Elsewhere the plain iterator."""
    alias = queryset.db
    if connections[alias].vendor != "postgresql":
        yield from queryset.iterator(chunk_size=chunk_size)
        return
    with transaction.atomic(using=alias):
        yield from queryset.iterator(chunk_size=chunk_size)
