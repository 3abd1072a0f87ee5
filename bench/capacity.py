"""Capacity model (issue 14): the server CPU of each operation, split into the web / worker
process and the PostgreSQL backends, beside a raw baseline measured in the same run, and the
cores of web, worker and database a stated load needs.

    python bench/capacity.py [--smoke] [--n 1000000] [--kpi-n 1000000] [--export-n 1000000]
                             [--workers 2] [--database-url URL] [--drop-db]

CPU, not wall time, is what is measured: a figure is the CPU seconds the server's processes
used for the operation, so it holds on a machine shared with the load generator (this
process) and other jobs, which only stretch the wall clock. Where it is read:
- web: the gunicorn master and its sync workers (--workers of them, the master's children);
- worker: a `manage.py` command in a subprocess (the Celery-less path of the same service the
  worker task calls), its own user + system CPU from wait4, less the CPU of the same command
  with `--help` (Python, Django and the command imported: a Celery worker pays that once);
- db: every PostgreSQL backend of the bench database and the parallel workers of those
  backends (the server is local; /proc is readable as root).
A process's CPU is the sum over its threads of /proc/PID/task/TID/schedstat (nanoseconds on
a CPU; /proc/PID/stat's utime + stime are the same total in 10 ms ticks, which a 1 ms request
would round to nothing; the run checks that both agree for the gunicorn workers). A thread
samples the processes every 10 ms, so one that exits during a measured window (a parallel
worker, a command's backend) keeps what it used up to its last reading; the rest is in the
postmaster's cutime + cstime (the children it reaped), counted to the database when only
bench processes exited in the window, else estimated from each process's last CPU rate and
reported as `db_unseen_ms` either way.

What runs, in order, on one bench database (default `coachdesk_bench_cap`, dropped and
re-created; the phases empty it in between):
1. a review queue made in SQL (bench/_review_data.py: N interactions, PENDING open items),
   reviewers with their sessions and API tokens, a review lead, an agent token (manage.py);
2. gunicorn (sync workers) on it, then, each operation in windows of its own, after one
   unmeasured warm-up round:
   - GET /healthz, the per-request floor (it runs `SELECT 1` and the outbox check);
   - ingest: POST /api/v1/interactions in batches of 1,000 (bench/ingest.py's records);
     raw: COPY of the same rows into an indexed copy of the table; floor: orjson decoding
     the same bodies;
   - per round, every reviewer: "My queue" (GET /queue/), "Start reviewing" (POST
     /queue/claim), the review screen (GET /review/ID/), its lease renewal (the htmx POST
     /review/ID/lease it makes every minute), approve (POST /review/ID/decide, which also
     claims the next item, as the page does), the review screen again, correct (with a text
     and an error category); then the API: POST /api/v1/queue/claim and an approve through
     /api/v1/items/ID/decision. Raw: one grouped count of the claimable items, the claim
     statement of bench/claim.py, one SELECT of what the screen shows, one UPDATE of the
     lease, one UPDATE + INSERT of a decision;
   - the console's queue browser (GET /console/?filters, bench/console.py's filters in
     turn); raw: each filter's rows (with agent, assignee and question preview) and the
     paginator's capped count in SQL;
3. KPIs: bench/kpis.py's data (KPI_N interactions over KPI_DAYS days, with items, reviews and
   feedback); its one-statement raw SQL, then `manage.py recompute_kpis --full`;
4. export: bench/export.py's data (EXPORT_N training pairs); its raw server-side-cursor dump
   (a child process), then `manage.py export_batch --format jsonl` and `--format parquet`;
5. the capacity table for the load given by --load-reviewers, --decision-seconds,
   --ingest-rate, --console-rate, --kpi-every, --settle-days, --exports-per-hour (defaults:
   100 reviewers deciding an item every 20 s each, so 5 claims, review screens and decisions
   a second, "My queue" before one claim in ten, a lease renewal a minute per reviewer; 1,000
   interactions/s; a console page every 5 s; the periodic KPI run every 5 min and the daily
   settle of 3 days; one 1M-row export an hour), with --headroom (0.5: 50% more cores than
   the measured CPU-seconds per second). The KPI rows per run follow the code: a periodic
   run recomputes whole days, yesterday and today for every agent with open items
   (kpis/services.py, plan_incremental), so 1.5 days of rows on average.
A figure per million rows measured at a smaller size is scaled linearly and says so. The
last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import http.client
import importlib.util
import itertools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import psycopg
from _common import (
    PYTHON,
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    gunicorn_server,
    machine_load,
    manage,
    project_env,
    run_measured,
    say,
    scalar,
)
from _review_data import DOMAINS, populate
from psycopg.conninfo import conninfo_to_dict

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench_cap"
SAMPLE_SECONDS = 0.01
TICK = os.sysconf("SC_CLK_TCK")
MILLION = 1_000_000
FORM = "application/x-www-form-urlencoded"
# The load test's decision mix (bench/locustfile.py): a reject costs what an approve does.
DECISION_MIX = {"approve": 0.8, "correct": 0.2}
QUEUE_VISITS = 0.1  # "My queue" before a claim, per decision (QUEUE_VISIT_SHARE there)

# Full size and --smoke (under a minute); an explicit option wins over either.
SIZES = {
    "full": {
        "n": 1_000_000, "pending": 200_000, "reviewers": 16, "rounds": 40, "healthz": 1000,
        "ingest_batches": 100, "console": 300, "kpi_n": 1_000_000, "kpi_days": 90,
        "export_n": 1_000_000, "formats": "jsonl,parquet", "startups": 2,
    },
    "smoke": {
        "n": 20_000, "pending": 4_000, "reviewers": 4, "rounds": 2, "healthz": 40,
        "ingest_batches": 3, "console": 12, "kpi_n": 10_000, "kpi_days": 14, "export_n": 5_000,
        "formats": "jsonl", "startups": 1,
    },
}  # fmt: skip


def _sibling(name: str) -> Any:
    """bench/<name>.py as a module under a name of its own (bench/ingest.py is not the
    project's `ingest` package)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # what a dataclass in it looks itself up in
    spec.loader.exec_module(module)
    return module


# --- CPU of the server's processes --------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def cpu_ns(pid: int) -> int | None:
    """CPU nanoseconds of every live thread of `pid` (None once the process is gone)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for tid in tids:
        raw = _read(f"/proc/{pid}/task/{tid}/schedstat")
        if raw:
            total += int(raw.split()[0])
    return total


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3, the state, is index 0)."""
    raw = _read(f"/proc/{pid}/stat") or ""
    return raw[raw.rindex(")") + 2 :].split() if ")" in raw else []


def stat_cpu_ns(pid: int) -> int:
    """utime + stime of /proc/PID/stat, in nanoseconds (10 ms steps)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) * 10**9 // TICK if fields else 0


def reaped_ns(pid: int) -> int:
    """cutime + cstime of `pid`: the CPU of the children it has reaped (10 ms steps)."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) * 10**9 // TICK if fields else 0


def children(pid: int) -> list[int]:
    raw = _read(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in raw.split()] if raw else []


_PARALLEL = re.compile(r"parallel worker for PID (\d+)")


@dataclass
class Seen:
    group: str | None  # web, db, pg_other; None until PostgreSQL has named the process
    cpu: int  # ns at the last reading
    at: float  # monotonic time of the last reading
    rate: float = 0.0  # CPU share between the last two readings (0..1)


class CpuMeter:
    """CPU nanoseconds per operation and group, summed over the windows measured for it:
    `web` (the gunicorn master and its workers), `db` (backends of the bench database and
    their parallel workers) and `pg_other` (every other PostgreSQL process: background
    writers, other databases' sessions; shown, not counted in the model)."""

    def __init__(self, *, postmaster: int, dbname: str) -> None:
        self.postmaster, self.dbname = postmaster, dbname
        self.web_root: int | None = None
        self.seen: dict[int, Seen] = {}
        self.base: dict[int, int] | None = None  # CPU at the window's start (None: closed)
        self.exited: Counter[str] = Counter()  # in-window CPU of processes that exited
        self.exited_total = 0  # lifetime CPU (last reading) of postmaster children that exited
        self.tails: Counter[str] = Counter()  # estimated CPU after their last reading
        self.exits: Counter[str] = Counter()  # postmaster children that exited, per group
        self.totals: dict[str, Counter[str]] = defaultdict(Counter)
        self.windows: Counter[str] = Counter()
        self.web_exits = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True, name="cpu-meter")

    def start(self) -> None:
        self.thread.start()

    def _sample(self) -> None:
        while not self.stopped.wait(SAMPLE_SECONDS):
            with self.lock:
                self._sweep()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _group_of(self, pid: int) -> str | None:
        title = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
        if not title.startswith("postgres:"):
            return None  # forked, not named yet (or already gone)
        leader = _PARALLEL.search(title)
        if leader:
            group = self.seen.get(int(leader.group(1)))
            return ("db" if group.group == "db" else "pg_other") if group else None
        return "db" if self.dbname in title.split() else "pg_other"

    def _sweep(self) -> None:
        now = time.monotonic()
        alive: dict[int, str | None] = {}
        for pid in children(self.postmaster):
            known = self.seen.get(pid)
            alive[pid] = known.group if known and known.group else self._group_of(pid)
        if self.web_root is not None:
            for pid in (self.web_root, *children(self.web_root)):
                alive[pid] = "web"
        for pid, group in alive.items():
            cpu = cpu_ns(pid)
            if cpu is None:
                continue  # exiting: the next sweep finds it gone
            before = self.seen.get(pid)
            if before is None:
                self.seen[pid] = Seen(group, cpu, now)
            else:
                span = now - before.at
                before.rate = min(1.0, (cpu - before.cpu) / 1e9 / span) if span > 0 else 0.0
                before.group, before.cpu, before.at = group or before.group, cpu, now
        for pid in [p for p in self.seen if p not in alive]:
            self._gone(pid, self.seen.pop(pid), now)

    def _gone(self, pid: int, seen: Seen, now: float) -> None:
        if self.base is None:
            return
        group = seen.group or "pg_other"
        self.exited[group] += seen.cpu - self.base.get(pid, 0)
        if group == "web":
            self.web_exits += 1  # a worker killed or restarted mid-window: figures suspect
            return
        self.exited_total += seen.cpu
        self.exits[group] += 1
        # It exited between its last reading and now, on average halfway.
        self.tails[group] += int(seen.rate * (now - seen.at) / 2 * 1e9)

    @contextmanager
    def window(self, op: str | None) -> Iterator[None]:
        """Counts the CPU used inside the block to `op` (None: a warm-up, not counted)."""
        with self.lock:
            self._sweep()
            self.base = {pid: s.cpu for pid, s in self.seen.items()}
            self.exited, self.exited_total = Counter(), 0
            self.tails, self.exits = Counter(), Counter()
            reaped_before = reaped_ns(self.postmaster)
        try:
            yield
        finally:
            with self.lock:
                self._sweep()
                used = Counter(self.exited)
                for pid, seen in self.seen.items():
                    used[seen.group or "pg_other"] += seen.cpu - self.base.get(pid, 0)
                unseen = max(0, reaped_ns(self.postmaster) - reaped_before - self.exited_total)
                if unseen:
                    # All ours when only bench backends exited; else our estimated share.
                    only_db = set(self.exits) <= {"db"}
                    mine = unseen if only_db else min(unseen, self.tails["db"])
                    used["db"] += mine
                    used["db_unseen"] += mine
                    used["pg_other"] += unseen - mine
                self.base = None
                if op:
                    self.totals[op].update(used)
                    self.windows[op] += 1

    def ms(self, op: str, group: str) -> float:
        return self.totals[op][group] / 1e6


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    location: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class Browser:
    """One user's cookies over plain HTTP/1.1 (a sync worker closes every connection, as it
    does behind a proxy: each request pays its connection)."""

    def __init__(self, port: int, cookies: dict[str, str] | None = None) -> None:
        self.port = port
        self.cookies = dict(cookies or {})

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = FORM
        sent.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(value)
            for name, morsel in jar.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return Answer(response.status, response.getheader("Location") or "", data)


