"""Regression-run benchmark: posting a new version's answers to N held-out corrected cases
(matching, routing to comparisons, storing), beside the ingest path for the N interactions
behind those cases, in this process and over HTTP on gunicorn.

    python bench/regression.py [--n 10000] [--workers 2] [--http-clients 2] [--no-http]
                               [--database-url URL] [--drop-db]

Target (the issue): a run of 10,000 answers is matched and routed in under 5 s on a 2-core
machine, printed beside the ingest API's rate for the same rows. PASS/FAIL is on the HTTP run
(the in-process time is shown beside it; with --no-http it is the one judged).

What runs, on a freshly migrated bench database (`coachdesk_bench_regression` by default):
1. seed (not timed, SQL + COPY): one agent, N interactions whose inputs are in the held-out
   split (REGRESSION_HOLDOUT_SHARE), each decided `correct` with one review; ANALYZE;
2. the run, in this process through the service the API calls
   (`evals.runs.regression_run_post`, then the summary the API answers with): a third
   of the answers equal to the reference up to whitespace and case (fixed), a third equal to
   the old answer (still wrong), the rest new (a comparison each); then the same post again
   (idempotent: nothing stored);
3. the ingest path for the N interactions behind the cases, as fresh external ids
   (`ingest.services.interactions_ingest`, in requests of 5,000 as the API takes them);
4. unless --no-http, gunicorn (`--workers`, 2 by default) on the same database: the same
   answers posted as a second run (label `http`) to `POST /api/v1/agents/{slug}/regression-runs`
   in requests of 1,000 answers (the 1 MiB body limit) from `--http-clients` clients, timed
   from the first request to the last response, its counts then read back from
   `GET /api/v1/regression-runs/{id}` (an `ml` token); then the same N rows, as fresh
   external ids again, to `POST /api/v1/interactions` in batches of 1,000 (an `agent` token),
   the way bench/ingest.py posts them.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import itertools
import os
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from _common import (
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    gunicorn,
    machine_load,
    rate,
    say,
    scalar,
    setup_database,
)
from _review_data import django_setup


def _bench_ingest():
    """bench/ingest.py, for its HTTP ingest client. Loaded under another name: `ingest` is
    the project's ingest app, which Django imports in this process."""
    path = Path(__file__).with_name("ingest.py")
    spec = importlib.util.spec_from_file_location("bench_ingest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_ingest = _bench_ingest()
HTTP_BATCH = bench_ingest.HTTP_BATCH  # interactions per POST /api/v1/interactions

TARGET_SECONDS = 5.0
DEFAULT_DB = "coachdesk_bench_regression"
HOLDOUT_SHARE = 0.1  # settings.REGRESSION_HOLDOUT_SHARE's default (the bench sets no env)
SPLIT_BUCKETS = 10_000  # retraining.build.SPLIT_BUCKETS
INGEST_REQUEST = 5_000  # settings.INGEST_MAX_ITEMS_PER_REQUEST
HTTP_ANSWERS = 1_000  # answers per request, as the Python client sends them
MAX_BODY_BYTES = 1024 * 1024  # settings.MAX_BODY_BYTES (core/limits.py): not an ingest path
HTTP_LABEL = "http"  # the HTTP run is a second run of the same version under this label
SEED = 20261121
VERSION, NEW_VERSION = "2026.10.1", "2026.11.1"
_VOCABULARY = (
    "the a to of and or for with your our order refund shipping delivery address account "
    "invoice payment card subscription warranty return policy days within item product "
    "customer support please thank you we can cannot will need check status tracking parcel "
    "courier store price discount code size colour stock week month contract terms privacy "
    "data request delete export consent café Größe naïve — is are was has have this that it "
    "if because when which how what why today again sorry great sure"
)
_WORDS = _VOCABULARY.split()


class Texts:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self, shortest: int, longest: int) -> str:
        rng = self.rng
        words, size = [], 0
        target = rng.randint(shortest, longest)
        while size < target:
            word = rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        return " ".join(words).capitalize() + "."


