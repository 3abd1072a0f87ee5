"""Ingest benchmark: the CLI import path against a raw psycopg COPY of the same rows, and the
HTTP API in batches of 1,000.

    python bench/ingest.py [--n N] [--http-n M] [--database-url URL]

Targets (the issue): the CLI path reaches at least 50% of raw COPY throughput with routing
on (the ANALYZE the import ends with included), with peak RSS flat in N; the HTTP path reaches
at least 10,000 interactions/s.

What runs, in order, on a freshly migrated bench database (`coachdesk_bench` by default):
1. generate N interactions (JSONL) and N/10 for the memory check; not timed;
2. raw baseline: psycopg COPY of the same column values into a scratch table with the
   interaction table's columns and no indexes, committing every 5,000 rows like the project;
   only COPY + commit are timed (the rows are built between the timed chunks);
3. `manage.py import_interactions FILE` as a subprocess for N/10 then (tables emptied) N
   rows, wall clock and the child's peak RSS; then the counts are checked in SQL, and that the
   import analyzed the interaction and review item tables (ingest.analyze, in
   pg_stat_user_tables); the time of that ANALYZE, part of the CLI time, is read from the
   line the import logs about it;
4. gunicorn (2 workers) and 2 client threads POSTing pre-serialised batches of 1,000.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import queue
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from _common import (
    PYTHON,
    Stopwatch,
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    gunicorn,
    machine_load,
    make_token,
    project_env,
    rate,
    run_measured,
    say,
    scalar,
    setup_database,
)

TARGET_RATIO = 0.50
TARGET_HTTP_ROWS_PER_S = 10_000

# The default agent policy (reviews.models.Agent): the generated agents are unknown to the
# database, so ingest creates them with it.
THRESHOLD = 0.7
AUDIT_RATE = 0.02
LOW_SHARE = 0.30  # share of interactions generated below the threshold
COMMIT_EVERY = 5000  # settings.INGEST_BATCH_SIZE: the project commits every 5,000 rows
HTTP_BATCH = 1000
SEED = 20261120

# The columns ingest writes (ingest.writers.INTERACTION_COLUMNS), in that order.
COLUMNS = (
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

AGENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "support-bot": {
        "versions": ("2026.10.2", "2026.11.1", "2026.11.2"),
        "domains": ("support", "shipping", "billing"),
        "intents": ("returns", "order-status", "delivery", "refund", "account", "complaint"),
    },
    "shop-recommender": {
        "versions": ("r-41", "r-42"),
        "domains": ("catalog",),
        "intents": ("similar-items", "upsell", "bundle", "search"),
    },
    "legal-assistant": {
        "versions": ("1.4.0", "1.5.0"),
        "domains": ("legal",),
        "intents": ("contract-terms", "gdpr", "liability", "warranty"),
    },
    "billing-bot": {
        "versions": ("b7", "b8", "b9"),
        "domains": ("billing",),
        "intents": ("invoice", "payment-failed", "vat", "subscription"),
    },
}
AGENT_WEIGHTS = (5, 3, 1, 2)

_VOCABULARY = (
    "the a an to of and or for with your our order orders refund refunds shipping delivery "
    "address account password invoice invoices payment card subscription plan warranty return "
    "returns policy days within item items product products customer support help please thank "
    "you we can cannot will would should could may might need want check status tracking number "
    "parcel courier store online price discount coupon code size colour color model available "
    "stock week month contract clause liability terms conditions privacy data request delete "
    "export consent legal advice jurisdiction café Größe naïve déjà résumé — → is are was were "
    "has have had been this that these those it its if then because when where which who how "
    "what why here there now today tomorrow yesterday again sorry unfortunately great sure"
)
_WORDS = _VOCABULARY.split()
_BASE_TIME = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class InteractionGenerator:
    """Deterministic interactions of realistic size: input ~100-300 characters, output
    ~200-600, two to four prior turns, and confidence uniform on [lo, 1) with lo chosen so
    that LOW_SHARE of it lies below THRESHOLD (those are routed as low confidence)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        corpus_rng = random.Random(seed ^ 0x5EED)
        self.corpus = " ".join(corpus_rng.choices(_WORDS, k=200_000))
        self.low = (THRESHOLD - LOW_SHARE) / (1 - LOW_SHARE)
        self.slugs = tuple(AGENTS)

    def _text(self, shortest: int, longest: int) -> str:
        # A slice of a long random-word corpus: distinct texts at the cost of two random calls.
        rng = self.rng
        length = rng.randint(shortest, longest)
        start = rng.randrange(len(self.corpus) - longest)
        text = self.corpus[start : start + length].strip()
        return text[0].upper() + text[1:] + "."

    def records(self, n: int, prefix: str) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for i in range(n):
            slug = rng.choices(self.slugs, AGENT_WEIGHTS)[0]
            agent = AGENTS[slug]
            context = []
            for turn in range(rng.randint(2, 4)):
                role = "user" if turn % 2 == 0 else "assistant"
                context.append({"role": role, "content": self._text(40, 200)})
            created = _BASE_TIME - timedelta(seconds=rng.randrange(90 * 86_400))
            yield {
                "external_id": f"{prefix}-{i:09d}",
                "agent": slug,
                "agent_version": rng.choice(agent["versions"]),
                "conversation_id": f"{prefix}-c-{i // 3:08d}",
                "input": self._text(100, 300),
                "context": context,
                "output": self._text(200, 600),
                "confidence": round(rng.uniform(self.low, 1.0), 4),
                "intent": rng.choice(agent["intents"]),
                "domain": rng.choice(agent["domains"]),
                "resolved": rng.random() < 0.7,
                "escalated": rng.random() < 0.05,
                "sentiment": round(rng.uniform(-1.0, 1.0), 3),
                "turns": len(context) + 2,
                "metadata": {
                    "channel": rng.choice(("web", "app", "email", "whatsapp")),
                    "locale": rng.choice(("en-GB", "de-DE", "fr-FR", "nl-NL")),
                    "latency_ms": rng.randint(150, 4000),
                },
                "created_at": created.isoformat().replace("+00:00", "Z"),
            }