_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_REVIEW_URL = re.compile(r"/review/(\d+)/")
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_TEXTAREA = re.compile(r'<textarea[^>]*name="corrected_output"[^>]*>\n?(.*?)</textarea>', re.S)
_CATEGORIES = re.compile(r'<select[^>]*name="error_category"[^>]*>(.*?)</select>', re.S)
_OPTION = re.compile(r'<option value="([^"]+)"')


def _expect(answer: Answer, status: int, what: str) -> Answer:
    if answer.status != status:
        raise SystemExit(f"{what}: HTTP {answer.status}, expected {status}: {answer.text[:500]}")
    return answer


@dataclass
class Reviewer:
    """A reviewer working the queue through the pages (and the API with a token)."""

    pk: int
    browser: Browser
    token: str
    csrf: str = ""
    item: int | None = None
    form: dict[str, str] = field(default_factory=dict)
    output: str = ""
    category: str = ""
    api_item: int | None = None

    def open_queue(self) -> None:
        """My queue: what I may claim, counted by agent, reason and age (and a CSRF token)."""
        page = _expect(self.browser.request("GET", "/queue/"), 200, "GET /queue/")
        found = _CSRF.search(page.text)
        if not found:
            raise SystemExit("GET /queue/: no CSRF token on the page")
        self.csrf = found.group(1)

    def claim(self) -> None:
        """The "Start reviewing" button: answered by a redirect to the claimed item."""
        form = {"csrfmiddlewaretoken": self.csrf}
        answer = self.browser.request("POST", "/queue/claim", form=form)
        self.item = self._next(_expect(answer, 302, "POST /queue/claim"))

    def review(self) -> None:
        answer = _expect(self.browser.request("GET", f"/review/{self.item}/"), 200, "review")
        text = answer.text
        start = text.find(f'<form id="decision-{self.item}"')
        form = text[start : text.find("</form>", start)] if start >= 0 else ""
        self.form = dict(_HIDDEN.findall(form))
        found = _TEXTAREA.search(form)
        self.output = found.group(1) if found else ""
        select = _CATEGORIES.search(form)
        options = _OPTION.findall(select.group(1)) if select else []
        self.category = options[0] if options else ""
        if "csrfmiddlewaretoken" not in self.form or "version" not in self.form:
            raise SystemExit(f"GET /review/{self.item}/: no decision form")

    def renew(self) -> None:
        """The screen's minutely lease renewal (htmx: it answers the countdown fragment)."""
        form = {"csrfmiddlewaretoken": self.form["csrfmiddlewaretoken"]}
        path = f"/review/{self.item}/lease"
        answer = self.browser.request("POST", path, form=form, headers={"HX-Request": "true"})
        _expect(answer, 200, "POST lease")

    def decide(self, verdict: str) -> None:
        """A plain form post (no JavaScript): the server records it, claims my next item and
        redirects to it."""
        output = html.unescape(self.output)
        form = {
            **self.form,
            "verdict": verdict,
            "corrected_output": output,
            "notes": "",
            "error_category": "",
            "seconds_spent": "20",
        }
        if verdict == "correct":
            form["corrected_output"] = output.rstrip() + " Corrected: see the refund policy."
            form["error_category"] = self.category
        answer = self.browser.request("POST", f"/review/{self.item}/decide", form=form)
        self.item = self._next(_expect(answer, 302, f"POST decide ({verdict})"))

    def _next(self, answer: Answer) -> int:
        found = _REVIEW_URL.search(answer.location)
        if not found:
            raise SystemExit(f"no item handed out (the queue ran dry?): {answer.location!r}")
        return int(found.group(1))

    def api(self, path: str, payload: dict) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return self.browser.request("POST", path, body=orjson.dumps(payload), headers=headers)

    def claim_api(self) -> None:
        answer = _expect(self.api("/api/v1/queue/claim", {}), 200, "API claim")
        self.api_item = orjson.loads(answer.body)["item"]["id"]

    def decide_api(self) -> None:
        path = f"/api/v1/items/{self.api_item}/decision"
        _expect(self.api(path, {"verdict": "approve", "seconds_spent": 20}), 200, "API decision")


