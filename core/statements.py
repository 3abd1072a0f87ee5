"""Several writes in one round trip (PostgreSQL): SQL of the ORM's own INSERT and UPDATE,
to be chained in one statement with data-modifying CTEs.

A decision writes a handful of rows that depend on each other only by the id just made
(the training pair and its links) or by whether a guarded UPDATE matched (a status move and
its audit event). Sent one by one, each is a round trip, and on a busy server the round
trips are the cost. These helpers return the SQL and parameters the ORM itself would send,
so the statements stay in step with the models, for the callers to join:

    WITH moved AS (UPDATE … RETURNING 1) INSERT INTO audit … SELECT … FROM moved

Only for PostgreSQL (`supported()`); callers keep the ORM path for the embedded SQLite.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.sql import UpdateQuery


def supported(using: str = DEFAULT_DB_ALIAS) -> bool:
    return connections[using].vendor == "postgresql"


def insert_parts(obj: Model, using: str = DEFAULT_DB_ALIAS) -> tuple[str, list[str], list[Any]]:
    """The table, columns and adapted values of `obj`'s INSERT (its defaults and
    auto_now_add fields filled in as `save()` would); an unset auto primary key is left to
    the database."""
    connection = connections[using]
    meta = obj._meta
    columns, values = [], []
    for field in meta.local_concrete_fields:
        if field.primary_key and getattr(obj, field.attname) is None:
            continue
        value = field.get_db_prep_save(field.pre_save(obj, add=True), connection=connection)
        columns.append(connection.ops.quote_name(str(field.column)))
        values.append(value)
    return connection.ops.quote_name(meta.db_table), columns, values


def insert_returning_pk(obj: Model, using: str = DEFAULT_DB_ALIAS) -> tuple[str, list[Any]]:
    """`INSERT INTO table (…) VALUES (…) RETURNING pk` of `obj`."""
    table, columns, values = insert_parts(obj, using)
    pk = connections[using].ops.quote_name(str(obj._meta.pk.column))
    placeholders = ", ".join(["%s"] * len(values))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) RETURNING {pk}",
        values,
    )


def insert_from(obj: Model, source: str, using: str = DEFAULT_DB_ALIAS) -> tuple[str, list[Any]]:
    """`INSERT INTO table (…) SELECT … FROM source`: `obj`'s row once per row of `source`
    (a CTE's name), so nothing is inserted when `source` is empty."""
    table, columns, values = insert_parts(obj, using)
    placeholders = ", ".join(["%s"] * len(values))
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {placeholders} FROM {source}", values


def insert(obj: Model, using: str = DEFAULT_DB_ALIAS) -> None:
    """Saves a new `obj` (no signals: for models nobody listens to) with the INSERT built
    here from its fields, not compiled by the ORM."""
    if not supported(using):
        obj.save(force_insert=True, using=using)
        return
    sql, params = insert_returning_pk(obj, using)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        mark_saved(obj, cursor.fetchone()[0], using)


def update_sql(rows: QuerySet, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The `UPDATE … SET … WHERE …` that `rows.update(**values)` would send (filters on the
    model's own columns only: a filter across a relation makes Django select first)."""
    query = cast(UpdateQuery, rows.query.chain(UpdateQuery))
    query.add_update_values(values)
    compiler = query.get_compiler(rows.db)
    compiler.pre_sql_setup()
    sql, params = compiler.as_sql()
    return sql, tuple(params)


def mark_saved(obj: Model, pk: Any, using: str = DEFAULT_DB_ALIAS) -> None:
    """What `save()` leaves on an instance it inserted."""
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = using


# Markers for `Reused`: an id no row has, and a moment no query asks about.
MARKER_ID = -7_654_321
MARKER_TIME = datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC)


# `Reused` on a backend whose parameters hide a marker (SQLite): compiled per call.
PER_CALL: Any = object()


class Reused:
    """A SELECT that the ORM compiles once per process and runs again with other values.

    Compiling a queryset (joins, select_related columns, annotations) costs more CPU than
    PostgreSQL spends answering the hot lookups of a request (a token, the item under
    review). `Reused(build, *markers)` calls `build(*markers)` once, compiles it, and
    remembers where each marker sits among the statement's parameters; `queryset(*values)`
    then returns a queryset that runs that same SQL with `values` in the markers' places and
    builds its model instances exactly as the ORM does (select_related, annotations).

    Markers must be values of the right type that appear nowhere else in the query. Iterate
    the queryset as given: `first()`, `filter()` and the like make a new query (compiled
    anew). Safe across threads: each run gets its own copy of the compiler on the calling
    thread's connection.
    """

    def __init__(self, build, *markers: Any, using: str = DEFAULT_DB_ALIAS) -> None:
        self.build, self.markers, self.using = build, markers, using
        self._compiled: Any = None  # the compiled statement, or PER_CALL

    def _compile(self) -> tuple | None:
        queryset = self.build(*self.markers).using(self.using)
        compiler = queryset.query.get_compiler(self.using)
        sql, params = compiler.as_sql()
        slots = []
        for marker in self.markers:
            hits = [i for i, p in enumerate(params) if type(p) is type(marker) and p == marker]
            if not hits:
                if connections[self.using].vendor != "postgresql":
                    # The backend adapted the value before it reached the parameters
                    # (SQLite passes datetimes as text): this statement is compiled per call.
                    return None
                raise ValueError(f"marker {marker!r} is not among the query's parameters")
            slots.append(hits)
        return queryset, compiler, sql, list(params), slots

    def queryset(self, *values: Any) -> QuerySet:
        if self._compiled is None:
            self._compiled = self._compile() or PER_CALL
        if self._compiled is PER_CALL:
            return self.build(*values).using(self.using)
        queryset, compiler, sql, params, slots = self._compiled
        params = list(params)
        for hits, value in zip(slots, values, strict=True):
            for i in hits:
                params[i] = value
        run = copy.copy(compiler)
        run.connection = connections[self.using]
        run.as_sql = lambda *args, **kwargs: (sql, tuple(params))
        clone = queryset._chain()
        clone.query.get_compiler = lambda *args, **kwargs: run
        return clone

    def one(self, *values: Any) -> Any:
        """The first row's instance, or None."""
        return next(iter(self.queryset(*values)), None)


def prefetched(obj: Model, relation: str, related: list[Model]) -> None:
    """Leaves `related` on `obj` as `prefetch_related(relation)` of a reverse foreign key
    would: `obj.<relation>.all()` answers from them and each knows its `obj`."""
    manager = getattr(obj, relation)
    queryset = manager._apply_rel_filters(manager.model._default_manager.all())
    queryset._result_cache = related
    queryset._prefetch_done = True
    for other in related:
        manager.field.set_cached_value(other, obj)
    cache = getattr(obj, "_prefetched_objects_cache", {})
    obj._prefetched_objects_cache = {**cache, relation: queryset}  # type: ignore[attr-defined]


def preparing_cursor(using: str = DEFAULT_DB_ALIAS):
    """A cursor of `using` whose statements PostgreSQL may keep prepared: psycopg's own
    cursor (server-side binding), on which a text executed `prepare_threshold` times (5 by
    default) on one connection is prepared and from then on not planned again. For a long
    hand-written statement run on every request (the claim), planning is most of its cost.

    Behind a pooler in transaction mode the connection never prepares (`prepare_threshold`
    None, config/env.py), so this is a plain cursor there. Django's query log and counts
    see it as any cursor. Only for hand-written SQL with `%(name)s` placeholders: the ORM's
    SQL is written for the client-side binding of Django's own cursors."""
    connection = connections[using]
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if connection.vendor != "postgresql":
        return connection.cursor()
    from psycopg import Cursor  # the connection's own factory is Django's ClientCursor

    with connection.wrap_database_errors:
        return connection._prepare_cursor(Cursor(connection.connection))  # type: ignore[attr-defined]