def generate(n: int, prefix: str, seed: int) -> Iterator[dict[str, Any]]:
    return InteractionGenerator(seed).records(n, prefix)


def write_jsonl(path: Path, n: int, prefix: str, seed: int) -> int:
    """Writes n interactions to `path`; returns how many are below the threshold."""
    low = 0
    with path.open("wb", buffering=1 << 20) as out:
        for rec in generate(n, prefix, seed):
            low += rec["confidence"] < THRESHOLD
            out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
    return low


def as_row(rec: dict[str, Any], agent_ids: dict[str, int]) -> tuple:
    """The column values ingest would write for `rec` (JSON columns as JSON text, as
    ingest/validation.py hands them to COPY)."""
    return (
        agent_ids[rec["agent"]],
        rec["external_id"],
        rec["agent_version"],
        rec["conversation_id"],
        rec["input"],
        orjson.dumps(rec["context"]).decode(),
        orjson.dumps(rec.get("steps") or []).decode(),
        rec["output"],
        rec["confidence"],
        rec["intent"],
        rec["domain"],
        rec["resolved"],
        rec["escalated"],
        rec["sentiment"],
        rec["turns"],
        orjson.dumps(rec["metadata"]).decode(),
        datetime.fromisoformat(rec["created_at"]),
    )


# --- Raw baseline -------------------------------------------------------------------------------


def raw_copy(url: str, n: int, prefix: str, seed: int) -> float:
    """Seconds spent in COPY + commit for n rows into a scratch table shaped like
    reviews_interaction (same column types, generated id, no indexes or constraints)."""
    agent_ids = {slug: i for i, slug in enumerate(AGENTS, start=1)}
    rows = (as_row(rec, agent_ids) for rec in generate(n, prefix, seed))
    copy_sql = f"COPY bench_scratch ({', '.join(COLUMNS)}) FROM STDIN"
    watch = Stopwatch()
    with connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_scratch")
        conn.execute(
            "CREATE TABLE bench_scratch (LIKE reviews_interaction INCLUDING DEFAULTS "
            "INCLUDING IDENTITY)"
        )
        # Ingest stamps ingested_at with now(); here the column default does.
        conn.execute("ALTER TABLE bench_scratch ALTER ingested_at SET DEFAULT now()")
        conn.commit()
        checkpoint(url)
        with conn.cursor() as cursor:
            while chunk := list(itertools.islice(rows, COMMIT_EVERY)):
                with watch:
                    with cursor.copy(copy_sql) as copy:
                        for row in chunk:
                            copy.write_row(row)
                    conn.commit()
        copied = conn.execute("SELECT count(*) FROM bench_scratch").fetchone()[0]
        conn.execute("DROP TABLE bench_scratch")
    if copied != n:
        raise SystemExit(f"raw COPY stored {copied} rows, expected {n}")
    return watch.seconds


