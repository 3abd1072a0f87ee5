"""Reviewer loop (issue 18): one reviewer claiming and approving items through the API on
gunicorn, one request after the other on one keep-alive connection, beside the same writes as
raw SQL on one psycopg connection in the same run.

    python bench/reviewer_loop.py [--smoke] [--n 100000] [--pending 20000] [--items 2000]
                                  [--warmup 50] [--workers 1] [--threads 4]
                                  [--database-url URL] [--drop-db]

Targets (issue 18): at least 50 items/s from one sequential client, p50 of the claim + approve
pair under 20 ms. The peer a team would otherwise install, Label Studio's next + submit loop,
does 4.9 items/s at 100k tasks and 7.7 at 10k (printed beside ours for context).

What runs, on a database of its own (default `coachdesk_bench_loop`, dropped and re-created):
1. bench/_review_data.py's queue: N interactions, PENDING open items (the reviewer's domains
   are all of them, so every open item is theirs to claim), its reviewers; an API token for
   the first (not timed);
2. gunicorn, production-like (DEBUG off, one worker with a few threads: the honest setting
   for one sequential client), then the loop: `POST /api/v1/queue/claim` (`{}`) and
   `POST /api/v1/items/ID/decision` (`{"verdict": "approve", "version": V}`, V from the
   claim). WARMUP pairs unmeasured, then ITEMS pairs timed one by one;
3. the raw baseline: the project's claim statement (`reviews.services._claim_sql`) and one
   statement with the decision's writes (UPDATE of the item to done, INSERT of the review, its
   audit event, the training pair and its two M2M rows), per item, autocommit (each statement
   is its own transaction), after a warm-up of the same size.
The queue table is vacuumed before each timed phase, so neither walks the other's dead index
entries. Server CPU is read in /proc (bench/capacity.py's readers, every 50 ms during the
timed loop, see ServerCpu): the gunicorn master and worker, and every PostgreSQL process of
the bench database (its backends; an autovacuum worker that runs in the window apart); the
client's own CPU is the loop thread's (time.thread_time). The last line printed is one JSON
object of the figures.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from _common import (
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    gunicorn_server,
    machine_load,
    rate,
    say,
    scalar,
)
from _review_data import DOMAINS, django_setup, make_reviewers, populate
from capacity import children, cpu_ns, postmaster_pid

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench_loop"
SAMPLE_SECONDS = 0.05  # how often the server's processes' CPU is read
TARGET_ITEMS_PER_S = 50.0
TARGET_PAIR_P50_MS = 20.0
# Label Studio's next + submit loop, one annotator, as measured for issue 18 ("cut the cost of
# every request"): items/s at 100k and at 10k tasks in the project.
LABEL_STUDIO_ITEMS_PER_S = {"100k": 4.9, "10k": 7.7}

SIZES = {
    "full": {"n": 100_000, "pending": 20_000, "items": 2000, "warmup": 50},
    "smoke": {"n": 3000, "pending": 500, "items": 100, "warmup": 20},
}

# The decision as one statement: the compare-and-swap of the item (the version the claim
# returned, a live lease), the review, the audit event the project writes for it
# (core.transitions), the training pair the `item_decided` receiver makes of an approval
# (retraining/receivers.py) and its reviews / reviewers rows.
RAW_DECIDE = """
WITH done AS (
    UPDATE reviews_reviewitem
    SET status = 'done', final_verdict = 'approve', decided_at = now(), claimed_by_id = NULL,
        lease_expires_at = NULL, version = version + 1, updated_at = now()
    WHERE id = %(id)s AND status = 'claimed' AND claimed_by_id = %(me)s
      AND version = %(version)s AND lease_expires_at > now()
    RETURNING id, version, interaction_id, agent_id
),
review AS (
    INSERT INTO reviews_review (verdict, corrected_output, notes, seconds_spent,
                                is_adjudication, created_at, reviewer_id, item_id)
    SELECT 'approve', '', '', NULL, false, now(), %(me)s, id FROM done
    RETURNING id, item_id
),
audit AS (
    INSERT INTO reviews_auditevent (actor_id, action, target_type, target_id, before, after,
                                    created_at)
    SELECT %(me)s, 'item.decided', 'review_item', d.id,
           jsonb_build_object('status', 'claimed', 'claimed_by', %(me)s,
                              'version', d.version - 1),
           jsonb_build_object('status', 'done', 'final_verdict', 'approve', 'decided_at', now(),
                              'claimed_by', NULL, 'lease_expires_at', NULL,
                              'verdict', 'approve', 'review', r.id, 'reviewer', %(me)s),
           now()
    FROM done d JOIN review r ON r.item_id = d.id
),
pair AS (
    INSERT INTO retraining_trainingpair (agent_version, source, input, context, output,
        rejected_output, content_hash, created_at, agent_id, error_category_id, interaction_id,
        item_id, steps)
    SELECT i.agent_version, 'approve', i.input, i.context, i.output, '',
           encode(sha256(convert_to(i.input || chr(31) || i.output, 'UTF8')), 'hex'), now(),
           d.agent_id, NULL, i.id, d.id, i.steps
    FROM done d JOIN reviews_interaction i ON i.id = d.interaction_id
    RETURNING id
),
pair_reviews AS (
    INSERT INTO retraining_trainingpair_reviews (trainingpair_id, review_id)
    SELECT p.id, r.id FROM pair p CROSS JOIN review r
),
pair_reviewers AS (
    INSERT INTO retraining_trainingpair_reviewers (trainingpair_id, user_id)
    SELECT p.id, %(me)s FROM pair p
)
SELECT id FROM review
"""


def _pct_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


# --- server CPU in /proc ------------------------------------------------------------------------


class ServerCpu:
    """CPU nanoseconds of the gunicorn master and its workers (`web`) and of the PostgreSQL
    backends of the bench database (`db`; its autovacuum workers apart) used inside a window
    (`start` … `stop`).

    A thread reads them every SAMPLE_SECONDS: a process that exits in the window (a backend
    whose connection Django closes once it is CONN_MAX_AGE old, 60 s by default, and replaces
    with a new one) keeps what it used up to its last reading; it is closed idle, between
    requests, so next to nothing is lost. A process new in the window counts from zero. Only
    our processes are read (another database's backend is recognised once, then skipped), so
    the sampler's own cost in this process, beside the client, stays small."""

    def __init__(self, *, master: int, postmaster: int | None, dbname: str) -> None:
        self.master, self.postmaster, self.dbname = master, postmaster, dbname
        self.groups: dict[int, str | None] = {}  # pid → web, db or None (not ours)
        self.base: dict[int, int] = {}  # CPU at the start of the window
        self.last: dict[int, int] = {}  # CPU at the latest reading
        self.kind: dict[int, str] = {}  # the group of every process read
        self.alive: set[int] = set()
        self.used: Counter[str] = Counter()
        self.exited: Counter[str] = Counter()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True, name="server-cpu")

    def _db_group(self, pid: int) -> str | None | bool:
        """db (a backend), autovacuum (a worker on our database), None (another database's
        or a server process), False (not named yet)."""
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return None
        words = title.replace("\0", " ").split()
        if words[:1] != ["postgres:"]:
            return False  # forked, not past authentication yet: look again next time
        if self.dbname not in words:
            return None
        # Autovacuum's cost lands on whichever phase it happens to run in: shown apart.
        return "autovacuum" if "autovacuum" in words else "db"

    def _sweep(self) -> None:
        current = {pid: "web" for pid in (self.master, *children(self.master))}
        for pid in children(self.postmaster) if self.postmaster else []:
            group = self.groups.get(pid, False)
            if group is False:
                group = self._db_group(pid)
            if group is not False:
                current[pid] = group
        self.groups = current  # forgets exited processes (their pid may be reused)
        self.alive = set()
        for pid, group in current.items():
            if group is not None and (cpu := cpu_ns(pid)) is not None:
                self.last[pid], self.kind[pid] = cpu, group
                self.alive.add(pid)

    def _sample(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            self._sweep()

    def start(self) -> None:
        self._sweep()
        self.base = dict(self.last)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._sweep()
        for pid, cpu in self.last.items():
            group = self.kind[pid]
            self.used[group] += cpu - self.base.get(pid, 0)
            if pid not in self.alive:
                self.exited[group] += 1

    def ms_per(self, group: str, count: int) -> float | None:
        if group != "web" and self.postmaster is None:
            return None
        return round(self.used[group] / 1e6 / count, 3) if count else None


# --- the HTTP loop ------------------------------------------------------------------------------


class Api:
    """One reviewer's keep-alive HTTP/1.1 connection with their token."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None
        self.connections = 0  # opened: 1 while the server keeps the connection alive

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.connections += 1
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed the idle connection before reading the request: resend once
                # on a new one (a fresh connection that fails is an error).
                self.close()
                if fresh or attempt:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Loop:
    claim: list[float] = field(default_factory=list)
    decision: list[float] = field(default_factory=list)
    pair: list[float] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    first_error: str = ""
    seconds: float = 0.0
    client_cpu_s: float = 0.0

    def error(self, what: str, detail: bytes | str) -> None:
        self.errors[what] += 1
        if not self.first_error:
            text = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
            self.first_error = f"{what}: {text[:300]}"

    @property
    def items(self) -> int:
        return len(self.pair)


def http_loop(api: Api, count: int) -> Loop:
    loop = Loop()
    cpu, started = time.thread_time(), time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        status, body = api.post("/api/v1/queue/claim", b"{}")
        t1 = time.perf_counter()
        if status != 200:
            loop.error(f"claim HTTP {status}", body or b"(queue empty)")
            if status == 204:
                break  # the queue ran dry: more claims would all be errors
            continue
        item = orjson.loads(body)["item"]
        loop.claimed.append(item["id"])
        decision = orjson.dumps({"verdict": "approve", "version": item["version"]})
        status, body = api.post(f"/api/v1/items/{item['id']}/decision", decision)
        t2 = time.perf_counter()
        if status != 200 or orjson.loads(body).get("status") != "done":
            loop.error(f"decision HTTP {status}", body)
            continue
        loop.claim.append(t1 - t0)
        loop.decision.append(t2 - t1)
        loop.pair.append(t2 - t0)
    loop.seconds = time.perf_counter() - started
    loop.client_cpu_s = time.thread_time() - cpu
    return loop


# --- the raw baseline ---------------------------------------------------------------------------


def raw_loop(conn, count: int, *, claim_sql: str, params: dict) -> Loop:
    loop = Loop()
    me = params["me"]
    cpu, started = time.thread_time(), time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        row = conn.execute(claim_sql, params).fetchone()
        t1 = time.perf_counter()
        if row is None:
            loop.error("raw claim", "the queue ran dry")
            break
        item_id, version = row[0], row[1]
        loop.claimed.append(item_id)
        done = conn.execute(RAW_DECIDE, {"id": item_id, "me": me, "version": version}).fetchone()
        t2 = time.perf_counter()
        if done is None:
            loop.error("raw decision", f"item {item_id} changed nothing")
            continue
        loop.claim.append(t1 - t0)
        loop.decision.append(t2 - t1)
        loop.pair.append(t2 - t0)
    loop.seconds = time.perf_counter() - started
    loop.client_cpu_s = time.thread_time() - cpu
    return loop


# --- main ---------------------------------------------------------------------------------------


def vacuum(url: str) -> None:
    """What autovacuum would have done by now; then a checkpoint, so a timed phase does not
    pay for the writes of the one before."""
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE reviews_reviewitem")
    checkpoint(url)


def decided_in_db(url: str, ids: list[int], me: int) -> int:
    """Items of `ids` that are done, approved by `me`, with their training pair."""
    return scalar(
        url,
        """
        SELECT count(*) FROM reviews_reviewitem ri
        WHERE ri.id = ANY(%s) AND ri.status = 'done' AND ri.final_verdict = 'approve'
          AND EXISTS (SELECT 1 FROM reviews_review r
                      WHERE r.item_id = ri.id AND r.reviewer_id = %s AND r.verdict = 'approve')
          AND EXISTS (SELECT 1 FROM retraining_trainingpair p WHERE p.item_id = ri.id)
        """,
        (ids, me),
    )


def setup_reviewer(url: str) -> tuple[int, str, str, dict]:
    """The reviewer (all domains), their API token, and the project's claim statement with its
    parameters for them (Django loaded in this process, then its connection closed)."""
    django_setup(url)
    from django.conf import settings
    from django.db import connections

    from accounts.services import token_create
    from reviews.services import _claim_sql

    user = make_reviewers(list(DOMAINS))[0]
    token = token_create(user=user, name="bench-loop")[1]
    params = {
        "me": user.pk,
        "lease": settings.REVIEW_LEASE_SECONDS,
        **{f"d{i}": d for i, d in enumerate(DOMAINS)},
    }
    claim_sql = _claim_sql(len(DOMAINS), agent=False, domain=False)
    connections.close_all()  # not a backend of the bench database while CPU is read
    return user.pk, token, claim_sql, params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--n", type=int, help="interactions in the database (100,000)")
    parser.add_argument("--pending", type=int, help="open review items (20,000)")
    parser.add_argument("--items", type=int, help="timed claim + approve pairs (2,000)")
    parser.add_argument("--warmup", type=int, help="unmeasured pairs first (50)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--database-url",
        default=None,
        help="bench database, dropped and re-created (name must start with coachdesk_bench; "
        f"default $BENCH_LOOP_DATABASE_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    args = parser.parse_args(argv)
    for name, value in SIZES["smoke" if args.smoke else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.items < 1 or args.warmup < 0 or args.workers < 1 or args.threads < 1:
        parser.error("--items, --workers and --threads must be positive, --warmup not negative")
    if args.pending < 2 * (args.items + args.warmup):
        parser.error("--pending must be at least 2 x (--items + --warmup): HTTP and raw each")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = bench_database_url(
        args.database_url or os.environ.get("BENCH_LOOP_DATABASE_URL") or DEFAULT_URL
    )
    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-loop-"))
    try:
        return run(args, url, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            drop_database(url)


def run(args: argparse.Namespace, url: str, workdir: Path) -> int:
    say(
        f"reviewer loop{' (smoke)' if args.smoke else ''}: db={database_name(url)}, "
        f"{args.n:,} interactions, {args.pending:,} open items, {args.items:,} pairs "
        f"(+{args.warmup} warm-up), gunicorn {args.workers} worker(s) x {args.threads} threads"
    )
    say(machine_load())
    started = time.perf_counter()
    populate(url, n=args.n, pending=args.pending, decided=min(args.pending // 2, args.n // 10))
    me, token, claim_sql, params = setup_reviewer(url)
    pending = scalar(url, "SELECT count(*) FROM reviews_reviewitem WHERE status = 'pending'")
    say(f"data: {pending:,} open items made in {time.perf_counter() - started:.1f}s (not timed)")
    if pending < 2 * (args.items + args.warmup):
        raise SystemExit(f"only {pending:,} open items: raise --n or lower --items")
    try:
        postmaster = postmaster_pid(url)
    except SystemExit as exc:  # PostgreSQL elsewhere: the web CPU is still readable
        say(f"no PostgreSQL CPU: {exc}")
        postmaster = None

    # 1. HTTP on gunicorn.
    vacuum(url)
    extra = ["--threads", str(args.threads), "--timeout", "60"]
    with gunicorn_server(url, workers=args.workers, workdir=workdir, extra=extra) as (port, pid):
        api = Api(port, token)
        warm = http_loop(api, args.warmup)
        meter = ServerCpu(master=pid, postmaster=postmaster, dbname=database_name(url))
        meter.start()
        web = http_loop(api, args.items)
        meter.stop()
        api.close()
    claimed = warm.claimed + web.claimed
    errors = sum(warm.errors.values()) + sum(web.errors.values())
    decided = decided_in_db(url, claimed, me)

    # 2. The raw baseline.
    vacuum(url)
    with connect(url, autocommit=True) as conn:
        raw_loop(conn, args.warmup, claim_sql=claim_sql, params=params)
        backend = conn.info.backend_pid
        raw_db_before = cpu_ns(backend) if postmaster else None
        raw = raw_loop(conn, args.items, claim_sql=claim_sql, params=params)
        raw_db_after = cpu_ns(backend) if postmaster else None
    raw_decided = decided_in_db(url, raw.claimed, me)
    raw_errors = sum(raw.errors.values())

    items_per_s = rate(web.items, web.seconds)
    raw_items_per_s = rate(raw.items, raw.seconds)
    ratio = round(items_per_s / raw_items_per_s, 3) if raw_items_per_s else None
    pair_p50 = _pct_ms(web.pair, 0.50)
    cpu = {
        "web": meter.ms_per("web", web.items),
        "db": meter.ms_per("db", web.items),
    }
    cpu["total"] = round(cpu["web"] + cpu["db"], 3) if None not in cpu.values() else None
    autovacuum_ms = meter.ms_per("autovacuum", web.items)
    raw_db_ms = (
        round((raw_db_after - raw_db_before) / 1e6 / raw.items, 3)
        if raw_db_before is not None and raw_db_after is not None and raw.items
        else None
    )
    client_ms = round(web.client_cpu_s * 1000 / web.items, 3) if web.items else None
    client_share = round(web.client_cpu_s / web.seconds, 3) if web.seconds else None

    say(
        f"HTTP: {web.items:,} pairs in {web.seconds:.2f}s = {items_per_s} items/s; pair p50 "
        f"{pair_p50} / p95 {_pct_ms(web.pair, 0.95)} / p99 {_pct_ms(web.pair, 0.99)} ms; "
        f"claim p50 {_pct_ms(web.claim, 0.5)} / p95 {_pct_ms(web.claim, 0.95)} ms; decision "
        f"p50 {_pct_ms(web.decision, 0.5)} / p95 {_pct_ms(web.decision, 0.95)} ms; "
        f"{api.connections} connection(s) opened"
    )
    say(
        f"server CPU per pair: web {cpu['web']} ms, db {cpu['db']} ms, autovacuum "
        f"{autovacuum_ms} ms (not in the total) "
        f"(processes that exited in the window, counted to their last reading: "
        f"{dict(meter.exited) or 'none'}); "
        f"client {client_ms} ms ({client_share:.0%} of a core)"
    )
    say(
        f"raw:  {raw.items:,} pairs in {raw.seconds:.2f}s = {raw_items_per_s} items/s; pair p50 "
        f"{_pct_ms(raw.pair, 0.5)} / p95 {_pct_ms(raw.pair, 0.95)} ms; db CPU per pair "
        f"{raw_db_ms} ms"
    )
    say(f"HTTP / raw: {ratio} (raw is {1 / ratio:.1f}x)" if ratio else "HTTP / raw: -")
    say(
        f"Label Studio next + submit (issue 18): {LABEL_STUDIO_ITEMS_PER_S['100k']} items/s at "
        f"100k tasks, {LABEL_STUDIO_ITEMS_PER_S['10k']} at 10k; here {items_per_s} items/s at "
        f"{args.n:,} interactions ({items_per_s / LABEL_STUDIO_ITEMS_PER_S['100k']:.1f}x the "
        "100k figure)"
    )
    meets = items_per_s >= TARGET_ITEMS_PER_S and (pair_p50 or 1e9) < TARGET_PAIR_P50_MS
    say(
        f"targets (issue 18): >= {TARGET_ITEMS_PER_S:g} items/s and pair p50 < "
        f"{TARGET_PAIR_P50_MS:g} ms: {'met' if meets else 'not met'}"
    )
    checks = [
        (errors == 0, f"HTTP errors: {errors} {web.first_error or warm.first_error}".rstrip()),
        (web.items == args.items, f"HTTP pairs timed {web.items:,} of {args.items:,}"),
        (decided == len(claimed), f"HTTP claimed {len(claimed):,}, decided in the db {decided:,}"),
        (
            raw_errors == 0 and raw.items == args.items,
            f"raw pairs {raw.items:,}, errors {raw_errors}",
        ),
        (
            raw_decided == len(raw.claimed),
            f"raw claimed {len(raw.claimed):,}, decided {raw_decided:,}",
        ),
    ]
    for ok, text in checks:
        say(f"check {'ok  ' if ok else 'FAIL'} {text}")
    say(machine_load())
    checks_ok = all(ok for ok, _ in checks)
    emit_figures(
        {
            "bench": "reviewer_loop",
            "smoke": args.smoke,
            "n": args.n,
            "pending": pending,
            "gunicorn_workers": args.workers,
            "gunicorn_threads": args.threads,
            "warmup": args.warmup,
            "items": web.items,
            "seconds": round(web.seconds, 3),
            "items_per_s": items_per_s,
            "pair_p50_ms": pair_p50,
            "pair_p95_ms": _pct_ms(web.pair, 0.95),
            "pair_p99_ms": _pct_ms(web.pair, 0.99),
            "claim_p50_ms": _pct_ms(web.claim, 0.50),
            "claim_p95_ms": _pct_ms(web.claim, 0.95),
            "claim_p99_ms": _pct_ms(web.claim, 0.99),
            "decision_p50_ms": _pct_ms(web.decision, 0.50),
            "decision_p95_ms": _pct_ms(web.decision, 0.95),
            "decision_p99_ms": _pct_ms(web.decision, 0.99),
            "server_cpu_ms_per_pair": cpu,
            "autovacuum_cpu_ms_per_pair": autovacuum_ms,
            "processes_exited_in_window": dict(meter.exited),
            "client_cpu_ms_per_pair": client_ms,
            "client_cpu_share": client_share,
            "connections": api.connections,
            "errors": errors,
            "claimed": len(claimed),
            "decided_in_db": decided,
            "raw_items": raw.items,
            "raw_items_per_s": raw_items_per_s,
            "raw_pair_p50_ms": _pct_ms(raw.pair, 0.50),
            "raw_pair_p95_ms": _pct_ms(raw.pair, 0.95),
            "raw_db_cpu_ms_per_pair": raw_db_ms,
            "raw_errors": raw_errors,
            "raw_decided_in_db": raw_decided,
            "ratio": ratio,
            "label_studio_items_per_s": LABEL_STUDIO_ITEMS_PER_S,
            "meets_targets": meets,
            "checks_ok": checks_ok,
        }
    )
    return 0 if checks_ok else 1


if __name__ == "__main__":
    sys.exit(main())
