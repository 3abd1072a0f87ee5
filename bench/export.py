"""Export benchmark: `manage.py export_batch` to jsonl and parquet against a raw
server-side-cursor dump of the same rows, with each one's peak RSS.

    python bench/export.py [--n N] [--database-url URL] [--drop-db]

Targets (issue 6): the project's build reaches at least 50% of the raw dump's rows/s, and
its peak RSS stays under 300 MB, for 1,000,000 pairs.

What runs, in order, on a freshly migrated bench database (`coachdesk_bench_export`):
1. N decided interactions, their review items and their training pairs, written with COPY
   (about 1% exact duplicates, so de-duplication has work); not timed. Texts are realistic
   in size (input 100-300 characters, output 200-600) with some non-ASCII;
2. raw baseline, in a child process: a psycopg server-side cursor over the same columns of
   the same rows in the same order (pair id), each row written as a JSON array line with
   orjson, in chunks of 5,000;
3. `manage.py export_batch --agent bench-bot --format jsonl` then `--format parquet`, each a
   child process: wall clock (Django start-up included) and the child's own peak RSS; the
   row count and the sha256 it prints are checked against the file;
4. the raw dump again, so a slower or faster machine phase shows up as a spread.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from _common import (
    PYTHON,
    ROOT,
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    machine_load,
    manage,
    project_env,
    rate,
    run_measured,
    say,
    scalar,
    setup_database,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench_export"
TARGET_RATIO = 0.50
TARGET_RSS_MB = 300
AGENT = "bench-bot"
SEED = 20261127
DUPLICATE_EVERY = 100  # every 100th pair repeats the one before: ~1% exact duplicates
RAW_CHUNK = 5000
_BASE_TIME = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_VOCABULARY = (
    "the a an to of and or for with your our order refund shipping delivery address account "
    "password invoice payment card subscription plan warranty return policy days within item "
    "product customer support help please thank you we can cannot will would should could may "
    "need want check status tracking number parcel courier store online price discount coupon "
    "size colour model available stock week month contract clause liability terms privacy data "
    "request delete export consent café Größe naïve déjà résumé — → مرحبا שלום 日本語 is are "
    "was has have been this that it if then because when where which how what why here now"
)

# The NOT NULL columns the COPY below fills, per table; a column added later without a
# database default would make COPY fail, so it is reported up front instead.
FILLED = {
    "reviews_interaction": {
        "id", "external_id", "agent_version", "conversation_id", "input", "context", "output",
        "confidence", "intent", "domain", "metadata", "created_at", "ingested_at", "agent_id",
    },
    "reviews_reviewitem": {
        "id", "domain", "confidence", "source_created_at", "reason", "reason_detail",
        "priority", "status", "required_reviews", "final_verdict", "version", "created_at",
        "updated_at", "agent_id", "interaction_id", "decided_at",
    },
    "retraining_trainingpair": {
        "id", "agent_version", "source", "input", "context", "output", "rejected_output",
        "content_hash", "created_at", "agent_id", "interaction_id", "item_id",
        "error_category_id",
    },
}  # fmt: skip


# --- Data ---------------------------------------------------------------------------------------


class PairGenerator:
    """Deterministic pairs: slices of a long random-word corpus (distinct texts at the cost
    of two random calls each), 30% corrections with an error category."""

    def __init__(self, seed: int, categories: list[int]) -> None:
        self.rng = random.Random(seed)
        corpus_rng = random.Random(seed ^ 0x5EED)
        self.corpus = " ".join(corpus_rng.choices(_VOCABULARY.split(), k=200_000))
        self.categories = categories

    def _text(self, shortest: int, longest: int) -> str:
        rng = self.rng
        length = rng.randint(shortest, longest)
        start = rng.randrange(len(self.corpus) - longest)
        text = self.corpus[start : start + length].strip()
        return text[0].upper() + text[1:] + "."

    def pairs(self, n: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        previous: dict[str, Any] | None = None
        for i in range(1, n + 1):
            if previous is not None and i % DUPLICATE_EVERY == 0:
                text_in, text_out = previous["input"], previous["output"]
            else:
                text_in, text_out = self._text(100, 300), self._text(200, 600)
            correct = rng.random() < 0.3
            pair = {
                "id": i,
                "input": text_in,
                "output": text_out,
                "source": "correct" if correct else "approve",
                "rejected": self._text(200, 600) if correct else "",
                "category": rng.choice(self.categories) if correct else None,
                "version": rng.choice(("2026.10.2", "2026.11.1", "2026.11.2")),
                "at": _BASE_TIME - timedelta(seconds=rng.randrange(60 * 86_400)),
            }
            previous = pair
            yield pair


def check_schema(url: str) -> None:
    with connect(url) as conn:
        for table, filled in FILLED.items():
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                " AND is_nullable = 'NO' AND column_default IS NULL",
                (table,),
            ).fetchall()
            missing = sorted({r[0] for r in rows} - filled)
            if missing:
                raise SystemExit(f"bench/export.py does not fill {table}.{', '.join(missing)}")


def generate(url: str, n: int, seed: int) -> int:
    """COPYs n interactions, decided review items and training pairs; returns how many pairs
    repeat an earlier one exactly."""
    manage(
        url,
        "shell",
        "-c",
        f"from reviews.models import Agent\nAgent.objects.create(slug={AGENT!r}, name='Bench bot',"
        " domain='support')",
    )
    with connect(url) as conn:
        agent_id = conn.execute("SELECT id FROM reviews_agent WHERE slug = %s", (AGENT,)).fetchone()
        categories = [r[0] for r in conn.execute("SELECT id FROM reviews_errorcategory")]
    agent_id = agent_id[0]
    gen = PairGenerator(seed, categories)
    with connect(url) as conn:
        cur = conn.cursor()
        with cur.copy(
            "COPY reviews_interaction (id, agent_id, external_id, agent_version,"
            " conversation_id, input, context, output, confidence, intent, domain, metadata,"
            " created_at, ingested_at) FROM STDIN"
        ) as interactions:
            for p in gen.pairs(n):
                interactions.write_row(
                    (p["id"], agent_id, f"x-{p['id']:09d}", p["version"], "", "(bench)", "[]",
                     "(bench)", 0.5, "", "support", "{}", p["at"], p["at"])
                )  # fmt: skip
        gen = PairGenerator(seed, categories)
        with cur.copy(
            "COPY reviews_reviewitem (id, interaction_id, agent_id, domain, confidence,"
            " source_created_at, reason, reason_detail, priority, status, required_reviews,"
            " final_verdict, version, created_at, updated_at, decided_at) FROM STDIN"
        ) as items:
            for p in gen.pairs(n):
                items.write_row(
                    (p["id"], p["id"], agent_id, "support", 0.5, p["at"], "low_confidence", "",
                     0, "done", 1, p["source"], 2, p["at"], p["at"], p["at"])
                )  # fmt: skip
        gen = PairGenerator(seed, categories)
        with cur.copy(
            "COPY retraining_trainingpair (id, item_id, interaction_id, agent_id, agent_version,"
            " source, input, context, output, rejected_output, error_category_id,"
            " content_hash, created_at) FROM STDIN"
        ) as pairs:
            for p in gen.pairs(n):
                digest = hashlib.sha256(f"{p['input']}\x1f{p['output']}".encode()).hexdigest()
                pairs.write_row(
                    (p["id"], p["id"], p["id"], agent_id, p["version"], p["source"], p["input"],
                     "[]", p["output"], p["rejected"], p["category"], digest, p["at"])
                )  # fmt: skip
        for table in FILLED:
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            conn.execute(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))")
        conn.commit()
    with connect(url, autocommit=True) as conn:
        for table in FILLED:
            conn.execute(f"VACUUM ANALYZE {table}")
    # Counted in SQL, not in a set here: this process's size would become the floor of every
    # child's measured peak RSS (a forked child starts with its parent's high-water mark).
    return scalar(
        url, "SELECT count(*) - count(DISTINCT content_hash) FROM retraining_trainingpair"
    )


# --- Raw baseline -------------------------------------------------------------------------------

RAW_QUERY = (
    "SELECT p.id, p.input, p.output, p.source, p.agent_version, c.slug"
    " FROM retraining_trainingpair p LEFT JOIN reviews_errorcategory c"
    " ON c.id = p.error_category_id"
    " WHERE p.agent_id = (SELECT id FROM reviews_agent WHERE slug = %s) ORDER BY p.id"
)


def raw_dump_child(url: str, out_path: str) -> None:
    """Runs in the child process: the raw dump, printing its row count and seconds."""
    started = time.perf_counter()
    rows = 0
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with connect(url) as conn, conn.cursor(name="raw_dump") as cur:
        cur.itersize = RAW_CHUNK
        cur.execute(RAW_QUERY, (AGENT,))
        with open(out_path, "wb", buffering=1 << 20) as out:
            while chunk := cur.fetchmany(RAW_CHUNK):
                out.write(b"".join([dumps(row, option=newline) for row in chunk]))
                rows += len(chunk)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))


def raw_dump(url: str, workdir: Path) -> dict[str, Any]:
    out = workdir / "raw.jsonl"
    run = run_measured(
        [PYTHON, str(Path(__file__).resolve()), "--raw-child", out.as_posix(), "--database-url",
         url],
        env=child_env(url),
        workdir=workdir,
    )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"raw dump exited {run.returncode}:\n{run.stderr[-3000:]}")
    inner = json.loads(run.stdout.strip().splitlines()[-1])
    size = out.stat().st_size
    out.unlink()
    return {"rows": inner["rows"], "seconds": run.seconds, "peak_rss_mb": run.peak_rss_mb,
            "bytes": size}  # fmt: skip


# --- The project's path -------------------------------------------------------------------------


def child_env(url: str, **extra: str) -> dict[str, str]:
    """A production-like child: bytecode caching on, as in a deployment (a developer's
    PYTHONDONTWRITEBYTECODE would make every run recompile the project)."""
    env = project_env(url, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def export(url: str, fmt: str, workdir: Path) -> dict[str, Any]:
    run = run_measured(
        [PYTHON, "manage.py", "export_batch", "--agent", AGENT, "--format", fmt],
        env=child_env(url, MEDIA_ROOT=(workdir / "media").as_posix()),
        workdir=workdir,
    )
    if run.returncode != 0:
        raise SystemExit(
            f"export_batch --format {fmt} exited {run.returncode}\nstdout: {run.stdout[-2000:]}"
            f"\nstderr: {run.stderr[-3000:]}"
        )
    printed = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines() if " " in line)
    path = Path(printed["path"])
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    result = {
        "id": int(printed["id"]),
        "rows": int(printed["rows"]),
        "sha256": printed["sha256"],
        "sha256_ok": sha.hexdigest() == printed["sha256"],
        "bytes": path.stat().st_size,
        "seconds": run.seconds,
        "peak_rss_mb": run.peak_rss_mb,
    }
    path.unlink()  # a million rows twice is a lot of disk
    return result


# --- Main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="training pairs")
    parser.add_argument(
        "--database-url",
        default=None,
        help="bench database, dropped and re-created (name must start with coachdesk_bench; "
        f"default $BENCH_DATABASE_URL or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--raw-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_child:
        raw_dump_child(args.database_url, args.raw_child)
        return 0
    if args.n < 1:
        parser.error("--n must be positive")
    n = args.n
    url = bench_database_url(
        args.database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    )

    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-export-"))
    try:
        say(f"export bench: n={n:,} db={database_name(url)}")
        say(machine_load())
        started = time.perf_counter()
        setup_database(url)
        check_schema(url)
        duplicates = generate(url, n, args.seed)
        say(
            f"generated {n:,} pairs ({duplicates:,} exact duplicates) with COPY in "
            f"{time.perf_counter() - started:.1f}s"
        )
        expected = n - duplicates
        # Warm-up, not timed: imports compiled to bytecode once, as on a deployed machine.
        subprocess.run(
            [PYTHON, "manage.py", "export_batch", "--help"],
            cwd=ROOT, env=child_env(url), capture_output=True, check=True,
        )  # fmt: skip

        checkpoint(url)
        raw = raw_dump(url, workdir)
        say(
            f"raw dump:  {raw['rows']:,} rows in {raw['seconds']:.2f}s = "
            f"{rate(raw['rows'], raw['seconds']):,.0f} rows/s, peak RSS {raw['peak_rss_mb']} MB"
        )
        results = {}
        for fmt in ("jsonl", "parquet"):
            checkpoint(url)
            results[fmt] = export(url, fmt, workdir)
            r = results[fmt]
            say(
                f"{fmt:<9}  {n:,} pairs → {r['rows']:,} rows ({r['bytes'] / 1e6:,.0f} MB) in "
                f"{r['seconds']:.2f}s = {rate(n, r['seconds']):,.0f} rows/s, "
                f"peak RSS {r['peak_rss_mb']} MB"
            )
        checkpoint(url)
        raw_again = raw_dump(url, workdir)
        say(
            f"raw again: {raw_again['rows']:,} rows in {raw_again['seconds']:.2f}s = "
            f"{rate(raw_again['rows'], raw_again['seconds']):,.0f} rows/s"
        )
        say(machine_load())

        # The baseline is the faster of the two raw runs: the ratio is never flattered.
        raw_seconds = min(raw["seconds"], raw_again["seconds"])
        raw_rps = rate(n, raw_seconds)
        held = scalar(url, "SELECT count(*) FROM retraining_batchpair")
        checks = [
            (raw["rows"] == n, f"raw dump rows {raw['rows']:,} (expected {n:,})"),
            *[
                (r["rows"] == expected, f"{fmt} rows {r['rows']:,} (expected {expected:,})")
                for fmt, r in results.items()
            ],
            *[(r["sha256_ok"], f"{fmt} sha256 matches the file") for fmt, r in results.items()],
            (held == 2 * n, f"pairs held by the two batches {held:,} (expected {2 * n:,})"),
        ]
        for ok, text in checks:
            say(f"check {'ok  ' if ok else 'FAIL'} {text}")
        figures: dict[str, Any] = {"bench": "export", "n": n}
        for fmt, r in results.items():
            rps = rate(n, r["seconds"])
            figures |= {
                f"{fmt}_rows_per_s": rps,
                f"{fmt}_ratio": round(rps / raw_rps, 3) if raw_rps else 0.0,
                f"{fmt}_seconds": round(r["seconds"], 2),
                f"{fmt}_peak_rss_mb": r["peak_rss_mb"],
                f"{fmt}_mb": round(r["bytes"] / 1e6, 1),
            }
        ratio = min(figures["jsonl_ratio"], figures["parquet_ratio"])
        peak = max(figures["jsonl_peak_rss_mb"], figures["parquet_peak_rss_mb"])
        figures |= {
            "rows_per_s": figures["jsonl_rows_per_s"],
            "raw_rows_per_s": raw_rps,
            "raw_seconds": round(raw_seconds, 2),
            "raw_rows_per_s_runs": [
                rate(n, raw["seconds"]),
                rate(n, raw_again["seconds"]),
            ],
            "ratio": ratio,
            "peak_rss_mb": peak,
            "raw_peak_rss_mb": max(raw["peak_rss_mb"], raw_again["peak_rss_mb"]),
            "rows_out": expected,
            "duplicates_dropped": duplicates,
            "checks_ok": all(ok for ok, _ in checks),
            "meets_targets": ratio >= TARGET_RATIO and peak < TARGET_RSS_MB,
        }
        say(
            f"ratio {ratio:.2f} (target >= {TARGET_RATIO:.2f}); peak RSS {peak:.0f} MB "
            f"(target < {TARGET_RSS_MB} MB)"
        )
        emit_figures(figures)
        return 0 if figures["checks_ok"] else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