# --- CLI path -----------------------------------------------------------------------------------

_SUMMARY = re.compile(r"imported (\d+), duplicates (\d+), rejected (\d+)")
# Logged by ingest.analyze at INFO.
_ANALYZED = re.compile(r"analyzed (.+) after a load of .+ in ([\d.]+)s")


def cli_import(url: str, path: Path, n: int, workdir: Path) -> tuple[float, float, float]:
    """(seconds, peak RSS MB, seconds of the ANALYZE it ended with) of `manage.py
    import_interactions PATH` as a child process."""
    run = run_measured(
        [PYTHON, "manage.py", "import_interactions", str(path)],
        env=project_env(url, LOG_LEVEL="INFO"),
        workdir=workdir,
    )
    found = _SUMMARY.search(run.stdout)
    if run.returncode != 0 or not found:
        raise SystemExit(
            f"import_interactions exited {run.returncode}\nstdout: {run.stdout[-2000:]}\n"
            f"stderr: {run.stderr[-3000:]}"
        )
    imported, duplicates, rejected = map(int, found.groups())
    if (imported, duplicates, rejected) != (n, 0, 0):
        raise SystemExit(f"import_interactions: {found.group(0)!r}, expected imported {n}")
    analyzed = _ANALYZED.search(run.stderr)
    return run.seconds, run.peak_rss_mb, float(analyzed.group(2)) if analyzed else 0.0


ANALYZED_TABLES = ("reviews_interaction", "reviews_reviewitem")
# ingest.analyze.ANALYZE_MIN_ROWS: a load analyzes a table it wrote at least this many rows
# to (the bench's tables are emptied before the import, so the share rule is met too).
ANALYZE_MIN_ROWS = 1_000


def expected_analyzed(interactions: int, items: int) -> list[str]:
    written = dict(zip(ANALYZED_TABLES, (interactions, items), strict=True))
    return [table for table in ANALYZED_TABLES if written[table] >= ANALYZE_MIN_ROWS]


def analyze_counts(url: str) -> dict[str, int]:
    """How many times each table written by ingest has been ANALYZEd (autovacuum is off on
    the bench server, and its analyses would not count here anyway)."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            (list(ANALYZED_TABLES),),
        )
        return dict(rows.fetchall())


def review_counts(url: str) -> dict[str, int]:
    with connect(url) as conn:
        rows = conn.execute("SELECT reason, count(*) FROM reviews_reviewitem GROUP BY reason")
        return dict(rows.fetchall())


def spot_check(url: str, rec: dict[str, Any]) -> None:
    """The first generated record is stored as sent (a bench that loses data is no bench)."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT i.input, i.output, i.confidence, i.context, i.metadata FROM reviews_interaction"
            " i JOIN reviews_agent a ON a.id = i.agent_id WHERE a.slug = %s AND i.external_id = %s",
            (rec["agent"], rec["external_id"]),
        ).fetchone()
    expected = (rec["input"], rec["output"], rec["confidence"], rec["context"], rec["metadata"])
    if row != expected:
        raise SystemExit(f"stored row differs from the generated one:\n{row}\n{expected}")


# --- HTTP path ----------------------------------------------------------------------------------


def post(conn: http.client.HTTPConnection, body: bytes, token: str) -> tuple[int, bytes]:
    conn.request(
        "POST",
        "/api/v1/interactions",
        body=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response.status, response.read()


def http_ingest(port: int, token: str, bodies: list[bytes], clients: int) -> dict[str, Any]:
    """POSTs every body from `clients` threads (each with its own connection); wall clock from
    the first request to the last response."""
    work: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    lock = threading.Lock()
    totals = {"created": 0, "duplicates": 0, "errors": 0}
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while not failures:
                try:
                    body = work.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                status, data = post(conn, body, token)
                elapsed = time.perf_counter() - started
                if status != 200:
                    failures.append(f"HTTP {status}: {data[:500]!r}")
                    return
                answer = orjson.loads(data)
                with lock:
                    totals["created"] += answer["created"]
                    totals["duplicates"] += answer["duplicates"]
                    totals["errors"] += len(answer["errors"])
                    latencies.append(elapsed)
        except Exception as exc:  # reported by the main thread
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"HTTP ingest failed: {failures[0]}")
    latencies.sort()
    return {
        **totals,
        "seconds": seconds,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
    }


