"""The claim's plan does not depend on table statistics (issue 18).

Right after a bulk load into tables that were never analyzed, PostgreSQL's planner guesses
that almost nothing is pending. The claim used to be planned then as an anti-join of every
pending item against all of the reviewer's earlier reviews (112 ms at 2,000 pending and 120
reviews, growing with both). Here the tables are loaded with 2,000 pending items and a
reviewer with 1,000 earlier reviews, their statistics are removed (as on a database that was
never analyzed: no `pg_statistic` rows, `reltuples` unknown), and the claim's own plan is
checked: it walks the claim index in queue order and looks up only the candidates it
visits in the reviews, whatever the planner believes. The bench (`bench/claim.py`, "cold
statistics") times the same scenario."""

import pytest
from django.db import connection

from reviews import services
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

TABLES = ("reviews_reviewitem", "reviews_review", "reviews_interaction")


def load(agent, reviewer, *, reviewed: int, skipped: int, fresh: int) -> None:
    """In queue order: `reviewed` items the reviewer decided (done), `skipped` pending items
    the reviewer skipped (still in the queue, not theirs to claim again), `fresh` pending
    items. Written with plain SQL, as a bulk load does, and never analyzed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO reviews_interaction (agent_id, external_id, agent_version,
                conversation_id, input, context, output, confidence, intent, domain, metadata,
                created_at, ingested_at, steps)
            SELECT %(agent)s, 'bulk-' || g, '1', '', 'q' || g, '[]', 'a' || g, 0.1, '',
                   'support', '{}', timestamptz '2026-11-01' + g * interval '1 second', now(),
                   '[]'
            FROM generate_series(1, %(n)s) g
            """,
            {"agent": agent.pk, "n": reviewed + skipped + fresh},
        )
        cursor.execute(
            """
            INSERT INTO reviews_reviewitem (interaction_id, agent_id, domain, confidence,
                source_created_at, reason, reason_detail, priority, status, required_reviews,
                final_verdict, version, created_at, updated_at)
            SELECT id, agent_id, 'support', confidence, created_at, 'low_confidence', '', 0,
                   CASE WHEN g <= %(reviewed)s THEN 'done' ELSE 'pending' END, 1,
                   CASE WHEN g <= %(reviewed)s THEN 'approve' ELSE '' END, 0, now(), now()
            FROM (SELECT *, row_number() OVER (ORDER BY id) g FROM reviews_interaction
                  WHERE external_id LIKE 'bulk-%%') i
            """,
            {"reviewed": reviewed},
        )
        cursor.execute(
            """
            INSERT INTO reviews_review (item_id, reviewer_id, verdict, corrected_output, notes,
                is_adjudication, created_at)
            SELECT id, %(me)s, CASE WHEN status = 'done' THEN 'approve' ELSE 'skip' END, '',
                   '', false, now()
            FROM reviews_reviewitem ORDER BY source_created_at, id LIMIT %(n)s
            """,
            {"me": reviewer.pk, "n": reviewed + skipped},
        )


def forget_statistics() -> None:
    """What a never-analyzed table looks like to the planner (the catalog rows are the
    test transaction's, and roll back with it)."""
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute("DELETE FROM pg_statistic WHERE starelid = %s::regclass", [table])
            cursor.execute(
                "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = %s::regclass",
                [table],
            )


def explain_claim(reviewer) -> dict:
    """The claim statement run under EXPLAIN ANALYZE: its plan with the rows each step read
    (the claim happens, in the test's transaction)."""
    sql = services._claim_sql(1, agent=False, domain=False)
    params = {"me": reviewer.pk, "lease": 900, "d0": "support"}
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        return cursor.fetchone()[0][0]["Plan"]


def steps(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from steps(child)


def candidate_plan(plan: dict, name: str) -> dict:
    return next(p for p in steps(plan) if p.get("Subplan Name") == f"CTE {name}")


@pytest.mark.parametrize("skipped", [0, 100])
def test_a_claim_after_a_bulk_load_walks_the_queue_not_the_reviews(reviewer, skipped):
    agent = AgentFactory(slug="support-bot", domain="support")
    load(agent, reviewer, reviewed=1000, skipped=skipped, fresh=2000)
    forget_statistics()

    queue = candidate_plan(explain_claim(reviewer), "d0")
    shape = [(p["Node Type"], p.get("Index Name")) for p in steps(queue)]
    # In queue order from the claim index, the first lockable row taken: no sort of the
    # queue, no join against the reviewer's reviews, one index probe per candidate.
    assert shape == [
        ("Limit", None),
        ("LockRows", None),
        ("Index Scan", "reviewitem_claim_queue"),
        ("Index Only Scan", "review_item_reviewer"),
    ]
    scan, probe = list(steps(queue))[2:]
    assert scan["Actual Rows"] == 1
    assert scan["Rows Removed by Filter"] == skipped  # the skipped ones, visited and passed
    assert probe["Actual Loops"] == skipped + 1
    assert probe["Actual Rows"] <= skipped


def test_the_claim_takes_the_first_item_not_reviewed_after_a_bulk_load(reviewer):
    agent = AgentFactory(slug="support-bot", domain="support")
    load(agent, reviewer, reviewed=1000, skipped=100, fresh=2000)
    forget_statistics()
    item = services.item_claim(reviewer=reviewer)
    assert item.interaction.external_id == "bulk-1101"


def test_the_claim_statement_is_prepared_after_a_few_claims(reviewer):
    """Planning the claim costs more than running it: on a connection that may prepare
    (not behind a transaction-mode pooler), PostgreSQL keeps it prepared."""
    agent = AgentFactory(slug="support-bot", domain="support")
    load(agent, reviewer, reviewed=0, skipped=0, fresh=10)
    for _ in range(7):
        assert services.item_claim(reviewer=reviewer) is not None
        services.ReviewItem.objects.filter(claimed_by=reviewer).update(
            status="pending", claimed_by=None, lease_expires_at=None
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ["%WITH mine AS%"],
        )
        [(runs,)] = cursor.fetchall()
    assert runs >= 2  # prepared at the fifth run, then run from it