# --- raw baselines (psycopg, one connection) ----------------------------------------------------

RAW_REVIEW = """
SELECT ri.id, ri.status, ri.version, ri.reason, ri.confidence, ri.lease_expires_at,
       i.input, i.output, i.context, i.steps, i.metadata, i.agent_version, i.created_at,
       a.slug, a.name, a.guidelines,
       (SELECT coalesce(json_agg(r), '[]') FROM reviews_review r WHERE r.item_id = ri.id)
FROM reviews_reviewitem ri JOIN reviews_interaction i ON i.id = ri.interaction_id
JOIN reviews_agent a ON a.id = ri.agent_id
WHERE ri.id = %s
"""
RAW_DECIDE = """
WITH done AS (
    UPDATE reviews_reviewitem SET status = 'done', final_verdict = 'approve', decided_at = now(),
           lease_expires_at = NULL, version = version + 1, updated_at = now()
    WHERE id = %(id)s AND status = 'claimed' AND claimed_by_id = %(me)s
    RETURNING id)
INSERT INTO reviews_review (verdict, corrected_output, notes, seconds_spent, is_adjudication,
                            created_at, reviewer_id, item_id)
SELECT 'approve', '', '', 20, false, now(), %(me)s, id FROM done
RETURNING item_id
"""
RAW_QUEUE = """
SELECT a.slug, a.name, ri.reason, count(*), min(ri.created_at),
       count(*) FILTER (WHERE ri.created_at > now() - interval '1 hour'),
       count(*) FILTER (WHERE ri.created_at > now() - interval '1 day'),
       count(*) FILTER (WHERE ri.created_at > now() - interval '7 days')
FROM reviews_reviewitem ri JOIN reviews_agent a ON a.id = ri.agent_id
WHERE ri.status IN ('pending', 'needs_second_review')
  AND (ri.assigned_to_id = %(me)s OR (ri.assigned_to_id IS NULL AND ri.domain = ANY(%(domains)s)))
  AND NOT EXISTS (SELECT 1 FROM reviews_review r WHERE r.item_id = ri.id AND r.reviewer_id = %(me)s)
GROUP BY 1, 2, 3
"""
RAW_LEASE = """
UPDATE reviews_reviewitem SET lease_expires_at = now() + interval '15 minutes'
WHERE id = %(id)s AND status = 'claimed' AND claimed_by_id = %(me)s
RETURNING id
"""
# The console's filters (bench/console.py's FILTERS, in that order) in SQL: the page's rows
# with their agent and assignee, and the paginator's count, capped like the page's.
_PRIORITY = "ri.priority DESC, ri.confidence, ri.source_created_at, ri.id"
RAW_CONSOLE_SHAPES = [
    ("", _PRIORITY, 0),
    ("AND ri.domain = 'support'", _PRIORITY, 0),
    ("AND ri.domain = 'legal' AND ri.confidence >= 0.2 AND ri.confidence <= 0.5", _PRIORITY, 0),
    ("AND ri.reason = 'low_confidence' AND ri.assigned_to_id IS NULL",
     "ri.source_created_at, ri.id", 0),
    ("AND ri.source_created_at <= now() - interval '24 hours' "
     "AND ri.source_created_at >= now() - interval '240 hours'", "ri.confidence, ri.id", 0),
    ("AND ri.domain = 'product'", _PRIORITY, 200),
]  # fmt: skip
RAW_CONSOLE_ROWS = """
SELECT ri.id, ri.status, ri.reason, ri.priority, ri.domain, ri.confidence, ri.source_created_at,
       a.slug, u.username, left(i.input, 200)
FROM reviews_reviewitem ri JOIN reviews_agent a ON a.id = ri.agent_id
JOIN reviews_interaction i ON i.id = ri.interaction_id
LEFT JOIN auth_user u ON u.id = ri.assigned_to_id
WHERE ri.status IN ('pending', 'needs_second_review', 'claimed') {where}
ORDER BY {order} LIMIT 50 OFFSET {offset}
"""
RAW_CONSOLE_COUNT = """
SELECT count(*) FROM (SELECT ri.id FROM reviews_reviewitem ri
    WHERE ri.status IN ('pending', 'needs_second_review', 'claimed') {where} LIMIT 10001) s
"""
# Unmeasured, between rounds: the item a reviewer was handed after the last decision goes
# back to the queue (what the lease sweep does), so the next round's claim is a real one.
RELEASE = """
UPDATE reviews_reviewitem SET status = 'pending', claimed_by_id = NULL, lease_expires_at = NULL,
       version = version + 1, updated_at = now()
WHERE status = 'claimed' AND claimed_by_id = ANY(%s)
"""

