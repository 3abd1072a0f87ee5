"""ANALYZE after a bulk load (ingest.analyze): a load that changed a table substantially
leaves fresh planner statistics behind; a small batch does not pay for them."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

from ingest.analyze import ANALYZE_MIN_ROWS, needs_analyze
from ingest.services import feedback_ingest, interactions_ingest
from tests.factories import AgentFactory

TABLES = ("reviews_interaction", "reviews_reviewitem")


def records(n, confidence=0.1):
    """`n` interactions, each routed to review at this confidence (below the threshold)."""
    return [
        (
            i,
            {
                "external_id": f"t-{i}",
                "agent": "support-bot",
                "input": "Where is my parcel?",
                "output": "It ships tomorrow.",
                "confidence": confidence,
            },
        )
        for i in range(n)
    ]


def reltuples(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


def analyze_count(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # read the counters as they are now
        cursor.execute("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("written", "estimated", "expected"),
    [
        (10_000, 50_000_000, True),  # a big load, whatever the table's size
        (9_999, 1_000_000, False),  # under 10% of the table
        (5_000, 50_000, True),  # 10% of the table
        (5_000, 50_001, False),
        (1_000, -1, True),  # a table never analyzed counts as empty
        (999, -1, False),  # a small batch never pays for it
    ],
)
def test_it_analyzes_a_table_after_a_load_of_10k_rows_or_10_percent_of_it(
    written, estimated, expected
):
    assert needs_analyze(written, estimated) is expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_it_analyzes_the_tables_a_load_of_enough_rows_wrote():
    result = interactions_ingest(records=records(ANALYZE_MIN_ROWS))

    assert result.routed == ANALYZE_MIN_ROWS
    assert result.analyzed == list(TABLES)
    # The rows this transaction wrote are counted (reltuples was -1 or 0 before any ANALYZE).
    assert [reltuples(table) for table in TABLES] == [ANALYZE_MIN_ROWS] * 2


@pytest.mark.postgres
@pytest.mark.django_db
def test_it_does_not_analyze_after_a_small_batch():
    before = [reltuples(table) for table in TABLES]

    result = interactions_ingest(records=records(10))

    assert result.created == 10 and result.analyzed == []
    assert [reltuples(table) for table in TABLES] == before


@pytest.mark.postgres
@pytest.mark.django_db
def test_it_analyzes_only_the_table_that_changed_enough():
    result = interactions_ingest(records=records(ANALYZE_MIN_ROWS, confidence=0.99))

    assert result.routed < ANALYZE_MIN_ROWS  # only the audit sample
    assert result.analyzed == ["reviews_interaction"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_it_analyzes_feedback_events_and_the_items_they_queued():
    AgentFactory(slug="support-bot", audit_rate=0)
    interactions_ingest(records=records(ANALYZE_MIN_ROWS, confidence=0.99))
    events = [
        (i, {"agent": "support-bot", "external_id": f"t-{i}", "kind": "thumbs_down"})
        for i in range(ANALYZE_MIN_ROWS)
    ]

    result = feedback_ingest(records=events)

    assert result.routed == ANALYZE_MIN_ROWS
    assert result.analyzed == ["reviews_feedbackevent", "reviews_reviewitem"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_analyzes_after_the_import_command(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(value) + "\n" for _, value in records(ANALYZE_MIN_ROWS)))
    before = [analyze_count(table) for table in TABLES]

    call_command("import_interactions", str(path), stdout=io.StringIO())

    assert [analyze_count(table) for table in TABLES] == [n + 1 for n in before]
