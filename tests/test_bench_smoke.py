"""Smoke run of the benchmarks at a tiny size: they run end to end and print their figures.

The bench works on a database of its own (created and dropped by the run, named after this
process so parallel runs do not collide), never on the test database; it only borrows the
PostgreSQL server the suite runs against.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench_database_url() -> str:
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x")
    return server._replace(path=f"/coachdesk_bench_smoke_{os.getpid()}").geturl()


def _run_bench(script: str, *args: str) -> dict:
    proc = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, f"bench/{script}", *args, "--database-url", _bench_database_url(),
         "--drop-db"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_ingest_figures_as_its_last_line():
    figures = _run_bench("ingest.py", "--n", "2000", "--http-n", "2000")

    assert figures["bench"] == "ingest"
    assert figures["n"] == figures["stored"] == 2000
    assert figures["rows_per_s"] > 0 and figures["raw_rows_per_s"] > 0 and figures["ratio"] > 0
    assert figures["peak_rss_mb"] > 0 and figures["peak_rss_mb_small_n"] > 0
    assert figures["low_confidence"] == figures["low_confidence_expected"] > 0
    assert figures["routed"] >= figures["low_confidence"]
    assert figures["http_n"] == figures["http_created"] == 2000
    assert figures["http_rows_per_s"] > 0
    assert figures["checks_ok"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_otlp_figures_as_its_last_line():
    figures = _run_bench("otlp.py", "--spans", "1024", "--gzip")

    assert figures["bench"] == "otlp" and figures["gzip"] is True
    assert figures["spans"] == figures["otlp_stored"] == figures["json_stored"] == 1024
    assert figures["otlp_rows_per_s"] > 0 and figures["json_rows_per_s"] > 0
    assert figures["ratio"] > 0
    assert figures["low_confidence"] == figures["low_confidence_expected"] > 0
    assert figures["checks_ok"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_capacity_figures_as_its_last_line():
    figures = _run_bench("capacity.py", "--smoke")

    assert figures["bench"] == "capacity" and figures["smoke"] is True
    ops = figures["ops"]
    assert set(ops) >= {"healthz", "ingest", "claim", "review", "approve", "correct",
                        "console", "kpis", "export_jsonl"}  # fmt: skip
    for name, op in ops.items():
        assert op["app_cpu_ms"] > 0 and op["db_cpu_ms"] > 0, name
        assert op["cpu_ms"] == pytest.approx(op["app_cpu_ms"] + op["db_cpu_ms"], abs=0.01), name
        if name != "healthz":
            assert op["raw_db_cpu_ms"] > 0 and op["ratio"] > 0, name
    assert ops["kpis"]["scaled_linearly"] is True  # measured below a million rows
    plan = figures["capacity"]
    assert {row["tier"] for row in plan["rows"]} == {"web", "worker"}
    for tier in ("web", "worker", "db"):
        assert plan[tier]["cpu_s_per_s"] > 0 and plan[tier]["cores"] >= 1, tier
    assert figures["checks_ok"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_reviewer_loop_figures_as_its_last_line():
    figures = _run_bench("reviewer_loop.py", "--smoke")

    assert figures["bench"] == "reviewer_loop" and figures["smoke"] is True
    assert figures["items"] == 100 and figures["errors"] == 0
    assert figures["claimed"] == figures["decided_in_db"] == figures["items"] + figures["warmup"]
    assert figures["items_per_s"] > 0 and figures["raw_items_per_s"] > 0 and figures["ratio"] > 0
    for name in ("pair", "claim", "decision"):
        assert 0 < figures[f"{name}_p50_ms"] <= figures[f"{name}_p95_ms"], name
    assert figures["pair_p50_ms"] > figures["claim_p50_ms"]
    cpu = figures["server_cpu_ms_per_pair"]
    assert cpu["web"] > 0 and cpu["db"] > 0 and figures["raw_db_cpu_ms_per_pair"] > 0
    assert figures["raw_errors"] == 0 and figures["raw_decided_in_db"] == figures["raw_items"]
    assert figures["label_studio_items_per_s"] == {"100k": 4.9, "10k": 7.7}
    assert figures["checks_ok"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_regression_figures_as_its_last_line():
    figures = _run_bench("regression.py", "--n", "300")

    assert figures["bench"] == "regression" and figures["n"] == figures["stored"] == 300
    assert (figures["matched"], figures["unchanged"], figures["routed"]) == (100, 100, 100)
    assert figures["answers_per_s"] > 0 and figures["ingest_rows_per_s"] > 0
    assert figures["ratio"] > 0 and figures["meets_target"] is True
    assert figures["http"] is True and figures["target_judged_on"] == "http"
    http_counts = (figures["http_matched"], figures["http_unchanged"], figures["http_routed"])
    assert http_counts == (100, 100, 100)
    assert figures["http_answers_per_s"] > 0 and figures["http_ingest_rows_per_s"] > 0
    assert figures["http_ratio"] > 0
    assert figures["checks_ok"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_redaction_figures_as_its_last_line():
    figures = _run_bench("redaction.py", "--n", "1000")

    assert figures["bench"] == "redaction"
    assert figures["checks_ok"] is True
    assert figures["leaks"] == 0
    # Every planted value was counted: a third of the rows carry an e-mail and a phone, a
    # tenth an IBAN and a card (bench/redaction.py's data).
    assert figures["redacted"] == {"email": 334, "phone": 334, "iban": 100, "card": 100}
