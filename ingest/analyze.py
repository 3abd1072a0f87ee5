"""Planner statistics after a bulk load.

The planner sizes its plans from `pg_class.reltuples` and the column statistics that
ANALYZE gathers. Autoanalyze catches up with a big import only later (this machine runs
PostgreSQL with autovacuum off, and in production it lags behind a load of millions of
rows), and meanwhile the review claim statement plans against the empty table it saw last:
a terrible plan for the queue the import just filled. So a load that changed a table
substantially analyzes it before it returns, on the same rule as autoanalyze's scale factor,
with a floor so that small API batches never pay for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from django.db import connection

logger = logging.getLogger(__name__)

# A load of at least ALWAYS_ROWS rows is analyzed whatever the table's size; below it, one of
# at least MIN_ROWS rows is when they are SHARE or more of the rows the table was estimated
# to hold (reltuples; -1 on a table never analyzed, which counts as empty).
ANALYZE_ALWAYS_ROWS = 10_000
ANALYZE_MIN_ROWS = 1_000
ANALYZE_SHARE = 0.10


def needs_analyze(written: int, estimated_rows: float) -> bool:
    """Whether a load of `written` rows makes the statistics of a table estimated at
    `estimated_rows` rows (before the load) stale enough to ANALYZE it now."""
    if written >= ANALYZE_ALWAYS_ROWS:
        return True
    return written >= ANALYZE_MIN_ROWS and written >= ANALYZE_SHARE * max(estimated_rows, 0.0)


def loaded_tables_analyze(*, written: Mapping[str, int]) -> list[str]:
    """ANALYZEs the tables (name → rows this load wrote to it) that `needs_analyze`, and
    returns their names. PostgreSQL only: elsewhere it does nothing.

    Called after the load's last commit. ANALYZE takes a SHARE UPDATE EXCLUSIVE lock (it
    waits for a concurrent ANALYZE or VACUUM of the same table, never blocks reads or
    writes); a load below ANALYZE_MIN_ROWS does not even read pg_class.
    """
    if connection.vendor != "postgresql":
        return []
    candidates = {table: n for table, n in written.items() if n >= ANALYZE_MIN_ROWS}
    if not candidates:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[])",
            [list(candidates)],
        )
        estimates = dict(cursor.fetchall())
        stale = [
            table for table, n in candidates.items() if needs_analyze(n, estimates.get(table, -1.0))
        ]
        if stale:
            started = time.perf_counter()
            cursor.execute(f"ANALYZE {', '.join(map(connection.ops.quote_name, stale))}")
            logger.info(
                "analyzed %s after a load of %s rows in %.2fs",
                ", ".join(stale),
                ", ".join(str(candidates[t]) for t in stale),
                time.perf_counter() - started,
            )
    return stale