SETUP_USERS = """
import json
from importlib import import_module

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.models import ReviewerProfile
from accounts.services import token_create

User = get_user_model()
Store = import_module(settings.SESSION_ENGINE).SessionStore


def person(name, group):
    user, _ = User.objects.get_or_create(username=name)
    user.set_unusable_password()
    user.save()
    user.groups.add(Group.objects.get(name=group))
    return user


def session(user):
    # What a login stores (no password hashing: logins are not what is measured).
    store = Store()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "accounts.roles.RoleAwareBackend"  # what a login stores
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


out = {"reviewers": []}
for i in range(REVIEWERS):
    user = person(f"cap-r{i}", "reviewer")
    ReviewerProfile.objects.update_or_create(user=user, defaults={"domains": DOMAINS})
    out["reviewers"].append({"pk": user.pk, "session": session(user),
                             "token": token_create(user=user, name="capacity")[1]})
out["lead"] = session(person("cap-lead", "admin"))
out["agent_token"] = token_create(user=person("cap-pipeline", "agent"), name="capacity")[1]
print(json.dumps(out))
"""


# --- the web phase ------------------------------------------------------------------------------


@dataclass
class WebRun:
    meter: CpuMeter
    pool: ThreadPoolExecutor
    units: Counter[str] = field(default_factory=Counter)
    floors: dict[str, float] = field(default_factory=dict)  # op → client-side CPU ms

    def each(self, op: str | None, tasks: list[Callable[[], Any]]) -> list[Any]:
        """Runs `tasks` from the client threads inside one window of `op`."""
        with self.meter.window(op):
            results = list(self.pool.map(lambda task: task(), tasks))
        if op:
            self.units[op] += len(tasks)
        return results

    def raw(self, op: str | None, count: int, body: Callable[[], None]) -> None:
        with self.meter.window(op):
            body()
        if op:
            self.units[op] += count