def held_out_inputs(texts: Texts, n: int) -> list[str]:
    """n distinct inputs in the held-out split: CRC-32 bucket below share × 10,000 (the
    definition in retraining.build.split_of), found by drawing until there are enough."""
    threshold = round(HOLDOUT_SHARE * SPLIT_BUCKETS)
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < n:
        text = texts.text(100, 300)
        if text not in seen and zlib.crc32(text.encode()) % SPLIT_BUCKETS < threshold:
            seen.add(text)
            found.append(text)
    return found


def seed(url: str, inputs: list[str], olds: list[str]) -> None:
    """The agent, N interactions (COPY), their review items decided `correct` and one review
    each whose correction is `"Corrected: " + old answer` (INSERT … SELECT)."""
    created = datetime(2026, 11, 1, tzinfo=UTC)
    with connect(url) as conn:
        agent_id = conn.execute(
            """
            INSERT INTO reviews_agent (slug, name, kind, domain, confidence_threshold, audit_rate,
                required_reviews, review_intents, review_domains, guidelines, alert_thresholds,
                auto_assign, created_at)
            VALUES ('bench-bot', 'Bench bot', 'chat', 'support', 0.7, 0.02, 1, '[]', '[]', '',
                    '{}', false, now())
            RETURNING id
            """
        ).fetchone()[0]
        reviewer_id = conn.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                email, is_staff, is_active, date_joined)
            VALUES ('!', false, 'bench-reviewer', '', '', '', false, true, now()) RETURNING id
            """
        ).fetchone()[0]
        columns = (
            "agent_id, external_id, agent_version, conversation_id, input, context, output, "
            "confidence, intent, domain, metadata, created_at, ingested_at"
        )
        with conn.cursor().copy(f"COPY reviews_interaction ({columns}) FROM STDIN") as copy:
            for i, (text, old) in enumerate(zip(inputs, olds, strict=True)):
                copy.write_row(
                    (agent_id, f"seed-{i:07d}", VERSION, f"c-{i}", text,
                     orjson.dumps([{"role": "user", "content": "Hi"}]).decode(), old, 0.4,
                     ("returns", "delivery", "refund")[i % 3], "support", "{}",
                     created + timedelta(seconds=i), created + timedelta(seconds=i))
                )  # fmt: skip
        conn.execute(
            """
            INSERT INTO reviews_reviewitem (interaction_id, agent_id, domain, confidence,
                source_created_at, reason, reason_detail, priority, status, required_reviews,
                final_verdict, decided_at, version, created_at, updated_at)
            SELECT id, agent_id, domain, confidence, created_at, 'low_confidence', '', 0, 'done',
                   1, 'correct', created_at + interval '1 day', 2, created_at, now()
            FROM reviews_interaction WHERE agent_id = %s
            """,
            (agent_id,),
        )
        conn.execute(
            """
            INSERT INTO reviews_review (item_id, reviewer_id, verdict, corrected_output, notes,
                is_adjudication, created_at)
            SELECT r.id, %s, 'correct', 'Corrected: ' || i.output, '', false, r.decided_at
            FROM reviews_reviewitem r JOIN reviews_interaction i ON i.id = r.interaction_id
            """,
            (reviewer_id,),
        )
        conn.execute("ANALYZE")


def answers_for(cases: list[tuple[int, str, str]], texts: Texts) -> tuple[list[dict], dict]:
    """(case id, old, reference) → answers: a third the reference with its case and spacing
    changed, a third the old answer, the rest new."""
    answers, mix = [], {"reference": 0, "unchanged": 0, "new": 0}
    for k, (case_id, old, reference) in enumerate(cases):
        if k % 3 == 0:
            answer, kind = "  " + reference.upper().replace(" ", "   \n"), "reference"
        elif k % 3 == 1:
            answer, kind = old, "unchanged"
        else:
            answer, kind = texts.text(200, 600), "new"
        mix[kind] += 1
        answers.append({"case_id": case_id, "answer": answer})
    return answers, mix


def case_rows(inputs: list[str], olds: list[str], prefix: str) -> list[dict]:
    """The interactions behind the cases (as seeded: same texts, context, confidence, intent,
    times) as ingest records under fresh external ids `{prefix}-NNNNNNN`."""
    created = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "external_id": f"{prefix}-{i:07d}",
            "agent": "bench-bot",
            "agent_version": VERSION,
            "conversation_id": f"c-{i}",
            "input": text,
            "context": [{"role": "user", "content": "Hi"}],
            "output": old,
            "confidence": 0.4,
            "intent": ("returns", "delivery", "refund")[i % 3],
            "domain": "support",
            "metadata": {},
            "created_at": (created + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }
        for i, (text, old) in enumerate(zip(inputs, olds, strict=True))
    ]


# --- HTTP -----------------------------------------------------------------------------------


def run_bodies(answers: list[dict], version: str, label: str) -> list[bytes]:
    """The run's answers as request bodies of at most HTTP_ANSWERS answers and MAX_BODY_BYTES
    bytes (a chunk over the limit is halved until it fits)."""
    bodies: list[bytes] = []
    pending = [answers[i : i + HTTP_ANSWERS] for i in range(0, len(answers), HTTP_ANSWERS)]
    while pending:
        chunk = pending.pop(0)
        body = orjson.dumps({"version": version, "label": label, "answers": chunk})
        if len(body) > MAX_BODY_BYTES and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
        else:
            bodies.append(body)
    return bodies


def request(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: bytes | None = None
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def post_all(port: int, path: str, token: str, bodies: list[bytes], clients: int) -> dict:
    """POSTs every body to `path` from `clients` threads (a connection each); wall clock from
    the first request to the last response, the parsed answers and the request latencies."""
    work: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    lock = threading.Lock()
    answers: list[dict] = []
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
                status, data = request(conn, "POST", path, token, body)
                elapsed = time.perf_counter() - started
                if status != 200:
                    failures.append(f"HTTP {status}: {data[:500]!r}")
                    return
                answer = orjson.loads(data)
                with lock:
                    answers.append(answer)
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
        raise SystemExit(f"POST {path} failed: {failures[0]}")
    latencies.sort()
    return {
        "seconds": seconds,
        "answers": answers,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
    }


def api_token(username: str, role: str) -> str:
    """An API token of a user in the `role` group (Django set up in this process), as
    `_common.make_token` makes one through manage.py for the agent group."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from accounts.services import token_create

    user, _ = get_user_model().objects.get_or_create(username=username)
    user.groups.add(Group.objects.get(name=role))
    return token_create(user=user, name="bench")[1]


