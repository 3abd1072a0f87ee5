"""Writing a prepared batch of interactions: COPY text into a staging table and one
INSERT … ON CONFLICT DO NOTHING on PostgreSQL (with the review items in the same
statement), or the ORM on other databases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

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


_COPY_BOOL = {True: "t", False: "f", None: "\\N"}


def to_copy_text(rows: list[tuple]) -> bytes:
    """The prepared rows (`prepare_interactions` layout) as one COPY text payload.

    Written field by field for this one layout rather than with a generic per-value type
    switch: it runs for every row of every import and is a third of the preparing work.
    """
    esc = copy_escape
    null = "\\N"
    lines = [
        f"{agent_id}\t{esc(external_id)}\t{esc(version)}\t{esc(conversation)}\t{esc(input_)}\t"
        f"{esc(context)}\t{esc(steps)}\t{esc(output)}\t{confidence!r}\t{esc(intent)}\t"
        f"{esc(domain)}\t"
        f"{_COPY_BOOL[resolved]}\t{_COPY_BOOL[escalated]}\t"
        f"{null if sentiment is None else repr(sentiment)}\t{null if turns is None else turns}\t"
        f"{esc(metadata)}\t{created_at.isoformat()}\t{null if reason is None else reason}\t"
        f"{null if detail is None else esc(detail)}\t{esc(item_domain)}\t{required_reviews}\n"
        for (
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
            reason,
            detail,
            item_domain,
            required_reviews,
        ) in rows
    ]
    return "".join(lines).encode()


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
)
_N_INTERACTION = len(INTERACTION_COLUMNS)
# Positions in a prepared row: the interaction's columns, then its routing (reason, reason
# detail, the item's domain, required reviews).
_CONFIDENCE = INTERACTION_COLUMNS.index("confidence")
_CREATED_AT = INTERACTION_COLUMNS.index("created_at")
_REASON, _DETAIL, _ITEM_DOMAIN, _REQUIRED = range(_N_INTERACTION, _N_INTERACTION + 4)

_PG_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS coachdesk_ingest_stage (
    agent_id bigint, external_id text, agent_version text, conversation_id text, input text,
    context jsonb, steps jsonb, output text, confidence double precision, intent text,
    domain text, resolved boolean, escalated boolean, sentiment double precision,
    turns integer, metadata jsonb, created_at timestamptz, reason text, reason_detail text,
    item_domain text, required_reviews smallint
) ON COMMIT DELETE ROWS
"""

# One statement: insert the new interactions, then the ReviewItems of the routed ones among
# them. Rows already stored (duplicates) come back from neither, so they are never re-routed.
_PG_INSERT = f"""
WITH ins AS (
    INSERT INTO reviews_interaction ({", ".join(INTERACTION_COLUMNS)}, ingested_at)
    SELECT {", ".join(INTERACTION_COLUMNS)}, now() FROM coachdesk_ingest_stage
    ORDER BY agent_id, external_id
    ON CONFLICT (agent_id, external_id) DO NOTHING
    RETURNING id, agent_id, external_id
), items AS (
    INSERT INTO reviews_reviewitem (
        interaction_id, agent_id, domain, confidence, source_created_at, reason, reason_detail,
        priority, status, required_reviews, final_verdict, version, created_at, updated_at)
    SELECT ins.id, s.agent_id, s.item_domain, s.confidence, s.created_at, s.reason,
           s.reason_detail, 0, 'pending', s.required_reviews, '', 0, now(), now()
    FROM ins JOIN coachdesk_ingest_stage s USING (agent_id, external_id)
    WHERE s.reason IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM items)
"""


def write_interactions_pg(copy_data: bytes) -> tuple[int, int]:
    """COPY into a session-local staging table, then one INSERT … ON CONFLICT statement."""
    with connection.cursor() as cursor:
        cursor.execute(_PG_STAGE)
        # Explicit, because inside an outer transaction (tests) ON COMMIT has not fired yet.
        cursor.execute("TRUNCATE coachdesk_ingest_stage")
        # The insert sorts the batch by key; give the sort room so it does not spill to disk.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        with cursor.cursor.copy("COPY coachdesk_ingest_stage FROM STDIN") as copy:
            copy.write(copy_data)
        cursor.execute(_PG_INSERT)
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
        )
        for row in rows
        if row[_REASON] is not None and (row[0], row[1]) in created
    ]
    ReviewItem.objects.bulk_create(items, batch_size=2000)
    return len(created), len(items)
