"""core.statements: the ORM's SQL compiled once and run again (`Reused`), and the INSERTs
built from a model's fields (`insert`, `insert_returning_pk`)."""

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from core import statements
from core.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BY_NAME = statements.Reused(
    lambda name: User.objects.select_related("reviewer_profile").filter(username=name)[:1],
    "\x00name",
)


def test_it_runs_the_compiled_statement_with_each_value(reviewer, other_reviewer):
    assert BY_NAME.one("rita") == reviewer
    with CaptureQueriesContext(connection) as queries:
        found = BY_NAME.one("oscar")
    assert found == other_reviewer
    assert found.reviewer_profile.domains == ["support"]  # select_related, no second query
    assert len(queries) == 1 and "oscar" in queries[0]["sql"]
    assert BY_NAME.one("nobody") is None


def test_it_gives_the_same_instances_as_the_orm(reviewer):
    reused = BY_NAME.one("rita")
    plain = User.objects.select_related("reviewer_profile").get(username="rita")
    fields = [f.attname for f in User._meta.concrete_fields]
    assert [getattr(reused, f) for f in fields] == [getattr(plain, f) for f in fields]
    assert reused._state.adding is False and reused._state.db == "default"


def test_it_refuses_a_marker_that_is_not_in_the_query():
    wrong = statements.Reused(lambda name: User.objects.filter(is_active=True)[:1], "\x00name")
    with pytest.raises(ValueError, match="not among the query's parameters"):
        wrong.one("rita")


@pytest.mark.django_db(transaction=True)
def test_each_thread_runs_it_on_its_own_connection():
    names = [f"user{n}" for n in range(4)]
    for name in names:
        UserFactory(username=name)
    BY_NAME.one(names[0])  # compiled on this thread
    found, own = {}, {}

    def look(name):
        try:
            queryset = BY_NAME.queryset(name)
            own[name] = queryset.query.get_compiler("default").connection is connections["default"]
            found[name] = next(iter(queryset)).username
        finally:
            connections.close_all()

    threads = [threading.Thread(target=look, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == {name: name for name in names}
    assert own == dict.fromkeys(names, True)


def test_insert_writes_the_row_as_save_would(reviewer):
    event = AuditEvent(actor=reviewer, action="x.made", target_type="thing", after={"a": [1]})
    statements.insert(event)
    assert event.pk is not None and event._state.adding is False
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor, stored.action, stored.after) == (reviewer, "x.made", {"a": [1]})
    assert stored.created_at is not None and stored.created_at == event.created_at