def web_phase(args, url: str, workdir: Path, meter: CpuMeter) -> tuple[WebRun, dict[str, Any]]:
    ingest = _sibling("ingest")
    claim = _sibling("claim")
    console = _sibling("console")
    started = time.perf_counter()
    populate(url, n=args.n, pending=args.pending, decided=min(args.pending // 2, args.n // 10))
    made = json.loads(
        manage(
            url,
            "shell",
            "-c",
            f"REVIEWERS = {args.reviewers}\nDOMAINS = {list(DOMAINS)!r}\n" + SETUP_USERS,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    say(
        f"review queue: {args.n:,} interactions, {args.pending:,} open items, "
        f"{args.reviewers} reviewers, made in {time.perf_counter() - started:.1f}s (not timed)"
    )
    records = list(ingest.generate(args.ingest_batches * ingest.HTTP_BATCH, "cap", ingest.SEED))
    bodies = [orjson.dumps(list(b)) for b in itertools.batched(records, ingest.HTTP_BATCH)]
    checkpoint(url)

    extra = ["--worker-class", "sync", "--timeout", "300"]
    with (
        gunicorn_server(url, workers=args.workers, workdir=workdir, extra=extra) as (port, master),
        ThreadPoolExecutor(args.clients) as pool,
        connect(url, autocommit=True) as raw,
    ):
        deadline = time.monotonic() + 30
        while len(workers := children(master)) < args.workers and time.monotonic() < deadline:
            time.sleep(0.1)  # /healthz answered: at least one worker is up
        if len(workers) != args.workers:
            raise SystemExit(f"gunicorn runs {len(workers)} workers, expected {args.workers}")
        with meter.lock:
            meter.web_root = master
        stat_before = {pid: (stat_cpu_ns(pid), cpu_ns(pid) or 0) for pid in workers}
        run = WebRun(meter, pool)
        agent = Browser(port)
        lead = Browser(port, {"sessionid": made["lead"]})
        reviewers = [
            Reviewer(r["pk"], Browser(port, {"sessionid": r["session"]}), r["token"])
            for r in made["reviewers"]
        ]
        ids = [r.pk for r in reviewers]
        run.each(None, [r.open_queue for r in reviewers])  # CSRF cookie and token, as a browser

        # The per-request floor.
        def health() -> None:
            _expect(agent.request("GET", "/healthz"), 200, "GET /healthz")

        run.each(None, [health] * (4 * args.workers))
        run.each("healthz", [health] * args.healthz)
        say(f"healthz: {run.units['healthz']} requests")

        # Ingest, its raw COPY and its decoding floor.
        auth = {
            "Authorization": f"Bearer {made['agent_token']}",
            "Content-Type": "application/json",
        }

        def post(body: bytes) -> Callable[[], int]:
            def send() -> int:
                answer = agent.request("POST", "/api/v1/interactions", body=body, headers=auth)
                return orjson.loads(_expect(answer, 200, "POST /api/v1/interactions").body)[
                    "created"
                ]

            return send

        run.each(None, [post(b"[]")] * (2 * args.workers))
        created = sum(run.each("ingest", [post(body) for body in bodies]))
        run.units["ingest"] = len(records)  # per interaction, shown per 1,000
        raw_copy(run, raw, ingest, records)
        started_cpu = time.thread_time()
        for body in bodies:
            orjson.loads(body)
        run.floors["ingest"] = (time.thread_time() - started_cpu) * 1000
        say(f"ingest: {len(records):,} interactions in {len(bodies)} batches, created {created:,}")

        # The reviewers' round, and the raw statements of the same work.
        for round_ in range(args.rounds + 1):
            tag = (lambda op: op) if round_ else (lambda op: None)  # round 0 warms up
            run.each(tag("queue"), [r.open_queue for r in reviewers])
            run.each(tag("claim"), [r.claim for r in reviewers])
            run.each(tag("review"), [r.review for r in reviewers])
            run.each(tag("lease"), [r.renew for r in reviewers])
            run.each(tag("approve"), [lambda r=r: r.decide("approve") for r in reviewers])
            run.each(tag("review"), [r.review for r in reviewers])
            run.each(tag("correct"), [lambda r=r: r.decide("correct") for r in reviewers])
            raw.execute(RELEASE, (ids,))
            run.each(tag("claim_api"), [r.claim_api for r in reviewers])
            run.each(tag("approve_api"), [r.decide_api for r in reviewers])
            raw_round(run, raw, claim.RAW_CLAIM, ids, tag)
        say(f"reviewers: {args.rounds} rounds of {len(reviewers)} (and one warm-up round)")

        # The console's queue browser.
        def browse(query: str) -> Callable[[], None]:
            return lambda: _expect(lead.request("GET", f"/console/{query}"), 200, "console")

        assert len(console.FILTERS) == len(RAW_CONSOLE_SHAPES), "bench/console.py changed"
        shapes = list(zip(console.FILTERS, RAW_CONSOLE_SHAPES, strict=True))
        pages = list(itertools.islice(itertools.cycle(shapes), args.console))
        run.each(None, [browse(q) for q, _ in shapes])
        run.each("console", [browse(q) for q, _ in pages])

        def raw_console() -> None:
            for _, (where, order, offset) in pages:
                rows = RAW_CONSOLE_ROWS.format(where=where, order=order, offset=offset)
                raw.execute(rows).fetchall()
                raw.execute(RAW_CONSOLE_COUNT.format(where=where)).fetchone()

        run.raw("raw_console", len(pages), raw_console)
        say(f"console: {len(pages)} pages")
        stat_after = {pid: (stat_cpu_ns(pid), cpu_ns(pid) or 0) for pid in workers}
        with meter.lock:
            meter.web_root = None
    clocks = {
        "stat_ms": round(sum(stat_after[p][0] - stat_before[p][0] for p in workers) / 1e6, 1),
        "schedstat_ms": round(sum(stat_after[p][1] - stat_before[p][1] for p in workers) / 1e6, 1),
    }
    decided = scalar(url, "SELECT count(*) FROM reviews_review WHERE reviewer_id = ANY(%s)", (ids,))
    expected = (args.rounds + 1) * len(ids) * 4  # approve, correct, API approve, raw approve
    checks = [
        (created == len(records), f"ingest created {created:,} of {len(records):,}"),
        (decided == expected, f"decisions stored {decided:,} (expected {expected:,})"),
        (
            abs(clocks["stat_ms"] - clocks["schedstat_ms"])
            <= 20 * args.workers + 0.02 * clocks["schedstat_ms"],
            f"gunicorn workers' CPU by /proc/PID/stat {clocks['stat_ms']} ms, by schedstat "
            f"{clocks['schedstat_ms']} ms",
        ),
    ]
    return run, {"clocks": clocks, "checks": checks}


def raw_copy(run: WebRun, raw, ingest, records: list[dict]) -> None:
    """COPY of the same rows (as ingest would write them) into an indexed copy of the
    interaction table, committing every 5,000 rows like the project."""
    agent_ids = {slug: i for i, slug in enumerate(ingest.AGENTS, start=1)}
    rows = [ingest.as_row(rec, agent_ids) for rec in records]
    raw.execute("DROP TABLE IF EXISTS bench_cap_scratch")
    raw.execute("CREATE TABLE bench_cap_scratch (LIKE reviews_interaction INCLUDING ALL)")
    raw.execute("ALTER TABLE bench_cap_scratch ALTER ingested_at SET DEFAULT now()")
    copy_sql = f"COPY bench_cap_scratch ({', '.join(ingest.COLUMNS)}) FROM STDIN"

    def copy() -> None:
        with raw.cursor() as cursor:
            for start in range(0, len(rows), ingest.COMMIT_EVERY):
                with raw.transaction(), cursor.copy(copy_sql) as writer:
                    for row in rows[start : start + ingest.COMMIT_EVERY]:
                        writer.write_row(row)

    run.raw("raw_ingest", len(rows), copy)
    copied = raw.execute("SELECT count(*) FROM bench_cap_scratch").fetchone()[0]
    raw.execute("DROP TABLE bench_cap_scratch")
    if copied != len(rows):
        raise SystemExit(f"raw COPY stored {copied} rows, expected {len(rows)}")


def raw_round(run: WebRun, raw, claim_sql: str, ids: list[int], tag) -> None:
    """Each reviewer: the raw queue counts, claim, read of the screen's data, lease renewal
    and approve."""
    items: list[int] = []

    def claims() -> None:
        for me in ids:
            row = raw.execute(claim_sql, {"me": me, "domain": "support"}).fetchone()
            if row is None:
                raise SystemExit("raw claim: the queue ran dry")
            items.append(row[0])

    def queues() -> None:
        for me in ids:
            raw.execute(RAW_QUEUE, {"me": me, "domains": list(DOMAINS)}).fetchall()

    def reads() -> None:
        for item in items:
            raw.execute(RAW_REVIEW, (item,)).fetchall()

    def leases() -> None:
        for me, item in zip(ids, items, strict=True):
            if raw.execute(RAW_LEASE, {"id": item, "me": me}).fetchone() is None:
                raise SystemExit(f"raw lease renewal of item {item} changed nothing")

    def decides() -> None:
        for me, item in zip(ids, items, strict=True):
            if raw.execute(RAW_DECIDE, {"id": item, "me": me}).fetchone() is None:
                raise SystemExit(f"raw decide of item {item} changed nothing")

    run.raw(tag("raw_queue"), len(ids), queues)
    run.raw(tag("raw_claim"), len(ids), claims)
    run.raw(tag("raw_review"), len(ids), reads)
    run.raw(tag("raw_lease"), len(ids), leases)
    run.raw(tag("raw_decide"), len(ids), decides)


# --- the worker phase ---------------------------------------------------------------------------


def empty(url: str) -> None:
    """Every agent and all that hangs off it (interactions, items, reviews, pairs, batches,
    snapshots), so the next phase's generator writes its own ids."""
    with connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE reviews_agent CASCADE")


def startup_cpu(url: str, cmd: list[str], workdir: Path, times: int) -> float:
    """CPU seconds of `CMD --help` (the fewest of `times` runs): Python and, for a manage.py
    command, Django and the command loaded, which a Celery worker pays once, not per task."""
    best = math.inf
    for _ in range(times):
        run = run_measured([*cmd, "--help"], env=child_env(url), workdir=workdir)
        best = min(best, run.cpu_seconds)
    return best


def child_env(url: str, **extra: str) -> dict[str, str]:
    """A production-like child (bytecode caching on, as in a deployment)."""
    env = project_env(url, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def command(meter: CpuMeter, op: str, url: str, workdir: Path, cmd: list[str], **env: str):
    with meter.window(op):
        run = run_measured(cmd, env=child_env(url, **env), workdir=workdir)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])} exited {run.returncode}:\n{run.stderr[-3000:]}")
    return run


def kpi_phase(args, url: str, workdir: Path, meter: CpuMeter) -> dict[str, Any]:
    kpis = _sibling("kpis")
    empty(url)
    started = time.perf_counter()
    now = datetime.now(UTC).timestamp()
    counts = kpis.generate_in_child(
        url, what="base", n=args.kpi_n, days=args.kpi_days, seed=kpis.SEED, now=now
    )
    checkpoint(url)
    say(
        f"KPI data: {counts['interactions']:,} interactions over {args.kpi_days} days, "
        f"{counts['review_items']:,} items, {counts['reviews']:,} reviews, "
        f"{counts['feedback']:,} feedback events in {time.perf_counter() - started:.1f}s"
    )
    startup = startup_cpu(url, [PYTHON, "manage.py", "recompute_kpis"], workdir, args.startups)
    raws, projects = [], []
    for _ in range(args.repeat):
        op = f"raw_kpis_{len(raws)}"
        before = time.thread_time()
        with meter.window(op):
            _, groups = kpis.raw_query(url)
        raws.append((op, time.thread_time() - before))
        op = f"kpis_{len(projects)}"
        run = command(meter, op, url, workdir, [PYTHON, "manage.py", "recompute_kpis", "--full"])
        projects.append((op, run.cpu_seconds - startup))
        say(
            f"KPI recompute --full: {run.seconds:.1f}s wall, {run.cpu_seconds:.2f}s CPU "
            f"({startup:.2f}s of it start-up); raw SQL {groups:,} groups"
        )
    check = kpis.checks(url, counts)
    return {
        "n": counts["interactions"],
        "startup_s": startup,
        "raws": raws,
        "projects": projects,
        "checks_ok": check["ok"],
    }


def export_phase(args, url: str, workdir: Path, meter: CpuMeter) -> dict[str, Any]:
    export = _sibling("export")
    empty(url)
    started = time.perf_counter()
    export.check_schema(url)
    duplicates = export.generate(url, args.export_n, export.SEED)
    checkpoint(url)
    say(
        f"export data: {args.export_n:,} training pairs ({duplicates:,} duplicates) in "
        f"{time.perf_counter() - started:.1f}s"
    )
    startup = startup_cpu(url, [PYTHON, "manage.py", "export_batch"], workdir, args.startups)
    dump = [PYTHON, str(Path(export.__file__))]
    raw_startup = startup_cpu(url, dump, workdir, args.startups)
    out = workdir / "raw.jsonl"
    raw = command(
        meter,
        "raw_export",
        url,
        workdir,
        [*dump, "--raw-child", str(out), "--database-url", url],
    )
    rows_raw = json.loads(raw.stdout.strip().splitlines()[-1])["rows"]
    out.unlink()
    result: dict[str, Any] = {
        "n": args.export_n,
        "startup_s": startup,
        "raw_cpu_s": raw.cpu_seconds - raw_startup,
        "formats": {},
    }
    checks = [rows_raw == args.export_n]
    for fmt in args.formats.split(","):
        run = command(
            meter,
            f"export_{fmt}",
            url,
            workdir,
            [PYTHON, "manage.py", "export_batch", "--agent", export.AGENT, "--format", fmt],
            MEDIA_ROOT=str(workdir / "media"),
        )
        printed = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
        path = Path(printed["path"])
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        path.unlink()
        checks += [int(printed["rows"]) == args.export_n - duplicates, digest == printed["sha256"]]
        result["formats"][fmt] = run.cpu_seconds - startup
        say(
            f"export {fmt}: {run.seconds:.1f}s wall, {run.cpu_seconds:.2f}s CPU "
            f"({startup:.2f}s of it start-up), {printed['rows']} rows"
        )
    result["checks_ok"] = all(checks)
    return result


# --- figures ------------------------------------------------------------------------------------


def op_figures(
    meter: CpuMeter,
    op: str,
    raw_op: str | None,
    *,
    units: float,
    per: str,
    per_units: float,
    app_ms: float | None = None,
    raw_app_ms: float = 0.0,
    floor_ms: float | None = None,
) -> dict[str, Any]:
    """CPU ms per `per` (`per_units` units) of the project and of its raw baseline."""
    scale = per_units / units
    app = (meter.ms(op, "web") if app_ms is None else app_ms) * scale
    db = meter.ms(op, "db") * scale
    figures: dict[str, Any] = {
        "per": per,
        "units": units,
        "app_cpu_ms": round(app, 3),
        "db_cpu_ms": round(db, 3),
        "cpu_ms": round(app + db, 3),
        "db_unseen_ms": round(meter.ms(op, "db_unseen") * scale, 3),
        "pg_other_ms": round(meter.ms(op, "pg_other") * scale, 3),
    }
    if raw_op:
        raw_db = meter.ms(raw_op, "db") * scale
        raw_app = raw_app_ms * scale
        figures |= {
            "raw_app_cpu_ms": round(raw_app, 3),
            "raw_db_cpu_ms": round(raw_db, 3),
            "db_ratio": round(db / raw_db, 2) if raw_db else None,
            "ratio": round((app + db) / (raw_app + raw_db), 2) if raw_app + raw_db else None,
        }
    if floor_ms is not None:
        figures["app_floor_ms"] = round(floor_ms * scale, 3)
    return figures


LABELS = {
    "healthz": ("GET /healthz (per-request floor)", "none: it is the floor"),
    "ingest": ("ingest: POST /api/v1/interactions, 1,000/batch",
               "COPY of the same rows into an indexed copy of the table"),
    "queue": ("My queue: GET /queue/", "one grouped count of the claimable items"),
    "claim": ("claim: POST /queue/claim (Start reviewing)", "bench/claim.py's claim statement"),
    "review": ("review screen: GET /review/ID/", "one SELECT of the screen's data"),
    "lease": ("lease renewal: POST /review/ID/lease (htmx)", "one UPDATE of the lease"),
    "approve": ("approve: POST /review/ID/decide (+ next claim)", "UPDATE + INSERT of a decision"),
    "correct": ("correct: POST /review/ID/decide (+ next claim)", "UPDATE + INSERT of a decision"),
    "claim_api": ("claim: POST /api/v1/queue/claim", "bench/claim.py's claim statement"),
    "approve_api": ("approve: POST /api/v1/items/ID/decision", "UPDATE + INSERT of a decision"),
    "console": ("console: GET /console/?filters",
                "the same filters, sorts and capped count in SQL"),
    "kpis": ("KPI recompute --full (worker)", "bench/kpis.py's one SQL statement"),
    "export_jsonl": ("export build, jsonl (worker)", "server-side cursor dump, orjson lines"),
    "export_parquet": ("export build, parquet (worker)", "server-side cursor dump, orjson lines"),
}  # fmt: skip


def all_figures(meter: CpuMeter, web: WebRun, kpi: dict, export: dict) -> dict[str, Any]:
    u = web.units
    ops = {
        "healthz": op_figures(
            meter, "healthz", None, units=u["healthz"], per="request", per_units=1
        ),
        "ingest": op_figures(
            meter,
            "ingest",
            "raw_ingest",
            units=u["ingest"],
            per="1,000 interactions",
            per_units=1000,
            floor_ms=web.floors["ingest"],
        ),
    }
    raw_of = {
        "queue": "raw_queue",
        "claim": "raw_claim",
        "claim_api": "raw_claim",
        "review": "raw_review",
        "lease": "raw_lease",
        "approve": "raw_decide",
        "correct": "raw_decide",
        "approve_api": "raw_decide",
        "console": "raw_console",
    }
    for op, raw_op in raw_of.items():
        # The raw op ran once per reviewer per round like the op: scale both to one request.
        figures = op_figures(meter, op, None, units=u[op], per="request", per_units=1)
        raw_db = meter.ms(raw_op, "db") / u[raw_op]
        figures |= {
            "raw_db_cpu_ms": round(raw_db, 3),
            "db_ratio": round(figures["db_cpu_ms"] / raw_db, 2) if raw_db else None,
            "ratio": round(figures["cpu_ms"] / raw_db, 2) if raw_db else None,
            "app_vs_floor": round(figures["app_cpu_ms"] / ops["healthz"]["app_cpu_ms"], 2),
        }
        ops[op] = figures
    # Worker side: the better of the repeats (the first may pay a colder cache).
    raw_op, raw_client = min(kpi["raws"], key=lambda r: meter.ms(r[0], "db") + r[1] * 1000)
    op, cpu = min(kpi["projects"], key=lambda r: meter.ms(r[0], "db") + r[1] * 1000)
    ops["kpis"] = op_figures(
        meter,
        op,
        raw_op,
        units=kpi["n"],
        per="1M interactions",
        per_units=MILLION,
        app_ms=cpu * 1000,
        raw_app_ms=raw_client * 1000,
    )
    for fmt, cpu in export["formats"].items():
        ops[f"export_{fmt}"] = op_figures(
            meter,
            f"export_{fmt}",
            "raw_export",
            units=export["n"],
            per="1M pairs",
            per_units=MILLION,
            app_ms=cpu * 1000,
            raw_app_ms=export["raw_cpu_s"] * 1000,
        )
    for name in ops:
        if name == "kpis" or name.startswith("export_"):
            n = kpi["n"] if name == "kpis" else export["n"]
            ops[name] |= {"measured_rows": n, "scaled_linearly": n != MILLION}
    return ops


def capacity(args, ops: dict[str, dict]) -> dict[str, Any]:
    """CPU-seconds per second of web, worker and database for the load, and the cores."""
    decisions = args.load_reviewers / args.decision_seconds
    day_rows = args.ingest_rate * 86_400
    # The periodic KPI run recomputes whole days: the days touched since the last run and,
    # for every agent with open items, today and yesterday (kpis/services.py,
    # plan_incremental). Under a steady stream that is yesterday's rows and, on average,
    # half a day of today's, at every run.
    kpi_rows = 1.5 * day_rows
    settle_rows = args.settle_days * day_rows  # once a day (kpis.settle)
    fmt = args.formats.split(",")[0]
    decide = {
        k: sum(ops[v][k] * share for v, share in DECISION_MIX.items())
        for k in ("app_cpu_ms", "db_cpu_ms")
    }
    lines = [
        # what, where the app CPU runs, rate (units per s), app ms per unit, db ms per unit
        ("My queue pages (1 in 10 decisions)", "web", decisions * QUEUE_VISITS, ops["queue"]),
        ("claims (Start reviewing)", "web", decisions, ops["claim"]),
        ("review screens", "web", decisions, ops["review"]),
        ("lease renewals (1/min per reviewer)", "web", args.load_reviewers / 60, ops["lease"]),
        ("decisions (80% approve, 20% correct)", "web", decisions, decide),
        ("console pages", "web", args.console_rate, ops["console"]),
        ("ingest (per 1,000 interactions)", "web", args.ingest_rate / 1000, ops["ingest"]),
        (
            f"KPI run every {args.kpi_every:.0f} s over {kpi_rows / 1e6:,.0f}M rows",
            "worker",
            kpi_rows / MILLION / args.kpi_every,
            ops["kpis"],
        ),
        (
            f"KPI settle, daily, {settle_rows / 1e6:,.0f}M rows",
            "worker",
            settle_rows / MILLION / 86_400,
            ops["kpis"],
        ),
        (
            f"export, {args.export_rows / 1e6:g}M rows {fmt}, {args.exports_per_hour:g}/h",
            "worker",
            args.export_rows / MILLION * args.exports_per_hour / 3600,
            ops[f"export_{fmt}"],
        ),
    ]
    rows, sums = [], Counter()
    for what, where, per_s, op in lines:
        app = per_s * op["app_cpu_ms"] / 1000
        db = per_s * op["db_cpu_ms"] / 1000
        sums[where] += app
        sums["db"] += db
        rows.append(
            {
                "what": what,
                "tier": where,
                "per_s": round(per_s, 4),
                "app_cores": round(app, 3),
                "db_cores": round(db, 3),
            }
        )
    factor = 1 + args.headroom
    tiers = {
        tier: {"cpu_s_per_s": round(sums[tier], 2), "cores": math.ceil(sums[tier] * factor)}
        for tier in ("web", "worker", "db")
    }
    return {
        "load": {
            "reviewers": args.load_reviewers,
            "decision_seconds": args.decision_seconds,
            "decisions_per_s": round(decisions, 2),
            "ingest_per_s": args.ingest_rate,
            "console_per_s": args.console_rate,
            "kpi_every_s": args.kpi_every,
            "kpi_rows_per_run": kpi_rows,
            "settle_days": args.settle_days,
            "exports_per_hour": args.exports_per_hour,
            "export_rows": args.export_rows,
        },
        "headroom": args.headroom,
        "rows": rows,
        **tiers,
    }


def _cpu(value: float | None, per: str) -> str:
    """ms per request or per 1,000 rows; s per million rows."""
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if per.startswith("1M") else f"{value:.2f} ms"


def _times(value: float | None) -> str:
    return f"{value:.1f}x" if value else "-"


def print_tables(ops: dict[str, dict], plan: dict[str, Any]) -> None:
    say("")
    say("CPU per operation: app = the gunicorn worker (web) or the command (worker, less its")
    say("start-up); db = PostgreSQL backends of the bench database and their parallel workers")
    head = (
        f"{'operation':<48} {'per':<18} {'app':>10} {'db':>9} {'total':>10} {'raw db':>9} "
        f"{'db x':>5} {'all x':>6}"
    )
    say(head)
    say("-" * len(head))
    for name, f in ops.items():
        per = f["per"] + (" *" if f.get("scaled_linearly") else "")
        say(
            f"{LABELS[name][0]:<48} {per:<18} {_cpu(f['app_cpu_ms'], per):>10} "
            f"{_cpu(f['db_cpu_ms'], per):>9} {_cpu(f['cpu_ms'], per):>10} "
            f"{_cpu(f.get('raw_db_cpu_ms'), per):>9} {_times(f.get('db_ratio')):>5} "
            f"{_times(f.get('ratio')):>6}"
        )
    say("-" * len(head))
    if any(f.get("scaled_linearly") for f in ops.values()):
        say("* measured at a smaller size, scaled linearly to a million rows: a run's fixed costs")
        say("  are scaled with it, so a small size overstates them (not for sizing)")
    say("db x: db over the raw baseline's backend CPU; all x: total over the raw baseline's")
    say("total (its backend, plus its client process for the worker rows). Raw baselines:")
    for name in (
        "ingest",
        "queue",
        "claim",
        "review",
        "lease",
        "approve",
        "console",
        "kpis",
        "export_jsonl",
    ):
        say(f"  {name}: {LABELS[name][1]}")
    load = plan["load"]
    say("")
    say(
        f"Capacity: {load['reviewers']} reviewers deciding every {load['decision_seconds']:g} s "
        f"({load['decisions_per_s']:g} claims, screens and decisions/s), "
        f"{load['ingest_per_s']:,.0f} interactions/s, {load['console_per_s']:g} console pages/s,"
    )
    say(
        f"the KPI run every {load['kpi_every_s']:g} s and the daily settle "
        f"({load['settle_days']} days), {load['exports_per_hour']:g} export/h of "
        f"{load['export_rows']:,} rows"
    )
    head = f"{'':<46} {'per s':>9} {'app CPU-s/s':>12} {'db CPU-s/s':>11}"
    say(head)
    say("-" * len(head))
    for row in plan["rows"]:
        say(
            f"{row['what']:<46} {row['per_s']:>9.4f} {row['app_cores']:>12.3f} "
            f"{row['db_cores']:>11.3f}  {row['tier']}"
        )
    say("-" * len(head))
    factor = 1 + plan["headroom"]
    for tier in ("web", "worker", "db"):
        t = plan[tier]
        say(
            f"{tier:<7} {t['cpu_s_per_s']:>6.2f} CPU-s/s x {factor:g} "
            f"({plan['headroom']:.0%} headroom) = {t['cores']} cores"
        )


# --- main ---------------------------------------------------------------------------------------


def postmaster_pid(url: str) -> int:
    """The postmaster: the parent of a backend of the server (which must be local)."""
    params = {**conninfo_to_dict(url), "dbname": "postgres"}
    with psycopg.connect(**params, autocommit=True) as conn:
        backend = conn.info.backend_pid
        fields = _stat(backend)
    if not fields:
        raise SystemExit(
            f"backend {backend} is not in this machine's /proc: the capacity bench reads the "
            "CPU of PostgreSQL's processes, so the server must run here"
        )
    return int(fields[1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (under a minute)")
    parser.add_argument("--n", type=int, help="interactions behind the review queue (1M)")
    parser.add_argument("--pending", type=int, help="open review items (200,000)")
    parser.add_argument("--reviewers", type=int, help="reviewers working the pages (16)")
    parser.add_argument("--rounds", type=int, help="measured rounds of every reviewer (40)")
    parser.add_argument("--healthz", type=int, help="GET /healthz requests (1,000)")
    parser.add_argument("--ingest-batches", type=int, help="batches of 1,000 to ingest (100)")
    parser.add_argument("--console", type=int, help="console pages (300)")
    parser.add_argument("--kpi-n", type=int, help="interactions for the KPI recompute (1M)")
    parser.add_argument("--kpi-days", type=int, help="days they span (90)")
    parser.add_argument("--export-n", type=int, help="training pairs to export (1M)")
    parser.add_argument("--repeat", type=int, default=1, help="KPI raw + recompute runs")
    parser.add_argument("--formats", help="export formats (jsonl,parquet)")
    parser.add_argument("--startups", type=int, help="runs of each command's --help (2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=2, help="client threads")
    load = parser.add_argument_group("the load of the capacity table")
    load.add_argument("--load-reviewers", type=int, default=100)
    load.add_argument("--decision-seconds", type=float, default=20.0)
    load.add_argument("--ingest-rate", type=float, default=1000.0, help="interactions/s")
    load.add_argument("--console-rate", type=float, default=0.2, help="console pages/s")
    load.add_argument("--kpi-every", type=float, default=300.0, help="seconds between KPI runs")
    load.add_argument("--settle-days", type=int, default=3, help="KPI_SETTLE_DAYS")
    load.add_argument("--exports-per-hour", type=float, default=1.0)
    load.add_argument("--export-rows", type=int, default=MILLION)
    load.add_argument("--headroom", type=float, default=0.5, help="0.5: 50%% more cores")
    parser.add_argument(
        "--database-url",
        default=None,
        help="bench database, dropped and re-created (name must start with coachdesk_bench; "
        f"default $BENCH_DATABASE_URL's server or {DEFAULT_URL})",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    args = parser.parse_args(argv)
    for name, value in SIZES["smoke" if args.smoke else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = bench_database_url(
        args.database_url or os.environ.get("BENCH_CAP_DATABASE_URL") or DEFAULT_URL
    )
    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-capacity-"))
    started = time.perf_counter()
    meter: CpuMeter | None = None
    try:
        cpu_model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown",
        )
        say(
            f"capacity bench{' (smoke)' if args.smoke else ''}: db={database_name(url)}, "
            f"{args.workers} gunicorn sync workers, {args.clients} client threads"
        )
        say(f"machine: {os.cpu_count()} cores ({cpu_model}); {machine_load()}")
        meter = CpuMeter(postmaster=postmaster_pid(url), dbname=database_name(url))
        meter.start()
        web, web_info = web_phase(args, url, workdir, meter)
        say(machine_load())
        kpi = kpi_phase(args, url, workdir, meter)
        export = export_phase(args, url, workdir, meter)
        meter.stop()
        ops = all_figures(meter, web, kpi, export)
        plan = capacity(args, ops)
        print_tables(ops, plan)

        checks = [
            *web_info["checks"],
            (kpi["checks_ok"], "KPI snapshots' totals match the raw data"),
            (export["checks_ok"], "export rows and sha256 as expected"),
            (meter.web_exits == 0, f"no gunicorn worker exited ({meter.web_exits})"),
            (all(f["cpu_ms"] > 0 for f in ops.values()), "every operation used CPU"),
        ]
        say("")
        for ok, text in checks:
            say(f"check {'ok  ' if ok else 'FAIL'} {text}")
        seconds = time.perf_counter() - started
        say(f"{machine_load()}; run took {seconds:.0f}s")
        checks_ok = all(ok for ok, _ in checks)
        emit_figures(
            {
                "bench": "capacity",
                "smoke": args.smoke,
                "cores": os.cpu_count(),
                "cpu_model": cpu_model,
                "gunicorn_workers": args.workers,
                "sizes": {k: getattr(args, k) for k in SIZES["full"]},
                "ops": ops,
                "capacity": plan,
                "cpu_clocks": web_info["clocks"],
                "kpi_startup_cpu_s": round(kpi["startup_s"], 3),
                "export_startup_cpu_s": round(export["startup_s"], 3),
                "seconds": round(seconds, 1),
                "checks_ok": checks_ok,
            }
        )
        return 0 if checks_ok else 1
    finally:
        if meter is not None:
            meter.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
