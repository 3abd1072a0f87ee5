"""core/db.py: replica routing with read-your-writes pinning, locks and cursors that stay
correct behind a pooler in transaction mode."""

import re
from pathlib import Path

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.http import HttpResponse
from django.test import RequestFactory

from core import db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def with_replica(monkeypatch):
    """Routing as with DATABASE_REPLICA_URL set (no replica connection is opened here)."""
    monkeypatch.setattr(db, "has_replica", lambda: True)


def test_without_a_replica_every_read_goes_to_the_primary():
    with db.replica_reads():
        assert db.read_alias() == DEFAULT_DB_ALIAS
    assert db.ReplicaRouter().db_for_write(None) == DEFAULT_DB_ALIAS


def test_with_a_replica_only_reads_inside_replica_reads_go_there(with_replica):
    router = db.ReplicaRouter()
    assert router.db_for_read(None) == DEFAULT_DB_ALIAS
    with db.replica_reads():
        assert router.db_for_read(None) == db.REPLICA
        assert router.db_for_write(None) == DEFAULT_DB_ALIAS
        with db.primary_pinned():
            assert router.db_for_read(None) == DEFAULT_DB_ALIAS
        assert router.db_for_read(None) == db.REPLICA
    assert router.db_for_read(None) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(db.REPLICA, "reviews") is False
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "reviews") is True


def test_a_write_pins_that_browser_to_the_primary_for_a_while(with_replica, settings):
    settings.REPLICA_PIN_SECONDS = 7
    seen = []

    @db.replica_view
    def page(request):
        seen.append(db.read_alias())
        return HttpResponse("ok")

    middleware = db.ReplicaPinMiddleware(page)
    factory = RequestFactory()

    assert db.PIN_COOKIE not in middleware(factory.get("/")).cookies
    posted = middleware(factory.post("/"))
    cookie = posted.cookies[db.PIN_COOKIE]
    assert cookie["max-age"] == 7 and cookie["httponly"]
    pinned = factory.get("/")
    pinned.COOKIES[db.PIN_COOKIE] = "1"
    middleware(pinned)
    assert seen == [db.REPLICA, DEFAULT_DB_ALIAS, DEFAULT_DB_ALIAS]


@pytest.mark.postgres
@pytest.mark.django_db
def test_advisory_locks_are_held_by_a_transaction_of_their_own():
    """Another session cannot take the locks while the block runs; the caller's connection
    holds no lock and stays in autocommit; the locks are gone after the block, also after an
    error."""
    other = connections[DEFAULT_DB_ALIAS].copy()
    try:

        def free(key: int) -> bool:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(7, %s)", [key])
                return cursor.fetchone()[0]

        with db.advisory_xact_locks(7, [3, 1, 2]):
            assert not free(1) and not free(3)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid()"
                )
                assert cursor.fetchone()[0] == 0
        assert free(1) and free(2) and free(3)

        with pytest.raises(RuntimeError), db.advisory_xact_locks(7, [1]):
            raise RuntimeError("a run failed")
        assert free(1)
    finally:
        other.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_chunked_reads_declare_their_cursor_inside_a_transaction(monkeypatch):
    """In autocommit Django declares a server-side cursor WITH HOLD, which a pooler in
    transaction mode can hand to another client's server connection; `chunked` opens a
    transaction first."""
    from django.contrib.auth.models import Group

    Group.objects.bulk_create([Group(name=f"g{n}") for n in range(5)])
    declared = []
    wrapper = type(connections[DEFAULT_DB_ALIAS])
    original = wrapper.create_cursor

    def spy(self, name=None):
        if name:
            declared.append(self.get_autocommit())
        return original(self, name)

    monkeypatch.setattr(wrapper, "create_cursor", spy)
    mine = Group.objects.filter(name__regex=r"^g\d$").order_by("name")
    names = [g.name for g in db.chunked(mine, 2)]
    assert names == ["g0", "g1", "g2", "g3", "g4"]
    assert declared == [False]  # one cursor, declared with autocommit off
    list(mine.iterator(chunk_size=2))
    assert declared == [False, True]  # the plain iterator would have held it


def test_no_code_iterates_a_queryset_outside_a_transaction():
    """`.iterator()` only where a transaction is certain: core.db.chunked, the backup's
    snapshot transaction, and the non-PostgreSQL path of the export stream."""
    allowed = {"core/db.py", "backup/write.py", "retraining/selectors.py"}
    apps = ["accounts", "agents", "backup", "config", "console", "core", "demo", "ingest"]
    apps += ["kpis", "retraining", "reviews"]
    found = {
        str(path.relative_to(ROOT))
        for app in apps
        for path in (ROOT / app).rglob("*.py")
        if re.search(r"\.iterator\(", path.read_text())
    }
    assert found <= allowed, found - allowed