def http_phase(
    url: str,
    *,
    slug: str,
    warm_run: int,
    answers: list[dict],
    records: list[dict],
    workers: int,
    clients: int,
    workdir: Path,
) -> dict[str, Any]:
    """The run (label HTTP_LABEL) then the ingest of `records`, over HTTP on gunicorn."""
    from django.db import connections

    ml_token = api_token("bench-ml-api", "ml")
    agent_token = api_token("bench-pipeline", "agent")
    connections.close_all()  # gunicorn's workers have the database to themselves
    bodies = run_bodies(answers, NEW_VERSION, HTTP_LABEL)
    ingest_bodies = [orjson.dumps(list(b)) for b in itertools.batched(records, HTTP_BATCH)]
    run_path = f"/api/v1/agents/{slug}/regression-runs"
    with gunicorn(url, workers=workers, workdir=workdir) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(2 * workers):  # warm up: imports, connections, both tokens
            for method, path, token, body in (
                ("GET", f"/api/v1/regression-runs/{warm_run}", ml_token, None),
                ("POST", "/api/v1/interactions", agent_token, b"[]"),
            ):
                status, data = request(conn, method, path, token, body)
                if status != 200:
                    raise SystemExit(f"warm-up {method} {path} answered {status}: {data[:300]!r}")
        checkpoint(url)
        run = post_all(port, run_path, ml_token, bodies, clients)
        run_ids = {answer["run"] for answer in run["answers"]}
        if len(run_ids) != 1:
            raise SystemExit(f"the HTTP run's requests answered runs {sorted(run_ids)}")
        run_id = run_ids.pop()
        status, data = request(conn, "GET", f"/api/v1/regression-runs/{run_id}", ml_token)
        if status != 200:
            raise SystemExit(f"GET the HTTP run's summary answered {status}: {data[:300]!r}")
        summary = orjson.loads(data)
        conn.close()
        checkpoint(url)
        ingest = bench_ingest.http_ingest(port, agent_token, ingest_bodies, clients)
    totals = {
        key: sum(answer[key] for answer in run["answers"])
        for key in ("created", "duplicates", "matched", "unchanged", "routed")
    }
    totals["errors"] = sum(len(answer["errors"]) for answer in run["answers"])
    return {
        "run_seconds": run["seconds"],
        "run_requests": len(bodies),
        "run_largest_body": max(len(body) for body in bodies),
        "run_p50_ms": run["p50_ms"],
        "run_p95_ms": run["p95_ms"],
        "run_id": run_id,
        "run": totals,
        "summary": summary,
        "ingest": ingest,
        "ingest_requests": len(ingest_bodies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="cases and answers")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--http-clients", type=int, default=2, help="client threads posting over HTTP"
    )
    parser.add_argument(
        "--no-http", action="store_true", help="skip gunicorn: the in-process figures only"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"bench database, dropped and re-created (default: {DEFAULT_DB} on the server of "
        "$BENCH_DATABASE_URL or the local one)",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.n < 3:
        parser.error("--n must be at least 3")
    if args.workers < 1 or args.http_clients < 1:
        parser.error("--workers and --http-clients must be at least 1")
    n, with_http = args.n, not args.no_http
    if args.database_url:
        url = bench_database_url(args.database_url)
    else:
        url = bench_database_url(None).rsplit("/", 1)[0] + "/" + DEFAULT_DB
    django_ready = False
    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-regression-"))
    try:
        say(
            f"regression bench: n={n:,} db={database_name(url)} "
            + (f"http: {args.workers} workers, {args.http_clients} clients" if with_http
               else "no http")
        )  # fmt: skip
        say(machine_load())
        started = time.perf_counter()
        setup_database(url)
        texts = Texts(args.seed)
        inputs = held_out_inputs(texts, n)
        olds = [texts.text(200, 600) for _ in range(n)]
        seed(url, inputs, olds)
        say(f"seeded {n:,} held-out corrected cases in {time.perf_counter() - started:.1f}s")

        os.environ["REGRESSION_HOLDOUT_SHARE"] = str(HOLDOUT_SHARE)
        django_setup(url)
        django_ready = True
        from django.contrib.auth import get_user_model

        from agents.models import Agent
        from evals import regression, runs, selectors
        from evals.models import Comparison, RegressionAnswer
        from ingest.services import interactions_ingest

        agent = Agent.objects.get(slug="bench-bot")
        user = get_user_model().objects.create(username="bench-ml")
        cases = [
            (case.id, case.old_answer, case.reference)
            for case in regression.cases_iter(agent, regression.SetFilters())
        ]
        answers, mix = answers_for(cases, texts)
        body = orjson.dumps({"version": NEW_VERSION, "answers": answers})
        checkpoint(url)

        # The run, as the API handler does it: the parsed body, the service, the summary.
        started = time.perf_counter()
        posted = orjson.loads(body)
        result = runs.regression_run_post(
            agent=agent, agent_version=NEW_VERSION, answers=posted["answers"], actor=user
        )
        summary = selectors.run_summary(result.run)
        run_seconds = time.perf_counter() - started
        run_rps = rate(n, run_seconds)
        say(
            f"run:       {n:,} answers in {run_seconds:.2f}s = {run_rps:,.0f} answers/s "
            f"(matched {result.matched:,}, unchanged {result.unchanged:,}, routed "
            f"{result.routed:,}, errors {len(result.errors)})"
        )
        started = time.perf_counter()
        again = runs.regression_run_post(
            agent=agent, agent_version=NEW_VERSION, answers=posted["answers"], actor=user
        )
        repost_seconds = time.perf_counter() - started
        say(f"re-post:   {again.duplicates:,} duplicates, {again.created} stored, "
            f"in {repost_seconds:.2f}s")  # fmt: skip

        records = case_rows(inputs, olds, "ingest")
        checkpoint(url)
        started = time.perf_counter()
        created = 0
        for start in range(0, n, INGEST_REQUEST):
            chunk = records[start : start + INGEST_REQUEST]
            ingested = interactions_ingest(records=enumerate(chunk), actor_id=user.pk, source="api")
            created += ingested.created
        ingest_seconds = time.perf_counter() - started
        ingest_rps = rate(n, ingest_seconds)
        ratio = round(run_rps / ingest_rps, 3) if ingest_rps else 0.0
        say(f"ingest:    {n:,} interactions in {ingest_seconds:.2f}s = {ingest_rps:,.0f} rows/s")
        say(f"side by side: run {run_rps:,.0f}/s vs ingest {ingest_rps:,.0f}/s, ratio {ratio:.2f}")

        stored = RegressionAnswer.objects.filter(run=result.run).count()
        comparisons = Comparison.objects.filter(kind="regression").count()
        checks = [
            (len(cases) == n, f"regression set {len(cases):,} cases (expected {n:,})"),
            (result.errors == [], f"run errors {len(result.errors)}"),
            (stored == n, f"answers stored {stored:,} (expected {n:,})"),
            (
                (result.matched, result.unchanged, result.routed)
                == (mix["reference"], mix["unchanged"], mix["new"]),
                f"matched / unchanged / routed {result.matched:,} / {result.unchanged:,} / "
                f"{result.routed:,} (expected {mix['reference']:,} / {mix['unchanged']:,} / "
                f"{mix['new']:,})",
            ),
            (comparisons == mix["new"], f"comparisons {comparisons:,}"),
            (
                summary["fixed"] == mix["reference"] and summary["pending"] == mix["new"],
                f"summary fixed {summary['fixed']:,}, pending {summary['pending']:,}",
            ),
            ((again.created, again.duplicates) == (0, n), "the second post stored nothing"),
            (created == n, f"ingest created {created:,} (expected {n:,})"),
            (
                scalar(url, "SELECT count(*) FROM evals_regressionanswer") == n,
                "answers in the database after the re-post",
            ),
        ]

        http: dict[str, Any] = {}
        http_run_seconds = http_run_rps = http_ingest_seconds = http_ingest_rps = 0.0
        http_ratio = 0.0
        if with_http:
            http = http_phase(
                url,
                slug=agent.slug,
                warm_run=result.run.pk,
                answers=answers,
                records=case_rows(inputs, olds, "http"),
                workers=args.workers,
                clients=args.http_clients,
                workdir=workdir,
            )
            http_run_seconds = http["run_seconds"]
            http_run_rps = rate(n, http_run_seconds)
            http_ingest_seconds = http["ingest"]["seconds"]
            http_ingest_rps = rate(n, http_ingest_seconds)
            http_ratio = round(http_run_rps / http_ingest_rps, 3) if http_ingest_rps else 0.0
            posted_http, got = http["run"], http["summary"]
            say(
                f"HTTP run:    {n:,} answers in {http['run_requests']} requests (largest "
                f"{http['run_largest_body'] / 1024:,.0f} KiB) from {args.http_clients} clients to "
                f"{args.workers} workers in {http_run_seconds:.2f}s = {http_run_rps:,.0f} "
                f"answers/s (request p50 {http['run_p50_ms']} ms, p95 {http['run_p95_ms']} ms); "
                f"summary: fixed {got['fixed']:,}, still wrong {got['still_wrong']:,}, pending "
                f"{got['pending']:,}"
            )
            say(
                f"HTTP ingest: {n:,} rows in {http['ingest_requests']} batches of {HTTP_BATCH:,} "
                f"from {args.http_clients} clients to {args.workers} workers in "
                f"{http_ingest_seconds:.2f}s = {http_ingest_rps:,.0f} rows/s (batch p50 "
                f"{http['ingest']['p50_ms']} ms, p95 {http['ingest']['p95_ms']} ms)"
            )
            say(
                f"HTTP side by side: run {http_run_rps:,.0f}/s vs ingest {http_ingest_rps:,.0f}/s,"
                f" ratio {http_ratio:.2f}"
            )
            expected = (mix["reference"], mix["unchanged"], mix["new"])
            checks += [
                (
                    (posted_http["created"], posted_http["duplicates"], posted_http["errors"])
                    == (n, 0, 0),
                    f"HTTP run created {posted_http['created']:,}, duplicates "
                    f"{posted_http['duplicates']:,}, errors {posted_http['errors']}",
                ),
                (
                    (posted_http["matched"], posted_http["unchanged"], posted_http["routed"])
                    == expected,
                    f"HTTP run matched / unchanged / routed {posted_http['matched']:,} / "
                    f"{posted_http['unchanged']:,} / {posted_http['routed']:,}",
                ),
                (
                    (got["fixed"], got["still_wrong"], got["pending"], got["worse"], got["total"])
                    == (*expected, 0, n),
                    f"GET /api/v1/regression-runs/{http['run_id']}: fixed {got['fixed']:,}, still "
                    f"wrong {got['still_wrong']:,}, pending {got['pending']:,}, total "
                    f"{got['total']:,}",
                ),
                (
                    scalar(url, "SELECT count(*) FROM evals_regressionanswer") == 2 * n,
                    "answers in the database after the HTTP run",
                ),
                (
                    scalar(url, "SELECT count(*) FROM evals_comparison WHERE kind = 'regression'")
                    == 2 * mix["new"],
                    "comparisons after the HTTP run",
                ),
                (
                    http["ingest"]["created"] == n and http["ingest"]["errors"] == 0,
                    f"HTTP ingest created {http['ingest']['created']:,}, errors "
                    f"{http['ingest']['errors']}",
                ),
                (
                    scalar(url, "SELECT count(*) FROM reviews_interaction") == 3 * n,
                    "interactions after the HTTP ingest",
                ),
            ]
        say(machine_load())
        for ok, text in checks:
            say(f"check {'ok  ' if ok else 'FAIL'} {text}")
        checks_ok = all(ok for ok, _ in checks)
        judged = http_run_seconds if with_http else run_seconds
        meets = judged < TARGET_SECONDS
        say(
            f"{'PASS' if meets else 'FAIL'}: {n:,} answers matched and routed in "
            + (f"{http_run_seconds:.2f}s over HTTP ({args.workers} workers; in process "
               f"{run_seconds:.2f}s)" if with_http else f"{run_seconds:.2f}s in process")
            + f" (target < {TARGET_SECONDS:.0f} s)"
        )  # fmt: skip
        figures = {
            "bench": "regression",
            "n": n,
            "run_seconds": round(run_seconds, 3),
            "answers_per_s": run_rps,
            "ingest_seconds": round(ingest_seconds, 3),
            "ingest_rows_per_s": ingest_rps,
            "ratio": ratio,
            "repost_seconds": round(repost_seconds, 3),
            "matched": result.matched,
            "unchanged": result.unchanged,
            "routed": result.routed,
            "stored": stored,
            "http": with_http,
        }
        if with_http:
            figures.update(
                {
                    "http_workers": args.workers,
                    "http_clients": args.http_clients,
                    "http_run_seconds": round(http_run_seconds, 3),
                    "http_answers_per_s": http_run_rps,
                    "http_run_requests": http["run_requests"],
                    "http_run_p50_ms": http["run_p50_ms"],
                    "http_run_p95_ms": http["run_p95_ms"],
                    "http_ingest_seconds": round(http_ingest_seconds, 3),
                    "http_ingest_rows_per_s": http_ingest_rps,
                    "http_ingest_batch": HTTP_BATCH,
                    "http_ratio": http_ratio,
                    "http_matched": http["summary"]["fixed"],
                    "http_unchanged": http["summary"]["still_wrong"],
                    "http_routed": http["summary"]["pending"],
                }
            )
        figures.update(
            {
                "target_seconds": TARGET_SECONDS,
                "target_judged_on": "http" if with_http else "in_process",
                "meets_target": meets,
                "meets_target_in_process": run_seconds < TARGET_SECONDS,
                "checks_ok": checks_ok,
            }
        )
        emit_figures(figures)
        return 0 if checks_ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            if django_ready:
                from django.db import connections

                connections.close_all()
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
