"""Writing a prepared batch of interactions with its review items.

PostgreSQL: the batch is COPied straight into `reviews_interaction` and
`reviews_reviewitem` (`copy_interactions_pg`), with interaction ids taken from the
table's sequence beforehand so the review items can name them. COPY cannot skip a key that
is already stored, so when the batch meets one (a re-run, a retried API call, a concurrent
import of the same rows) it fails with `StoredKey` and the caller writes the batch again
through a staging table and one INSERT … ON CONFLICT DO NOTHING (`merge_interactions_pg`).
Other databases: the ORM (`write_interactions_generic`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection

from reviews.models import ReviewItem


def copy_escape(value: str) -> str:
    """COPY text format: backslash, tab, newline and carriage return are escaped."""
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    return value


_NULL = "\\N"
_COPY_BOOL = {True: "t", False: "f", None: _NULL}


def copy_lines(row: tuple, stamp: str) -> tuple[bytes, bytes | None]:
    """One prepared row (`prepare_interactions` layout) as COPY text without the interaction
    id each line starts with (`join_copy_text` puts it there): the interaction's line
    (`INTERACTION_COPY_COLUMNS`) and, when the row is routed, its review item's
    (`ITEM_COPY_COLUMNS`). `stamp` is `ingested_at` and the item's `created_at` /
    `updated_at`, like the portable writer sets them.

    Written field by field for this one layout rather than with a generic per-value type
    switch: it runs for every row of every import.
    """
    (
        agent_id,
        external_id,
        version,
        conversation,
        input_,
        context,
        steps,
        output,
        confidence,
        intent,
        domain,
        resolved,
        escalated,
        sentiment,
        turns,
        metadata,
        created_at,
        redactions,
        reason,
        detail,
        item_domain,
        required_reviews,
        near_at,
        due_at,
    ) = row
    esc = copy_escape
    created = created_at.isoformat()
    line = (
        f"{agent_id}\t{esc(external_id)}\t{esc(version)}\t{esc(conversation)}\t"
        f"{esc(input_)}\t{esc(context)}\t{esc(steps)}\t{esc(output)}\t{confidence!r}\t"
        f"{esc(intent)}\t{esc(domain)}\t{_COPY_BOOL[resolved]}\t{_COPY_BOOL[escalated]}\t"
        f"{_NULL if sentiment is None else repr(sentiment)}\t"
        f"{_NULL if turns is None else turns}\t{esc(metadata)}\t{created}\t"
        f"{redactions}\t{stamp}\n"
    ).encode()
    if reason is None:
        return line, None
    item = (
        f"{agent_id}\t{esc(item_domain)}\t{confidence!r}\t{created}\t{reason}\t"
        f"{esc(detail)}\t{_PENDING}\t{required_reviews}\t{stamp}\t{stamp}\t"
        f"{_NULL if due_at is None else due_at.isoformat()}\t"
        f"{_NULL if near_at is None else near_at.isoformat()}\n"
    ).encode()
    return line, item


def join_copy_text(
    lines: list[tuple[bytes, bytes | None]], ids: list[int]
) -> tuple[bytes, bytes, int]:
    """The COPY text of a batch of `copy_lines`, `ids[i]` the id of `lines[i]`'s interaction:
    the interactions, their review items and how many items there are."""
    interactions: list[bytes] = []
    items: list[bytes] = []
    for pk, (line, item) in zip(ids, lines, strict=True):
        head = b"%d\t" % pk
        interactions += (head, line)
        if item is not None:
            items += (head, item)
    return b"".join(interactions), b"".join(items), len(items) // 2


INTERACTION_COLUMNS = (
    "agent_id",
    "external_id",
    "agent_version",
    "conversation_id",
    "input",
    "context",
    "steps",
    "output",
    "confidence",
    "intent",
    "domain",
    "resolved",
    "escalated",
    "sentiment",
    "turns",
    "metadata",
    "created_at",
    # JSON text of the redaction counts, "{}" without a policy (ingest.redact): never needs
    # COPY escaping (kinds are letters and underscores).
    "redactions",
)
_N_INTERACTION = len(INTERACTION_COLUMNS)
# Positions in a prepared row: the interaction's columns, then its routing (reason, reason
# detail, the item's domain, required reviews, deadline near and due times).
_CONFIDENCE = INTERACTION_COLUMNS.index("confidence")
_CREATED_AT = INTERACTION_COLUMNS.index("created_at")
_REASON, _DETAIL, _ITEM_DOMAIN, _REQUIRED, _NEAR, _DUE = range(_N_INTERACTION, _N_INTERACTION + 6)

# The columns of the COPY text, in order. A new item starts pending, unassigned, version 0,
# priority 0 and without a verdict (the model defaults, which COPY does not apply); its
# `sla_level` is left to the column's database default (0).
INTERACTION_COPY_COLUMNS = ("id", *INTERACTION_COLUMNS, "ingested_at")
ITEM_COPY_COLUMNS = (
    "interaction_id",
    "agent_id",
    "domain",
    "confidence",
    "source_created_at",
    "reason",
    "reason_detail",
    "priority",
    "status",
    "final_verdict",
    "version",
    "required_reviews",
    "created_at",
    "updated_at",
    "due_at",
    "sla_near_at",
)
_PENDING = f"0\t{ReviewItem.Status.PENDING}\t\t0"  # priority, status, final_verdict, version
_INTERACTIONS = ", ".join(INTERACTION_COPY_COLUMNS)
_ITEMS = ", ".join(ITEM_COPY_COLUMNS)
# The idempotency key of ingest (agents.models.Interaction.Meta.constraints).
KEY_CONSTRAINT = "interaction_agent_external_id"

# Ids for a batch, in ascending order: the rows are written in key order with ascending ids,
# so the merge below can restore key order by sorting on the id alone.
# (The sequence is resolved once: nextval(text) would look its name up for every id.)
_RESERVE_IDS = """
WITH s AS MATERIALIZED (
    SELECT pg_get_serial_sequence('reviews_interaction', 'id')::regclass AS seq
)
SELECT nextval(s.seq) FROM s, generate_series(1, %s)
"""


def reserve_interaction_ids(n: int) -> list[int]:
    """`n` fresh interaction ids (PostgreSQL). Sequences are not transactional: ids of rows
    that end up not written (duplicates, a failed batch) are gaps, as with any insert."""
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_IDS, [n])
        return sorted(pk for (pk,) in cursor.fetchall())


class StoredKey(Exception):
    """The batch has an (agent, external_id) that is already stored; its transaction is
    aborted and must be rolled back before anything else runs in it."""


def _copy(cursor, statement: str, data: bytes) -> None:
    """COPY `data` in; a failure raises Django's exception, as any other query would."""
    with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
        copy.write(data)


