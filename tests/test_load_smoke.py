"""The load test (bench/load.py) at a tiny size, and the counts it makes.

The run works on a database of its own (`coachdesk_load_smoke_<pid>`, dropped afterwards) on
the suite's PostgreSQL server and on Redis DB 8 (flushed first; LOAD_SMOKE_REDIS_DB picks
another), never on the test database. A clean run only means something if each count fires
on what it counts, so the counting functions are also checked on hand-made logs.
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


# --- the CPU breakdown and the rate search, on hand-made figures ---------------------------


def test_it_counts_only_the_load_databases_backends_as_its_postgres(load):
    titles = {
        "postgres: 15/main: postgres coachdesk_load 127.0.0.1(50112) idle": "postgres",
        "postgres: postgres coachdesk_load [local] SELECT": "postgres",
        "postgres: 15/main: autovacuum worker coachdesk_load": "postgres",
        "postgres: 15/main: postgres coachdesk_load_smoke_1 127.0.0.1(50113) idle": (
            "postgres-other-dbs"
        ),
        "postgres: 15/main: app coachdesk 127.0.0.1(50114) idle": "postgres-other-dbs",
        "postgres: 15/main: walwriter ": "postgres-shared",
        "/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql\0": "postgres-shared",
    }

    found = {title: load.postgres_component(title, "coachdesk_load") for title in titles}

    assert found == titles


def test_it_splits_cpu_into_generator_server_and_the_rest_of_the_machine(load):
    used = {"locust": 5.0, "orchestrator": 1.0, "gunicorn": 20.0, "postgres": 6.0,
            "redis": 1.0, "postgres-other-dbs": 4.0}  # fmt: skip

    # 2 cores for 30 s: 60 core-seconds, 48 of them busy.
    cpu = load.cpu_breakdown(used, busy=48.0, capacity=60.0, seconds=30.0, cores=2)

    assert (cpu["cpu_generator_s"], cpu["cpu_server_s"], cpu["cpu_other_s"]) == (6.0, 27.0, 15.0)
    assert (cpu["cpu_share_generator"], cpu["cpu_share_server"]) == (0.1, 0.45)
    assert (cpu["cpu_share_other"], cpu["cpu_share_idle"]) == (0.25, 0.2)
    assert cpu["cores_busy"] == 1.6
    assert "postgres-other-dbs" not in cpu["cpu_s"]  # another database's work is "other"


def test_it_doubles_the_ingest_rate_while_it_holds_then_bisects(load):
    def after(*steps):
        return load.next_rate(steps, start=500, ceiling=2000, resolution=50)

    assert after() == 500
    assert after((500, True)) == 1000
    assert after((500, True), (1000, False)) == 750
    assert after((500, True), (1000, False), (750, True)) == 875
    assert after((500, True), (1000, False), (750, True), (875, False), (810, True)) == 840
    assert after((500, True), (1000, False), (750, True), (875, False), (840, True)) is None


def test_it_halves_the_rate_until_one_holds_and_stops_at_the_ceiling(load):
    def after(*steps):
        return load.next_rate(steps, start=500, ceiling=2000, resolution=50)

    assert after((500, False)) == 250
    assert after((500, False), (250, True)) == 375
    assert after((500, False), (250, False), (125, False)) == 60  # a multiple of 5
    assert after((500, False), (250, False), (125, False), (60, False)) is None  # 30 < 50
    assert after((500, True), (1000, True)) == 2000
    assert after((500, True), (1000, True), (2000, True)) is None


def _request(t, name, ms, status=200):
    return {"t": t, "name": name, "ms": ms, "status": status}


def test_it_misses_a_step_whose_pages_are_slow_or_whose_ingest_fell_behind(load):
    requests = [_request(10 + i, "GET /review/[id]/", 100) for i in range(19)]
    requests += [_request(30, "GET /queue/", 400), _request(30.5, "POST /queue/claim", 500)]
    requests += [_request(50, "GET /queue/", 900), _request(20, "POST /api/v1/interactions", 900)]
    events = [{"ev": "ingest", "t0": 10 + i, "status": 200, "created": 50} for i in range(20)]

    window = load.window_figures(events, requests, 10.0, 30.0)  # not the API, nor after 30 s
    assert (window["pages"], window["page_p95_ms"], window["review_p95_ms"]) == (19, 100, 100)
    assert window["ingest_rate_achieved"] == 50.0  # 20 batches of 50 in 20 s

    assert load.step_misses({**window, "rate": 50}, limit_ms=300) == []
    assert load.step_misses({**window, "rate": 100}, limit_ms=300) == ["ingest 50/s of 100/s"]
    window = load.window_figures(events, requests, 10.0, 31.0)  # 2 slow pages of 21: p95 400
    assert load.step_misses({**window, "rate": 45}, limit_ms=300) == ["page p95 400 ms >= 300 ms"]


# --- the run --------------------------------------------------------------------------------


def _urls() -> tuple[str, str]:
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x")
    database = server._replace(path=f"/coachdesk_load_smoke_{os.getpid()}").geturl()
    redis = urlsplit(os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0")
    return database, redis._replace(path=f"/{os.environ.get('LOAD_SMOKE_REDIS_DB', '8')}").geturl()


def _run_load(*args: str, allowed_rc: tuple[int, ...] = (0,)) -> dict:
    database_url, redis_url = _urls()
    proc = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/load.py", *args, "--database-url", database_url,
         "--redis-url", redis_url, "--drop-db"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = f"load.py exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode in allowed_rc, output
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "rc": proc.returncode}


def _assert_sane_cpu(cpu: dict) -> None:
    """The CPU breakdown of a window: shares of the machine that add up, and both the load
    generator and the server seen working."""
    shares = [cpu[f"cpu_share_{group}"] for group in ("generator", "server", "other")]
    assert all(0 <= share <= 1 for share in shares), shares
    assert sum(shares) <= 1.05, shares
    assert cpu["cpu_share_generator"] > 0 and cpu["cpu_share_server"] > 0
    assert cpu["cpu_generator_s"] > 0 and cpu["cpu_server_s"] > 0
    assert set(cpu["cpu_s"]) <= {"locust", "orchestrator", "gunicorn", "celery-worker",
                                 "celery-beat", "postgres", "postgres-shared", "redis"}  # fmt: skip
    assert cpu["cores"] >= 1 and 0 < cpu["cores_busy"] <= cpu["cores"] * 1.05


def _assert_whole_run_cpu(figures: dict) -> None:
    _assert_sane_cpu(figures)
    assert figures["cpu_s"]["locust"] > 0 and figures["cpu_s"]["gunicorn"] > 0
    assert figures["cpu_s"]["postgres"] > 0  # the load database's backends, by their title


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_it_runs_reviewers_and_ingest_against_the_stack_without_errors():
    figures = _run_load(
        "--duration", "15", "--reviewers", "4", "--ingest-rate", "50", "--ingest-batch", "25",
        "--backlog", "200", "--think-min", "0.2", "--think-max", "0.6", "--workers", "2",
        "--threads", "2",
    )  # fmt: skip

    assert figures["bench"] == "load" and figures["mode"] == "fixed_rate"
    assert figures["ok"] is True
    assert figures["http_5xx"] == figures["http_5xx_gunicorn"] == 0
    assert figures["connection_errors"] == 0
    assert figures["double_claims"] == figures["reclaims"] == 0
    assert figures["lost_reviews"] == 0
    assert figures["reviewers_logged_in"] == 4
    assert figures["decisions_acked"] > 0 and figures["reviews_made"] > 0
    assert figures["claims_client"] == figures["claims_audit"] > 0
    assert figures["interactions_created"] == figures["interactions_stored"] > 0
    assert figures["page_p95_ms"] > 0
    _assert_whole_run_cpu(figures)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_it_steps_the_ingest_rate_on_one_stack_and_reports_each_step():
    # A limit no page reaches, so a step is missed only when the ingest falls behind (on a
    # busy machine it can): exit code 1 is then "no rate held", and nothing else.
    figures = _run_load(
        "--find-max-rate", "--ingest-rate", "50", "--max-rate", "100", "--max-steps", "2",
        "--rate-resolution", "10", "--step-seconds", "6", "--settle-seconds", "1",
        "--p95-limit-ms", "60000", "--reviewers", "3", "--ingest-batch", "5", "--backlog", "100",
        "--spawn-rate", "5", "--think-min", "0.2", "--think-max", "0.6", "--workers", "2",
        "--threads", "2", allowed_rc=(0, 1),
    )  # fmt: skip

    assert figures["mode"] == "find_max_rate" and figures["p95_limit_ms"] == 60000
    steps = figures["steps"]
    assert [s["step"] for s in steps] == [0, 1]
    assert steps[0]["rate"] == 50
    assert steps[1]["rate"] == (100 if steps[0]["held"] else 25)  # doubled, or halved
    for step in steps:
        assert step["held"] is (not step["missed"])
        assert step["measured_s"] >= 6 and step["pages"] > 0 and step["page_p95_ms"] > 0
        assert step["ingest_rate_achieved"] > 0
        assert step["http_5xx"] == step["connection_errors"] == 0
        _assert_sane_cpu(step)
    held = [s["rate"] for s in steps if s["held"]]
    assert figures["max_rate_held"] == max(held, default=None)
    assert figures["ok"] is bool(held) and figures["rc"] == (0 if held else 1)
    assert figures["failed_checks"] == ([] if held else ["no rate held"])
    # Correctness over the whole run, as in the fixed-rate mode.
    assert figures["http_5xx"] == figures["http_5xx_gunicorn"] == 0
    assert figures["double_claims"] == figures["reclaims"] == figures["lost_reviews"] == 0
    assert figures["interactions_created"] == figures["interactions_stored"] > 0
    _assert_whole_run_cpu(figures)
