"""Smoke run of bench/kpis.py at a tiny size: it runs end to end, its checks pass, and it
prints its figures as its last line. It works on a database of its own (created and dropped
by the run), never on the test database."""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.slow
def test_it_prints_the_kpi_bench_figures_as_its_last_line():
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x")
    url = server._replace(path=f"/coachdesk_bench_kpis_smoke_{os.getpid()}").geturl()
    proc = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/kpis.py", "--n", "3000", "--days", "7", "--database-url", url,
         "--drop-db"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "kpis" and figures["n"] == 3000
    assert figures["checks_ok"] is True
    assert figures["full_recompute_s"] > 0 and figures["raw_sql_s"] > 0
    assert figures["incremental_s"] > 0 and figures["incremental_agent_days"] >= 1
    assert figures["reviews"] > figures["review_items"] * 0.9