def copy_interactions_pg(interactions: bytes, items: bytes) -> None:
    """COPY the batch straight into its tables (the fast path of a bulk load): all of it or,
    raising StoredKey when one of its keys is stored (waiting first for a concurrent writer
    of that key to commit or roll back), none of it.

    The rows are in key order, as in the merge below, so two importers of overlapping data
    take their key locks in the same order and never wait on each other in a cycle.
    """
    with connection.cursor() as cursor:
        try:
            _copy(cursor, f"COPY reviews_interaction ({_INTERACTIONS}) FROM STDIN", interactions)
        except IntegrityError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, psycopg.errors.UniqueViolation)
                and cause.diag.constraint_name == KEY_CONSTRAINT
            ):
                raise StoredKey(str(exc)) from exc
            raise
        if items:
            _copy(cursor, f"COPY reviews_reviewitem ({_ITEMS}) FROM STDIN", items)


# Session-local, shaped like the COPY text (the target columns' types, no constraints).
_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS coachdesk_stage_interactions ON COMMIT DELETE ROWS"
    f" AS SELECT {_INTERACTIONS} FROM reviews_interaction WITH NO DATA",
    "CREATE TEMP TABLE IF NOT EXISTS coachdesk_stage_items ON COMMIT DELETE ROWS"
    f" AS SELECT {_ITEMS} FROM reviews_reviewitem WITH NO DATA",
)

