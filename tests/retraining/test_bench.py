"""Smoke run of bench/export.py at a tiny size: it runs end to end, checks its own output and
prints its figures as one JSON line. It works on a database of its own (created and dropped
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
def test_it_prints_the_export_figures_as_its_last_line():
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x")
    url = server._replace(path=f"/coachdesk_bench_export_smoke_{os.getpid()}").geturl()

    proc = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [sys.executable, "bench/export.py", "--n", "3000", "--database-url", url, "--drop-db"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip

    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "export" and figures["n"] == 3000
    assert figures["checks_ok"] is True
    assert figures["rows_out"] == 3000 - figures["duplicates_dropped"] > 0
    for key in ("jsonl_rows_per_s", "parquet_rows_per_s", "raw_rows_per_s", "ratio"):
        assert figures[key] > 0
    assert 0 < figures["peak_rss_mb"] < 1000