# --- Main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="interactions for the CLI run")
    parser.add_argument("--small-n", type=int, default=None, help="memory check size (N/10)")
    parser.add_argument(
        "--http-n", type=int, default=None, help="interactions over HTTP (200,000, or N if smaller)"
    )
    parser.add_argument("--http-clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--database-url",
        default=None,
        help="bench database, dropped and re-created (name must start with coachdesk_bench; "
        "default $BENCH_DATABASE_URL or postgres://postgres@127.0.0.1:5432/coachdesk_bench)",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.n < 1 or (args.http_n or 0) < 0:
        parser.error("--n must be positive and --http-n not negative")
    # A small --n is a smoke run: the HTTP part shrinks with it unless asked for explicitly.
    n, seed = args.n, args.seed
    http_n = min(200_000, n) if args.http_n is None else args.http_n
    small_n = args.small_n or max(1, n // 10)
    url = bench_database_url(args.database_url)

    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-ingest-"))
    try:
        say(f"ingest bench: n={n:,} small_n={small_n:,} http_n={http_n:,} db={database_name(url)}")
        say(machine_load())
        started = time.perf_counter()
        setup_database(url)
        say(f"database re-created and migrated in {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        big, small = workdir / "interactions.jsonl", workdir / "interactions-small.jsonl"
        low_n = write_jsonl(big, n, "b", seed)
        write_jsonl(small, small_n, "s", seed + 1)
        say(
            f"generated {n:,} + {small_n:,} interactions ({big.stat().st_size / 1e6:,.0f} MB, "
            f"{low_n / n:.1%} below {THRESHOLD}) in {time.perf_counter() - started:.1f}s"
        )

        raw_seconds = raw_copy(url, n, "b", seed)
        raw_rps = rate(n, raw_seconds)
        say(f"raw COPY:  {n:,} rows in {raw_seconds:.2f}s = {raw_rps:,.0f} rows/s")

        checkpoint(url)
        small_seconds, small_rss, _ = cli_import(url, small, small_n, workdir)
        say(
            f"CLI small: {small_n:,} rows in {small_seconds:.2f}s = "
            f"{rate(small_n, small_seconds):,.0f} rows/s, peak RSS {small_rss:.1f} MB"
        )
        with connect(url) as conn:
            # CASCADE only reaches tables that are empty in the bench database.
            conn.execute("TRUNCATE reviews_interaction, reviews_reviewitem CASCADE")
        checkpoint(url)

        analyzed_before = analyze_counts(url)
        cli_seconds, cli_rss, analyze_s = cli_import(url, big, n, workdir)
        cli_rps = rate(n, cli_seconds)
        ratio = round(cli_rps / raw_rps, 3) if raw_rps else 0.0
        say(
            f"CLI:       {n:,} rows in {cli_seconds:.2f}s = {cli_rps:,.0f} rows/s, "
            f"peak RSS {cli_rss:.1f} MB"
        )
        analyzed_after = analyze_counts(url)
        analyzed = [
            t for t in ANALYZED_TABLES if analyzed_after.get(t, 0) > analyzed_before.get(t, 0)
        ]
        say(
            f"ANALYZE:   {', '.join(analyzed) or 'no table'} analyzed by the import in "
            f"{analyze_s:.2f}s ({analyze_s / cli_seconds:.1%} of the CLI time)"
        )

        stored = scalar(url, "SELECT count(*) FROM reviews_interaction")
        reasons = review_counts(url)
        routed = sum(reasons.values())
        low_items, audit_items = reasons.get("low_confidence", 0), reasons.get("audit_sample", 0)
        audit_expected = (n - low_n) * AUDIT_RATE
        spot_check(url, next(generate(1, "b", seed)))
        checks = [
            (stored == n, f"interactions stored {stored:,} (expected {n:,})"),
            (
                analyzed == expected_analyzed(n, routed),
                f"tables analyzed by the import: {', '.join(analyzed) or 'none'} "
                f"(expected {', '.join(expected_analyzed(n, routed)) or 'none'})",
            ),
            (low_items == low_n, f"low_confidence items {low_items:,} (expected {low_n:,})"),
            (
                abs(audit_items - audit_expected) <= max(10, 5 * audit_expected**0.5),
                f"audit_sample items {audit_items:,} (expected ~{audit_expected:,.0f})",
            ),
        ]
        say(f"routed:    {routed:,} review items ({routed / n:.1%}): {reasons}")

        http_figures: dict[str, Any] = {"seconds": 0.0, "created": 0}
        low_http = 0
        if http_n:
            records = list(generate(http_n, "h", seed + 2))
            low_http = sum(rec["confidence"] < THRESHOLD for rec in records)
            bodies = [orjson.dumps(list(b)) for b in itertools.batched(records, HTTP_BATCH)]
            del records
            token = make_token(url)
            checkpoint(url)
            with gunicorn(url, workers=args.workers, workdir=workdir) as port:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                for _ in range(2 * args.workers):  # warm up: imports, connections, the token
                    status, data = post(conn, b"[]", token)
                    if status != 200:
                        raise SystemExit(f"warm-up POST answered {status}: {data[:300]!r}")
                conn.close()
                http_figures = http_ingest(port, token, bodies, args.http_clients)
            say(
                f"HTTP:      {http_n:,} rows in {len(bodies)} batches of {HTTP_BATCH:,} from "
                f"{args.http_clients} clients to {args.workers} workers in "
                f"{http_figures['seconds']:.2f}s = {rate(http_n, http_figures['seconds']):,.0f}"
                f" rows/s (batch p50 {http_figures['p50_ms']} ms, p95 {http_figures['p95_ms']} ms)"
            )
            stored_all = scalar(url, "SELECT count(*) FROM reviews_interaction")
            low_all = review_counts(url).get("low_confidence", 0)
            checks += [
                (
                    http_figures["created"] == http_n and http_figures["errors"] == 0,
                    f"HTTP created {http_figures['created']:,}, errors {http_figures['errors']}",
                ),
                (stored_all == n + http_n, f"interactions after HTTP {stored_all:,}"),
                (
                    low_all == low_n + low_http,
                    f"low_confidence items after HTTP {low_all:,} (expected {low_n + low_http:,})",
                ),
            ]
        http_rps = rate(http_n, http_figures["seconds"])

        say(machine_load())
        for ok, text in checks:
            say(f"check {'ok  ' if ok else 'FAIL'} {text}")
        checks_ok = all(ok for ok, _ in checks)
        meets = ratio >= TARGET_RATIO and (not http_n or http_rps >= TARGET_HTTP_ROWS_PER_S)
        say(
            f"ratio {ratio:.2f} (target >= {TARGET_RATIO:.2f}); HTTP {http_rps:,.0f}/s "
            f"(target >= {TARGET_HTTP_ROWS_PER_S:,}); peak RSS {small_rss:.0f} MB at "
            f"{small_n:,} vs {cli_rss:.0f} MB at {n:,}"
        )
        emit_figures(
            {
                "bench": "ingest",
                "n": n,
                "rows_per_s": cli_rps,
                "raw_rows_per_s": raw_rps,
                "ratio": ratio,
                "seconds": round(cli_seconds, 2),
                "raw_seconds": round(raw_seconds, 2),
                "analyze_seconds": round(analyze_s, 2),
                "peak_rss_mb": cli_rss,
                "small_n": small_n,
                "peak_rss_mb_small_n": small_rss,
                "stored": stored,
                "routed": routed,
                "low_confidence": low_items,
                "low_confidence_expected": low_n,
                "audit_sample": audit_items,
                "http_n": http_n,
                "http_created": http_figures["created"],
                "http_rows_per_s": http_rps,
                "http_batch": HTTP_BATCH,
                "http_clients": args.http_clients,
                "http_workers": args.workers,
                "checks_ok": checks_ok,
                "meets_targets": meets,
            }
        )
        return 0 if checks_ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