# One statement: insert the new interactions, then the review items of those among them.
# Rows already stored (duplicates) come back from neither, so they are never re-routed.
_PG_MERGE = f"""
WITH ins AS (
    INSERT INTO reviews_interaction ({_INTERACTIONS})
    SELECT {_INTERACTIONS} FROM coachdesk_stage_interactions
    ORDER BY id
    ON CONFLICT (agent_id, external_id) DO NOTHING
    RETURNING id
), items AS (
    INSERT INTO reviews_reviewitem ({_ITEMS})
    SELECT {_ITEMS} FROM coachdesk_stage_items
    WHERE interaction_id IN (SELECT id FROM ins)
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM items)
"""


def merge_interactions_pg(interactions: bytes, items: bytes) -> tuple[int, int]:
    """The batch through session-local staging tables and one INSERT … ON CONFLICT DO
    NOTHING: stored keys are skipped (waiting for a concurrent writer of one to commit)."""
    with connection.cursor() as cursor:
        for statement in _PG_STAGE:
            cursor.execute(statement)
        # Explicit, because inside an outer transaction (tests) ON COMMIT has not fired yet.
        cursor.execute("TRUNCATE coachdesk_stage_interactions, coachdesk_stage_items")
        _copy(
            cursor, f"COPY coachdesk_stage_interactions ({_INTERACTIONS}) FROM STDIN", interactions
        )
        if items:
            _copy(cursor, f"COPY coachdesk_stage_items ({_ITEMS}) FROM STDIN", items)
        cursor.execute(_PG_MERGE)
        created, routed = cursor.fetchone()
    return created, routed


def write_interactions_generic(rows: list[tuple], now: datetime) -> tuple[int, int]:
    """Portable path (SQLite): multi-row INSERT … ON CONFLICT DO NOTHING RETURNING."""
    ops = connection.ops
    created: dict[tuple[int, str], int] = {}
    chunk = max(1, 30_000 // (_N_INTERACTION + 1))  # stay under SQLite's variable limit
    sql_head = (
        f"INSERT INTO reviews_interaction ({', '.join(INTERACTION_COLUMNS)}, ingested_at) VALUES "
    )
    placeholders = "(" + ", ".join(["%s"] * (_N_INTERACTION + 1)) + ")"
    stamp = ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params: list[Any] = []
            for row in part:
                values = list(row[:_N_INTERACTION])
                values[_CREATED_AT] = ops.adapt_datetimefield_value(values[_CREATED_AT])
                params.extend(values)
                params.append(stamp)
            cursor.execute(
                sql_head
                + ", ".join([placeholders] * len(part))
                + " ON CONFLICT (agent_id, external_id) DO NOTHING"
                + " RETURNING id, agent_id, external_id",
                params,
            )
            for pk, agent_id, external_id in cursor.fetchall():
                created[(agent_id, external_id)] = pk
    items = [
        ReviewItem(
            interaction_id=created[(row[0], row[1])],
            agent_id=row[0],
            domain=row[_ITEM_DOMAIN],
            confidence=row[_CONFIDENCE],
            source_created_at=row[_CREATED_AT],
            reason=row[_REASON],
            reason_detail=row[_DETAIL],
            required_reviews=row[_REQUIRED],
            sla_near_at=row[_NEAR],
            due_at=row[_DUE],
        )
        for row in rows
        if row[_REASON] is not None and (row[0], row[1]) in created
    ]
    ReviewItem.objects.bulk_create(items, batch_size=2000)
    return len(created), len(items)
