"""The load test (bench/load.py) at a tiny size, and the counts it makes.

The run works on a database of its own (`coachdesk_load_smoke_<pid>`, dropped afterwards) on
the suite's PostgreSQL server and on Redis DB 8 (flushed first), never on the test database.
A clean run only means something if each count fires on what it counts, so the counting
functions are also checked on hand-made logs.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def load():
    """bench/load.py as a module (it imports its sibling `_common` as the benches do)."""
    bench = str(ROOT / "bench")
    sys.path.insert(0, bench)
    try:
        spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(bench)
    return module


# --- the counts, on hand-made logs ----------------------------------------------------------


def test_it_counts_a_claim_while_another_reviewer_holds_the_item(load):
    rows = [(7, "item.claimed", 1), (7, "item.claimed", 2)]

    found = load.audit_claim_violations(rows)

    assert found["double_claims"] == 1 and found["items"] == [7]


def test_it_counts_a_claim_of_a_decided_item(load):
    rows = [(7, "item.claimed", 1), (7, "item.decided", 1), (7, "item.claimed", 2)]

    found = load.audit_claim_violations(rows)

    assert found["claims_of_closed_items"] == 1 and found["double_claims"] == 0


def test_it_accepts_claims_after_a_release_and_a_second_review(load):
    rows = [
        (7, "item.claimed", 1),
        (7, "item.released", 1),  # a skip
        (7, "item.claimed", 2),
        (7, "item.released", 2),  # first of a four-eyes pair: to the second-review queue
        (7, "item.claimed", 3),
        (7, "item.decided", 3),
    ]

    found = load.audit_claim_violations(rows)

    assert (found["claims"], found["double_claims"], found["claims_of_closed_items"]) == (3, 0, 0)


def _claim(user, item, t0, t1, new=True):
    return {"user": user, "item": item, "t0": t0, "t1": t1, "new": new}


def _decision(user, item, t0, acked=True, verdict="approve"):
    return {"user": user, "item": item, "t0": t0, "t1": t0 + 0.1, "acked": acked,
            "verdict": verdict}  # fmt: skip


def test_it_counts_two_reviewers_holding_an_item_at_once_in_their_logs(load):
    claims = [_claim("a", 7, 1.0, 1.1), _claim("b", 7, 2.0, 2.1)]
    decisions = [_decision("a", 7, 3.0)]  # a still held it when b was handed it

    found = load.client_claim_violations(claims, decisions, run_end=10.0)

    assert found["double_claims"] == 1 and found["items"] == [7]


def test_it_accepts_an_item_handed_on_after_a_decision(load):
    claims = [_claim("a", 7, 1.0, 1.1), _claim("b", 7, 3.05, 3.2)]
    decisions = [_decision("a", 7, 3.0, verdict="skip"), _decision("b", 7, 4.0)]

    found = load.client_claim_violations(claims, decisions, run_end=10.0)

    assert found["double_claims"] == 0 and found["reclaims"] == 0


def test_it_counts_a_reviewer_handed_the_same_item_twice_but_not_a_resume(load):
    claims = [_claim("a", 7, 1.0, 1.1), _claim("a", 7, 2.0, 2.1, new=False)]
    assert load.client_claim_violations(claims, [], run_end=10.0)["reclaims"] == 0

    claims.append(_claim("a", 7, 5.0, 5.1))
    assert load.client_claim_violations(claims, [], run_end=10.0)["reclaims"] == 1


def test_it_counts_an_acknowledged_decision_without_its_review_row_as_lost(load):
    acked = [{"user": "a", "item": 7, "verdict": "approve"}, {"user": "a", "item": 8,
             "verdict": "reject"}]  # fmt: skip
    rows = [(7, 1, "approve"), (9, 1, "skip")]

    found = load.lost_reviews(acked, rows, {"a": 1})

    assert (found["lost"], found["unacked"], found["lost_examples"]) == (1, 1, [[8, 1, "reject"]])


def test_it_reads_5xx_from_the_access_log(load):
    lines = [
        '[27/Nov/2026:10:00:00 +0000] "POST /review/12/decide HTTP/1.1" 500 145 30',
        '[27/Nov/2026:10:00:00 +0000] "GET /queue/?domain=legal HTTP/1.1" 200 9000 12',
    ]

    found = load.access_log_statuses(lines)

    assert found == {("POST /review/[id]/decide", 500): 1, ("GET /queue/", 200): 1}


def test_it_takes_exact_nearest_rank_percentiles(load):
    values = list(range(1, 101))

    assert [load.percentile(values, q) for q in (0.5, 0.95, 0.99)] == [50, 95, 99]


# --- the run --------------------------------------------------------------------------------


def _urls() -> tuple[str, str]:
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x")
    database = server._replace(path=f"/coachdesk_load_smoke_{os.getpid()}").geturl()
    redis = urlsplit(os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0")
    return database, redis._replace(path="/8").geturl()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_it_runs_reviewers_and_ingest_against_the_stack_without_errors():
    database_url, redis_url = _urls()
    proc = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/load.py", "--duration", "15", "--reviewers", "4",
         "--ingest-rate", "50", "--ingest-batch", "25", "--backlog", "200",
         "--think-min", "0.2", "--think-max", "0.6", "--workers", "2", "--threads", "2",
         "--database-url", database_url, "--redis-url", redis_url, "--drop-db"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"load.py exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    figures = json.loads(proc.stdout.strip().splitlines()[-1])

    assert figures["bench"] == "load" and figures["ok"] is True
    assert figures["http_5xx"] == figures["http_5xx_gunicorn"] == 0
    assert figures["connection_errors"] == 0
    assert figures["double_claims"] == figures["reclaims"] == 0
    assert figures["lost_reviews"] == 0
    assert figures["reviewers_logged_in"] == 4
    assert figures["decisions_acked"] > 0 and figures["reviews_made"] > 0
    assert figures["claims_client"] == figures["claims_audit"] > 0
    assert figures["interactions_created"] == figures["interactions_stored"] > 0
    assert figures["page_p95_ms"] > 0
