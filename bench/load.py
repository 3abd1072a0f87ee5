"""Load test: simulated reviewers working the queue through the real pages while an agent
pipeline streams interactions into the ingest API, against the production stack (gunicorn,
PostgreSQL, Redis, a Celery worker and celery beat), then a count of what went wrong.

    python bench/load.py [--duration 120] [--reviewers 50] [--ingest-rate 500]
    python bench/load.py --duration 15 --reviewers 5 --ingest-rate 50 --backlog 300  # smoke
    python bench/load.py --find-max-rate [--p95-limit-ms 300] [--step-seconds 30]

Targets (issue 7): zero 5xx, zero double claims, zero lost reviews; p95 page time printed.
Each run uses `--database-url` (a name starting with `coachdesk_load`) and `--redis-url` (a
DB index of its own): give two runs on one machine different ones.

What runs, in order:
1. a fresh database (`coachdesk_load` by default: dropped and created), `migrate`, the
   reviewers (all with one password, hashed once), a four-eyes legal agent, the pipeline user
   and its API token (`createtoken`), and a backlog of low-confidence interactions imported
   with `import_interactions` so the queue has work from second 0;
2. gunicorn (gthread), `celery worker` and `celery beat` on that database and a Redis DB of
   their own (`FLUSHDB` on that index only, before the run); waits for /healthz;
3. locust as a separate process (bench/locustfile.py, gevent): every reviewer logs in through
   the login page (the logins, 50 password hashes, come before the measured window, which
   opens when the last one is in and lasts --duration seconds), opens "My queue", claims
   with "Start reviewing", opens the review screen and posts a decision (half of them as
   plain forms with redirects, half as htmx requests, as the page does with JavaScript); an
   ingest stream posts batches to /api/v1/interactions on a schedule at the target rate.
   Both log what the server acknowledged;
4. the counts, from the logs and from the database (psycopg):
   - 5xx: from locust's request log and, independently, gunicorn's access log;
   - double claims: replaying the audit log per item (a claim while another claim is open,
     or of a decided item) and, independently, from the reviewers' own logs (two reviewers
     who certainly held the same item at the same instant);
   - lost reviews: acknowledged decisions without their Review row;
   - ingest: interactions acknowledged as created against rows stored;
   - page times (exact percentiles per page type), requests/s;
   - CPU (issue 18: on a small machine the load generator competes with the server, so the
     run reports its own share): CPU seconds in the measured window and their share of the
     machine (every core for the whole window) for the generator (locust and this
     orchestrator), the server (gunicorn, the Celery worker and beat, the PostgreSQL
     backends of the load database, found by their process title, PostgreSQL's shared
     processes, Redis) and other (the machine's busy time less both: other jobs, the
     kernel), the idle share and the cores busy. Keys `cpu_generator_s`, `cpu_server_s`,
     `cpu_other_s`, `cpu_share_generator` / `_server` / `_other` / `_idle`, `cpu_s` (by
     component), `cores_busy`, `cores`, `cpu_window_s`. Read a result with a large
     generator or other share as a lower bound on what the server alone could do.
The last line printed is one JSON object of the figures; the exit code is 1 when any 5xx,
connection error (a request dropped with its kept-alive connection is resent once, as a
browser does; it is counted in `dropped_and_resent`), double claim or lost review was
counted, or when no work was done. Logs stay in a temp folder whose path is printed.

--find-max-rate: the highest ingest rate at which the reviewer pages' p95 (every page a
reviewer opens or posts, the API aside) stays under --p95-limit-ms (300) with --reviewers
working. One stack, one set of logins, then steps on the same running load: each streams at
its rate for --settle-seconds (5), then measures --step-seconds (30). A step holds when the
page p95 is under the limit, no request got a 5xx or no answer, and the server took at least
95% of the rate. The first step is at --ingest-rate; rates double while they hold (up to
--max-rate, 2000, which also sizes the ingest senders), halve while they do not, then bisect
between the highest that held and the lowest that did not until those are within
--rate-resolution (50/s), for at most --max-steps (8). Printed per step (and under `steps`
in the JSON): target and achieved rate, page and review-screen p95, 5xx, connection errors,
the CPU breakdown; then `max_rate_held` (with its achieved rate and p95). The counts of 1-4
cover the whole run; 5xx and connection errors there fail their step, not the run; the exit
code is 1 on a correctness count (double claims, lost reviews, ingest) or when no rate held.
The database grows from step to step, so a later step runs on more rows than an earlier one.

The orchestrator never imports Django or gevent: the project runs as subprocesses.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import PYTHON, ROOT, emit_figures, free_port, machine_load, project_env, say

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_load"
# The run drops and re-creates its database: only names with this prefix are ever touched.
DB_PREFIX = "coachdesk_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
PASSWORD = "load-reviewer-password"  # noqa: S105 (a throwaway bench account)
PIPELINE_USER = "load-pipeline"
REVIEWER_PREFIX = "load-r"
LEASE_SECONDS = 900  # REVIEW_LEASE_SECONDS: a hold outlives any run shorter than this
ACCESS_LOG_FORMAT = '%(t)s "%(r)s" %(s)s %(b)s %(M)s'
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" (?P<status>\d{3}) ')

# Agents of the load: a support bot (one review) and a four-eyes legal bot (two agreeing
# reviews), so the second-review queue and its claims are exercised too.
AGENTS = {
    "load-support": {"name": "Load support bot", "domain": "support", "required_reviews": 1},
    "load-legal": {"name": "Load legal bot", "domain": "legal", "required_reviews": 2},
}
# (agent, domain, weight) of the generated interactions.
TRAFFIC = (
    ("load-support", "support", 5),
    ("load-support", "billing", 3),
    ("load-legal", "legal", 2),
)
THRESHOLD = 0.7
LOW_SHARE = 0.3  # share of streamed interactions below the threshold (queued for review)
_WORDS = tuple(
    " ".join(
        (
            "the a to of and for with your our order refund shipping delivery address account",
            "invoice payment card subscription plan warranty return policy days within item",
            "product customer please thank you we can will should need check status tracking",
            "parcel store price code contract clause liability terms privacy data request",
            "consent legal jurisdiction notice tenant landlord deposit employee overtime holiday",
            "café Größe naïve — is are was has this that it if then because when where which how",
            "what why here now today sorry great sure",
        )
    ).split(" ")
)


# --- Generated traffic (also used by bench/locustfile.py) ---------------------------------------


def _text(rng: random.Random, low: int, high: int) -> str:
    words, size = [], 0
    target = rng.randint(low, high)
    while size < target:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words).capitalize() + "."


def make_interaction(rng: random.Random, external_id: str, *, low: bool = False) -> dict:
    """One interaction in the DESIGN.md format: input ~80-250 characters, output ~150-500,
    two prior turns. `low` forces a confidence below the threshold (a queued item); otherwise
    LOW_SHARE of them fall below it."""
    agent, domain, _ = rng.choices(TRAFFIC, weights=[w for *_, w in TRAFFIC])[0]
    if low:
        confidence = rng.uniform(0.05, THRESHOLD - 0.01)
    else:
        floor = (THRESHOLD - LOW_SHARE) / (1 - LOW_SHARE)
        confidence = rng.uniform(floor, 1.0)
    return {
        "external_id": external_id,
        "agent": agent,
        "agent_version": rng.choice(("2026.11.1", "2026.11.2")),
        "conversation_id": f"c-{rng.randrange(10**9)}",
        "input": _text(rng, 80, 250),
        "context": [
            {"role": "user", "content": _text(rng, 20, 80)},
            {"role": "assistant", "content": _text(rng, 40, 120)},
        ],
        "output": _text(rng, 150, 500),
        "confidence": round(confidence, 4),
        "intent": rng.choice(("returns", "billing", "contract-terms", "delivery", "account")),
        "domain": domain,
        "resolved": rng.random() < 0.7,
        "escalated": rng.random() < 0.05,
        "sentiment": round(rng.uniform(-1, 1), 3),
        "turns": rng.randint(1, 8),
        "metadata": {"channel": rng.choice(("web", "app", "email")), "load": True},
        "created_at": datetime.now(UTC).isoformat(),
    }


def reviewer_name(index: int) -> str:
    return f"{REVIEWER_PREFIX}{index:03d}"


def reviewer_domains(index: int) -> list[str]:
    """Every other reviewer covers all three domains, the others two of them."""
    all_domains = ["support", "billing", "legal"]
    if index % 2 == 0:
        return all_domains
    return [d for i, d in enumerate(all_domains) if i != (index // 2) % 3]


# --- Analysis (pure functions of the logs and rows; tests/test_load_smoke.py checks them) -------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def page_times(requests: Iterable[Mapping[str, Any]]) -> dict[str, dict]:
    """Exact p50 / p95 / p99 / max (ms) and counts per request name."""
    by_name: dict[str, list[float]] = defaultdict(list)
    for r in requests:
        by_name[r["name"]].append(r["ms"])
    return {
        name: {
            "n": len(ms),
            "p50": round(percentile(ms, 0.50), 1),
            "p95": round(percentile(ms, 0.95), 1),
            "p99": round(percentile(ms, 0.99), 1),
            "max": round(max(ms), 1),
        }
        for name, ms in sorted(by_name.items())
    }


def audit_claim_violations(rows: Iterable[tuple[int, str, int | None]]) -> dict[str, Any]:
    """Replays the audit log of review items, `(item_id, action, actor_id)` in id order
    per item (ids are taken while the item's row is locked, so they follow its transitions).

    A claim while the item is claimed by someone else is a double claim; by the same person,
    a re-claim; a claim of an item already decided or sent to adjudication, a claim of a
    closed item. Each is a broken claim; `items` lists the items involved.
    """
    holder: dict[int, int | None] = {}
    closed: set[int] = set()
    found: Counter[str] = Counter()
    items: set[int] = set()
    for item, action, actor in rows:
        if action == "item.claimed":
            found["claims"] += 1
            if item in closed:
                found["claims_of_closed_items"] += 1
                items.add(item)
            if item in holder:
                found["double_claims" if holder[item] != actor else "reclaims"] += 1
                items.add(item)
            holder[item] = actor
        elif action == "item.released":
            holder.pop(item, None)
        elif action in ("item.decided", "item.disputed", "item.adjudicated"):
            holder.pop(item, None)
            closed.add(item)
    return {
        "claims": found["claims"],
        "double_claims": found["double_claims"],
        "reclaims": found["reclaims"],
        "claims_of_closed_items": found["claims_of_closed_items"],
        "items": sorted(items),
    }


def client_claim_violations(
    claims: Iterable[Mapping[str, Any]],
    decisions: Iterable[Mapping[str, Any]],
    *,
    run_end: float,
    lease_seconds: float = LEASE_SECONDS,
) -> dict[str, Any]:
    """Double claims seen from the reviewers' own logs, with no false positives.

    A hold certainly covers [claim answered (t1), decision sent (t0)]: the server claimed
    before it answered, and released no earlier than the decision arrived. Without an
    acknowledged decision it lasts until the run ended (or the lease ran out, if sooner);
    after a refused decision its end is unknown, so it is left out. Two reviewers whose
    certain holds of one item overlap both held it at once: a double claim. A reviewer handed
    the same item twice (not a resume of the item they hold) is a re-claim, which the claim
    rules forbid (an item is never offered again to someone who reviewed it).
    """
    ends: dict[tuple[str, int], float | None] = {}
    for d in decisions:
        key = (d["user"], d["item"])
        if d["acked"]:
            ends[key] = d["t0"] if ends.get(key) is None else min(ends[key], d["t0"])
        else:
            ends.setdefault(key, None)
    holds: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    handed: Counter[tuple[str, int]] = Counter()
    for c in claims:
        if not c["new"]:
            continue
        key = (c["user"], c["item"])
        handed[key] += 1
        if key in ends and ends[key] is None:
            continue  # a refused decision: when the hold ended is unknown
        end = ends.get(key, min(run_end, c["t1"] + lease_seconds))
        holds[c["item"]].append((c["t1"], end, c["user"]))
    double, items = 0, set()
    for item, spans in holds.items():
        for i, (start_a, end_a, user_a) in enumerate(spans):
            for start_b, end_b, user_b in spans[i + 1 :]:
                if user_a != user_b and max(start_a, start_b) < min(end_a, end_b):
                    double += 1
                    items.add(item)
    reclaims = sum(n - 1 for n in handed.values() if n > 1)
    return {"double_claims": double, "reclaims": reclaims, "items": sorted(items)}


def lost_reviews(
    acked: Iterable[Mapping[str, Any]], rows: Iterable[tuple[int, int, str]], user_ids: Mapping
) -> dict[str, Any]:
    """Acknowledged decisions `{"user", "item", "verdict"}` against Review rows
    `(item_id, reviewer_id, verdict)`: every acknowledgement needs its row (lost otherwise);
    rows without an acknowledgement (a decision whose answer never arrived) are reported."""
    stored = Counter(rows)
    wanted = Counter((d["item"], user_ids[d["user"]], d["verdict"]) for d in acked)
    lost = wanted - stored
    unacked = stored - wanted
    return {
        "lost": sum(lost.values()),
        "unacked": sum(unacked.values()),
        "lost_examples": [list(k) for k in list(lost)[:10]],
    }


def access_log_statuses(lines: Iterable[str]) -> Counter[tuple[str, int]]:
    """(method + path kind, status) counts from gunicorn's access log."""
    found: Counter[tuple[str, int]] = Counter()
    for line in lines:
        m = _ACCESS_LINE.search(line)
        if m:
            path = re.sub(r"/\d+/", "/[id]/", m["path"].split("?", 1)[0])
            found[(f"{m['method']} {path}", int(m["status"]))] += 1
    return found


def window_figures(
    events: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    start: float,
    end: float,
) -> dict[str, Any]:
    """What the load saw in [start, end): reviewer page times (every page but the API), 5xx
    and requests left unanswered after a resend, and the ingest rate the server took (the
    interactions created by batches sent in the window, per second)."""
    in_window = [r for r in requests if start <= r["t"] < end]
    page_ms = [r["ms"] for r in in_window if not r["name"].startswith("POST /api/")]
    review_ms = [r["ms"] for r in in_window if r["name"] == "GET /review/[id]/"]
    resent = sum(
        1 for e in events if e["ev"] == "resend" and e["status"] != 0 and start <= e["t"] < end
    )
    batches = [e for e in events if e["ev"] == "ingest" and start <= e["t0"] < end]
    seconds = max(end - start, 1e-9)
    return {
        "measured_s": round(end - start, 1),
        "requests": len(in_window),
        "pages": len(page_ms),
        "page_p95_ms": round(percentile(page_ms, 0.95), 1),
        "review_p95_ms": round(percentile(review_ms, 0.95), 1),
        "http_5xx": sum(1 for r in in_window if r["status"] >= 500),
        "connection_errors": max(0, sum(1 for r in in_window if r["status"] == 0) - resent),
        "ingest_rate_achieved": round(
            sum(e["created"] for e in batches if e["status"] == 200) / seconds, 1
        ),
        "ingest_requests_failed": sum(1 for e in batches if e["status"] != 200),
        "decisions_acked": sum(
            1 for e in events if e["ev"] == "decision" and e["acked"] and start <= e["t0"] < end
        ),
    }


# A step holds its rate only if the server took nearly all of it: a sender waits for its
# answer, so a server that cannot keep up shows as an achieved rate below the target.
SUSTAINED_SHARE = 0.95


def step_misses(step: Mapping[str, Any], *, limit_ms: float) -> list[str]:
    """Why a step of --find-max-rate did not hold its rate (empty: it held)."""
    missed = []
    if not step["pages"]:
        missed.append("no reviewer pages")
    if step["page_p95_ms"] >= limit_ms:
        missed.append(f"page p95 {step['page_p95_ms']} ms >= {limit_ms:g} ms")
    if step["http_5xx"]:
        missed.append(f"{step['http_5xx']} 5xx")
    if step["connection_errors"]:
        missed.append(f"{step['connection_errors']} connection errors")
    if step["ingest_rate_achieved"] < SUSTAINED_SHARE * step["rate"]:
        missed.append(f"ingest {step['ingest_rate_achieved']:g}/s of {step['rate']:g}/s")
    return missed


def next_rate(
    steps: Sequence[tuple[float, bool]], *, start: float, ceiling: float, resolution: float
) -> float | None:
    """The next ingest rate to try after `steps` ((rate, held) so far), or None when done.

    Doubles from `start` while rates hold (up to `ceiling`), halves while they do not (down
    to `resolution`), then bisects between the highest rate that held below the lowest that
    did not until they are within `resolution` of each other. Rates are multiples of 5."""
    if not steps:
        return start
    failed = min((rate for rate, held in steps if not held), default=None)
    held = max(
        (rate for rate, ok in steps if ok and (failed is None or rate < failed)), default=None
    )
    if failed is None:
        rate = min(held * 2, ceiling)
        return None if held >= ceiling else rate
    if held is None:
        rate = 5 * round(failed / 2 / 5)
        return None if rate < resolution else rate
    if failed - held <= resolution:
        return None
    rate = 5 * round((held + failed) / 2 / 5)
    return rate if held < rate < failed else None


# --- Processes ----------------------------------------------------------------------------------


class Services:
    """The processes of the run, each in a session of its own (so a signal reaches the whole
    tree and nothing else), stopped in reverse order, also on Ctrl-C or an error."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, tuple[subprocess.Popen, Any]] = {}

    def start(self, name: str, cmd: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 (our own commands)
            list(cmd),
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs[name] = (proc, log)
        return proc

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def check_alive(self) -> None:
        for name, (proc, _) in self.procs.items():
            if proc.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise SystemExit(f"{name} exited {proc.returncode}:\n{tail}")

    def stop(self, name: str, timeout: float = 30) -> None:
        proc, log = self.procs.pop(name)
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        # Stragglers of the session (a worker the master lost track of).
        _signal_group(proc.pid, signal.SIGKILL)
        log.close()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            try:
                self.stop(name)
            except Exception as exc:  # keep stopping the others
                print(f"could not stop {name}: {exc}", file=sys.stderr)

    def sessions(self) -> dict[int, str]:
        return {proc.pid: name for name, (proc, _) in self.procs.items()}


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# Who the CPU seconds of a window belong to. The generator is the load itself; the server is
# what serves it (PostgreSQL's shared processes, the WAL writer, checkpointer and postmaster,
# and Redis work for every database on the machine, but on a machine of its own they would
# work only for this one); "other" is the rest of the machine: /proc/stat's busy time less
# both, so a process the sweep missed, the kernel or another engineer's job lands there.
GENERATOR = ("locust", "orchestrator")
SERVER = ("gunicorn", "celery-worker", "celery-beat", "postgres", "postgres-shared", "redis")
_PG_CLIENT = re.compile(r"\(\d+\)|\[local\]|autovacuum worker")  # a backend's peer, or a db


def postgres_component(title: str, dbname: str) -> str:
    """The component of a PostgreSQL process from its title (`/proc/<pid>/cmdline`): the
    server calls a backend `postgres: [cluster: ]user dbname host(port) activity`.

    Backends of `dbname` (and autovacuum on it) are "postgres"; backends of other databases
    belong to other work ("postgres-other-dbs"); the postmaster and its shared helpers
    (checkpointer, WAL writer, ...) are "postgres-shared". A backend not yet authenticated
    still has the postmaster's title: the next sweep reads it again."""
    words = title.replace("\0", " ").split()
    if not words or words[0] != "postgres:":
        return "postgres-shared"
    if dbname in words[1:]:
        return "postgres"
    if _PG_CLIENT.search(title):
        return "postgres-other-dbs"
    return "postgres-shared"


def cpu_breakdown(
    used: Mapping[str, float], *, busy: float, capacity: float, seconds: float, cores: int
) -> dict[str, Any]:
    """CPU seconds of a window by component (`used`) as generator / server / other, each
    also as a share of the machine (`capacity`: every core for the whole window, from
    /proc/stat). `busy` is the machine's busy time in the window; whatever of it neither
    the generator nor the server used is "other"."""
    generator = sum(used.get(c, 0.0) for c in GENERATOR)
    server = sum(used.get(c, 0.0) for c in SERVER)
    other = max(0.0, busy - generator - server)
    idle = max(0.0, capacity - max(busy, generator + server))

    def share(value: float) -> float:
        return round(value / capacity, 3) if capacity > 0 else 0.0

    return {
        "cpu_window_s": round(seconds, 1),
        "cpu_s": {c: round(used[c], 2) for c in (*GENERATOR, *SERVER) if used.get(c, 0) >= 0.01},
        "cpu_generator_s": round(generator, 2),
        "cpu_server_s": round(server, 2),
        "cpu_other_s": round(other, 2),
        "cpu_share_generator": share(generator),
        "cpu_share_server": share(server),
        "cpu_share_other": share(other),
        "cpu_share_idle": share(idle),
        "cores_busy": round(busy / seconds, 2) if seconds > 0 else None,
        "cores": cores,
    }


class CpuSampler(threading.Thread):
    """CPU seconds in each measured window of the run, split as `cpu_breakdown` says.

    Every second it reads every process's CPU time in /proc and files it under a component:
    our services by their session (each runs in one of its own, so a gunicorn worker or a
    Celery child counts with its master), this orchestrator by its pid, PostgreSQL processes
    by their title (`postgres_component`: backends are children of the postmaster, in no
    session of ours) and Redis by its name. A process that starts and ends between two
    sweeps is missed (its CPU lands in "other"); the load's own processes live for the run.

    The locustfile opens and closes window k by writing `window-<k>.start` / `.end` in the
    results folder; the sampler marks each edge (a fresh sweep and /proc/stat) within 0.2 s
    of the file appearing, and `between` gives the breakdown of the time between two marks.
    """

    def __init__(self, dbname: str, results: Path, sessions: Mapping[int, str]) -> None:
        super().__init__(daemon=True)
        self.dbname, self.results, self.sessions = dbname, results, dict(sessions)
        self.me = os.getpid()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.component: dict[tuple[int, str], str] = {}  # (pid, start time) -> component
        self.latest: dict[tuple[int, str], float] = {}  # its CPU seconds when last seen
        self.marks: dict[str, tuple[float, float, float, dict]] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def _component(self, pid: int, comm: str, session: int) -> str | None:
        if pid == self.me:
            return "orchestrator"
        if session in self.sessions:
            return self.sessions[session]
        if comm.startswith("postgres"):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                return None
            return postgres_component(title, self.dbname)
        if comm.startswith("redis-server"):
            return "redis"
        return None  # "other": counted from /proc/stat, not process by process

    def _sweep(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            rest = raw[raw.rindex(")") + 2 :].split()
            component = self._component(int(entry.name), comm, int(rest[3]))
            if component is None:
                continue
            key = (int(entry.name), rest[19])  # the start time tells a reused pid apart
            self.component[key] = component
            self.latest[key] = (int(rest[11]) + int(rest[12])) / self.tick

    def _machine(self) -> tuple[float, float]:
        """(busy, total) CPU seconds of the machine since boot: busy is all but idle and
        iowait; total is every core's time, so a window's total is cores x its length."""
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        values = [float(v) for v in fields[:8]]
        return (sum(values) - values[3] - values[4]) / self.tick, sum(values) / self.tick

    def _mark(self, name: str) -> None:
        with self.lock:
            self._sweep()
            self.marks[name] = (time.monotonic(), *self._machine(), dict(self.latest))

    def run(self) -> None:
        last_sweep, window = 0.0, 0
        while not self.stopped.is_set():
            if f"{window}.start" not in self.marks:
                if (self.results / f"window-{window}.start").exists():
                    self._mark(f"{window}.start")
            elif (self.results / f"window-{window}.end").exists():
                self._mark(f"{window}.end")
                window += 1
            if time.monotonic() - last_sweep >= 1.0:  # processes that end between marks
                with self.lock:
                    self._sweep()
                last_sweep = time.monotonic()
            self.stopped.wait(0.2)
        if f"{window}.start" in self.marks:  # stopped before the window closed
            self._mark(f"{window}.end")

    def has(self, name: str) -> bool:
        with self.lock:
            return name in self.marks

    def last_window(self) -> int | None:
        with self.lock:
            ended = [int(name.split(".")[0]) for name in self.marks if name.endswith(".end")]
        return max(ended, default=None)

    def between(self, start: str, end: str) -> dict[str, Any]:
        """The breakdown between two marks (`"<k>.start"`, `"<k>.end"`); a process first seen
        after the start mark started after it (the mark's sweep saw every live process)."""
        with self.lock:
            t0, busy0, total0, cpu0 = self.marks[start]
            t1, busy1, total1, cpu1 = self.marks[end]
            components = dict(self.component)
        used: Counter[str] = Counter()
        for key, cpu in cpu1.items():
            used[components[key]] += cpu - cpu0.get(key, 0.0)
        return cpu_breakdown(
            used,
            busy=busy1 - busy0,
            capacity=total1 - total0,
            seconds=t1 - t0,
            cores=os.cpu_count() or 1,
        )

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=15)

    def no_window(self) -> dict[str, Any]:
        return {"cpu_s": {}, "cores_busy": None, "cores": os.cpu_count()}


# --- Setup --------------------------------------------------------------------------------------


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _maintenance(url: str):
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    return psycopg.connect(**{**conninfo_to_dict(url), "dbname": "postgres"}, autocommit=True)


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    from psycopg import sql

    name = database_name(url)
    assert name.startswith(DB_PREFIX), name
    with _maintenance(url) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))


def flush_redis(url: str) -> None:
    """FLUSHDB of the run's own Redis database index (never FLUSHALL, never index 0)."""
    import redis

    index = int(urlsplit(url).path.lstrip("/") or 0)
    if index == 0:
        raise SystemExit(
            f"refusing to flush Redis DB 0 ({url}): give the run a DB index of its own"
        )
    redis.Redis.from_url(url).flushdb()


def app_env(args: argparse.Namespace, workdir: Path, **extra: str) -> dict[str, str]:
    return project_env(
        args.database_url,
        REDIS_URL=args.redis_url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        INGEST_RATE_LIMIT_PER_MINUTE="1000000",
        MEDIA_ROOT=str(workdir / "media"),
        LOG_LEVEL="WARNING",
        **extra,
    )


def manage(args, workdir: Path, *cmd: str, **extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: S603 (our own command)
        [PYTHON, "manage.py", *cmd],
        cwd=ROOT,
        env=app_env(args, workdir, **extra),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {cmd[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


SETUP_CODE = """
import json, os
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from agents.models import Agent
from accounts.models import ReviewerProfile

cfg = json.loads(os.environ["LOAD_SETUP"])
for slug, spec in cfg["agents"].items():
    Agent.objects.update_or_create(slug=slug, defaults={**spec, "kind": "chat"})
password = make_password(cfg["password"])  # hashed once: 50 logins, not 50 hashes to make
users = User.objects.bulk_create(
    [User(username=name, password=password) for name in cfg["reviewers"]])
Group.objects.get(name="reviewer").user_set.add(*users)
ReviewerProfile.objects.bulk_create(
    [ReviewerProfile(user=u, domains=cfg["domains"][u.username]) for u in users])
pipeline = User.objects.create(username=cfg["pipeline"], password=password)
pipeline.groups.add(Group.objects.get(name="agent"))
"""


def setup(args, workdir: Path) -> str:
    """The database, users and backlog; returns the pipeline's API token."""
    recreate_database(args.database_url)
    manage(args, workdir, "migrate", "--noinput", "-v", "0")
    names = [reviewer_name(i) for i in range(args.reviewers)]
    config = {
        "agents": AGENTS,
        "password": PASSWORD,
        "reviewers": names,
        "domains": {reviewer_name(i): reviewer_domains(i) for i in range(args.reviewers)},
        "pipeline": PIPELINE_USER,
    }
    manage(args, workdir, "shell", "-c", SETUP_CODE, LOAD_SETUP=json.dumps(config))
    token = manage(args, workdir, "createtoken", PIPELINE_USER, "--name", "load").stdout.strip()
    if args.backlog:
        rng = random.Random(args.seed)
        path = workdir / "backlog.jsonl"
        with path.open("w") as out:
            for i in range(args.backlog):
                out.write(json.dumps(make_interaction(rng, f"B-{i}", low=True)) + "\n")
        summary = manage(args, workdir, "import_interactions", str(path)).stdout.strip()
        say(f"backlog:  {summary.splitlines()[-1]}")
    return token


def http_get(port: int, path: str, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_healthy(services: Services, port: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        services.check_alive()
        try:
            status, raw = http_get(port, "/healthz")
            body = json.loads(raw)
            if status == 200 and body.get("status") == "ok":
                return body
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"/healthz did not answer ok in {timeout:.0f}s: {body}")


def wait_for_log(services: Services, name: str, needle: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        if needle in services.log(name).read_text(errors="replace"):
            return True
        time.sleep(0.3)
    return False


def warm_up(port: int, token: str, rounds: int) -> None:
    """Loads every gunicorn worker thread's imports and connections before the clock runs."""
    for _ in range(rounds):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST",
            "/api/v1/interactions",
            body=b"[]",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise SystemExit(f"warm-up POST /api/v1/interactions answered {response.status}")
        http_get(port, "/accounts/login/")


# --- After the run ------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            with contextlib.suppress(ValueError):  # a line cut short by a killed process
                rows.append(json.loads(line))
    return rows


def tracebacks(text: str, limit: int = 3) -> list[str]:
    """The first few Python tracebacks of a log, each with the line before it (Django logs
    "Internal Server Error: /path" there)."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            end = i + 1
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end]):
                end += 1
            found.append("\n".join(lines[max(0, i - 1) : end + 1]))
            if len(found) >= limit:
                break
    return found


def database_counts(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:

        def one(query: str, params: Sequence[Any] = ()) -> Any:
            return conn.execute(query, params).fetchone()[0]

        users = dict(
            conn.execute(
                "SELECT username, id FROM auth_user WHERE username LIKE %s",
                (REVIEWER_PREFIX + "%",),
            ).fetchall()
        )
        audit = conn.execute(
            """
            SELECT target_id, action, actor_id FROM reviews_auditevent
            WHERE target_type = 'review_item' AND action IN
                ('item.claimed', 'item.released', 'item.decided', 'item.disputed',
                 'item.adjudicated')
            ORDER BY target_id, id
            """
        ).fetchall()
        reviews = conn.execute(
            "SELECT item_id, reviewer_id, verdict FROM reviews_review WHERE reviewer_id = ANY(%s)",
            (list(users.values()),),
        ).fetchall()
        statuses = dict(
            conn.execute("SELECT status, count(*) FROM reviews_reviewitem GROUP BY 1").fetchall()
        )
        return {
            "users": users,
            "audit": audit,
            "reviews": reviews,
            "statuses": statuses,
            "stream_stored": one(
                "SELECT count(*) FROM reviews_interaction WHERE external_id LIKE %s", ("S-%",)
            ),
            "stream_items": one(
                "SELECT count(*) FROM reviews_reviewitem ri JOIN reviews_interaction i "
                "ON i.id = ri.interaction_id WHERE i.external_id LIKE %s",
                ("S-%",),
            ),
            "backlog_stored": one(
                "SELECT count(*) FROM reviews_interaction WHERE external_id LIKE %s", ("B-%",)
            ),
            "holding_two": one(
                "SELECT count(*) FROM (SELECT claimed_by_id FROM reviews_reviewitem "
                "WHERE status = 'claimed' GROUP BY 1 HAVING count(*) > 1) t"
            ),
            "pairs_missing": one(
                """
                SELECT count(*) FROM reviews_reviewitem ri
                WHERE ri.status = 'done' AND ri.final_verdict IN ('approve', 'correct')
                  AND NOT EXISTS (SELECT 1 FROM retraining_trainingpair p WHERE p.item_id = ri.id)
                """
            ),
        }


def analyse(args, workdir: Path, run: dict) -> dict[str, Any]:
    results = workdir / "results"
    events = read_jsonl(results / "events.jsonl")
    requests = read_jsonl(results / "requests.jsonl")
    db = database_counts(args.database_url)
    claims = [e for e in events if e["ev"] == "claim"]
    decisions = [e for e in events if e["ev"] == "decision"]
    ingests = [e for e in events if e["ev"] == "ingest"]
    logins = [e for e in events if e["ev"] == "login"]
    acked = [d for d in decisions if d["acked"]]
    # The measured window: from the last login to DURATION seconds later (see locustfile);
    # with --find-max-rate, from the first step's window to the end of the last one.
    opened = [e["t"] for e in events if e["ev"] == "measure_start"]
    closed = [e["t"] for e in events if e["ev"] == "measure_end"]
    window_start = opened[0] if opened else run["locust_start"]
    window_end = closed[-1] if closed else run["locust_end"]
    measured = max(window_end - window_start, 1e-9)
    in_window = [r for r in requests if window_start <= r["t"] < window_end]

    # 5xx and connection errors, from locust's side and from gunicorn's.
    status_counts = Counter(r["status"] for r in requests)
    http_5xx = sum(n for s, n in status_counts.items() if s >= 500)
    # A request dropped with its kept-alive connection is resent once, as a browser does: only
    # one that still got no answer is a connection error.
    resends = [e for e in events if e["ev"] == "resend"]
    connection_errors = status_counts.get(0, 0) - sum(1 for e in resends if e["status"] != 0)
    http_4xx = Counter(f"{r['name']} {r['status']}" for r in requests if 400 <= r["status"] < 500)
    # Only the run's own lines: the warm-up requests before it are not counted.
    with services_log(workdir, "access").open("rb") as log:
        log.seek(run["access_offset"])
        access = access_log_statuses(log.read().decode(errors="replace").splitlines())
    gunicorn_5xx = sum(n for (_, status), n in access.items() if status >= 500)
    gunicorn_requests = sum(n for (what, _), n in access.items() if what != "GET /healthz")
    locust_failures = read_locust_failures(workdir / "locust_failures.csv")
    gunicorn_log = services_log(workdir, "gunicorn").read_text(errors="replace")
    worker_timeouts = gunicorn_log.count("WORKER TIMEOUT")
    server_errors = tracebacks(gunicorn_log)

    audit = audit_claim_violations(db["audit"])
    run_end = run["locust_end"]
    client = client_claim_violations(claims, decisions, run_end=run_end)
    reviews = lost_reviews(acked, db["reviews"], db["users"])
    new_claims = [c for c in claims if c["new"]]
    load_ids = set(db["users"].values())
    audit_load_claims = sum(
        1 for _, action, actor in db["audit"] if action == "item.claimed" and actor in load_ids
    )

    # Ingest.
    ok_batches = [e for e in ingests if e["status"] == 200]
    sent = sum(e["sent"] for e in ingests)
    created = sum(e["created"] for e in ok_batches)
    item_errors = sum(e["errors"] for e in ok_batches)
    duplicates = sum(e["duplicates"] for e in ok_batches)
    created_in_window = sum(
        e["created"] for e in ok_batches if window_start <= e["t0"] < window_end
    )
    achieved = round(created_in_window / measured, 1)
    lag = max((e.get("lag", 0.0) for e in ingests), default=0.0)

    # Page times in the window (every reviewer page but the login), and the logins before it.
    pages = page_times(in_window)
    page_ms = [r["ms"] for r in in_window if not r["name"].startswith("POST /api/")]
    login_ms = [r["ms"] for r in requests if r["name"] == "POST /accounts/login/"]
    verdicts = Counter(v for _, _, v in db["reviews"])
    double_items = set(audit["items"]) | set(client["items"])
    double_claims = (
        audit["double_claims"] + audit["claims_of_closed_items"] + client["double_claims"]
    )

    failed = []
    if http_5xx or gunicorn_5xx:
        failed.append("5xx")
    if connection_errors or worker_timeouts:
        failed.append("connection errors")
    if double_claims or audit["reclaims"] or client["reclaims"] or db["holding_two"]:
        failed.append("double claims")
    if reviews["lost"]:
        failed.append("lost reviews")
    if created != db["stream_stored"]:
        failed.append("ingest: stored differs from acknowledged")
    if not acked or not created:
        failed.append("no work done")
    if len(logins) < args.reviewers:
        failed.append("logins")

    return {
        "bench": "load",
        "mode": "find_max_rate" if args.find_max_rate else "fixed_rate",
        "duration_s": args.duration,
        "reviewers": args.reviewers,
        "reviewers_logged_in": len(logins),
        "gunicorn": f"{args.workers}x{args.threads} gthread",
        "ingest_rate_target": args.ingest_rate,
        "ingest_rate_achieved": achieved,
        "ingest_batch": args.ingest_batch,
        "ingest_requests": len(ingests),
        "ingest_requests_failed": len(ingests) - len(ok_batches),
        "ingest_item_errors": item_errors,
        "ingest_duplicates": duplicates,
        "ingest_max_lag_s": round(lag, 2),
        "interactions_sent": sent,
        "interactions_created": created,
        "interactions_stored": db["stream_stored"],
        "interactions_missing": max(0, created - db["stream_stored"]),
        "stream_items_queued": db["stream_items"],
        "backlog": db["backlog_stored"],
        "measured_s": round(measured, 1),
        "requests": len(in_window),
        "requests_per_s": round(len(in_window) / measured, 1),
        "requests_all": len(requests),
        "gunicorn_requests": gunicorn_requests,
        "http_5xx": http_5xx,
        "http_5xx_gunicorn": gunicorn_5xx,
        "http_5xx_locust_failures_csv": locust_failures["5xx"],
        "connection_errors": connection_errors,
        "dropped_and_resent": len(resends),
        "worker_timeouts": worker_timeouts,
        "http_4xx": dict(http_4xx),
        "claims_client": len(new_claims),
        "claims_audit": audit_load_claims,
        "resumes": len(claims) - len(new_claims),
        "double_claims": double_claims,
        "double_claims_audit": audit["double_claims"],
        "claims_of_closed_items_audit": audit["claims_of_closed_items"],
        "double_claims_client": client["double_claims"],
        "reclaims": audit["reclaims"] + client["reclaims"],
        "reviewers_holding_two": db["holding_two"],
        "double_claim_items": sorted(double_items)[:20],
        "decisions_acked": len(acked),
        "decisions_refused": len(decisions) - len(acked),
        "reviews_made": len(db["reviews"]),
        "reviews_by_verdict": dict(verdicts.most_common()),
        "lost_reviews": reviews["lost"],
        "lost_review_examples": reviews["lost_examples"],
        "unacked_reviews": reviews["unacked"],
        "training_pairs_missing": db["pairs_missing"],
        "item_statuses": db["statuses"],
        "page_p50_ms": round(percentile(page_ms, 0.50), 1),
        "page_p95_ms": round(percentile(page_ms, 0.95), 1),
        "page_p99_ms": round(percentile(page_ms, 0.99), 1),
        "login_p50_ms": round(percentile(login_ms, 0.50), 1),
        "login_p95_ms": round(percentile(login_ms, 0.95), 1),
        "pages": pages,
        **run["cpu"],
        "load_average_1m": round(os.getloadavg()[0], 2),
        "server_errors": server_errors,
        "logs": str(workdir),
        "ok": not failed,
        "failed_checks": failed,
    }


def services_log(workdir: Path, name: str) -> Path:
    path = workdir / f"{name}.log"
    return path if path.exists() else Path(os.devnull)


def read_locust_failures(path: Path) -> dict[str, int]:
    """5xx occurrences in locust's failures CSV (its own view, beside our request log)."""
    import csv

    total = 0
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if re.search(r"\b5\d\d\b", row.get("Error", "")):
                    total += int(row.get("Occurrences") or 0)
    return {"5xx": total}


# --- Main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=120, help="seconds of load")
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument(
        "--ingest-rate",
        type=float,
        default=500,
        help="interactions per second (with --find-max-rate: the first step's rate)",
    )
    parser.add_argument("--ingest-batch", type=int, default=50, help="interactions per request")
    parser.add_argument(
        "--ingest-users", type=int, default=0, help="parallel ingest senders (0: one per 2 req/s)"
    )
    parser.add_argument("--backlog", type=int, default=3000, help="pending items at second 0")
    parser.add_argument("--think-min", type=float, default=0.5, help="seconds on an item, min")
    parser.add_argument("--think-max", type=float, default=2.0, help="seconds on an item, max")
    parser.add_argument(
        "--mix",
        default="approve=0.55,correct=0.2,reject=0.15,skip=0.07,escalate=0.03",
        help="verdict shares",
    )
    parser.add_argument("--htmx-share", type=float, default=0.5, help="reviewers using htmx")
    # One login a second: each is a ~0.5 s PBKDF2 hash, and a burst of them on 2 cores
    # queues every login behind all the others (and past the client's 60 s timeout).
    parser.add_argument("--spawn-rate", type=float, default=1, help="reviewer logins per second")
    parser.add_argument(
        "--login-timeout", type=float, default=300, help="seconds allowed for all the logins"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--celery-concurrency", type=int, default=1)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--drop-db", action="store_true", help="drop the database afterwards")
    search = parser.add_argument_group("--find-max-rate: steps of ingest rates on one stack")
    search.add_argument(
        "--find-max-rate",
        action="store_true",
        help="find the highest ingest rate that keeps the reviewer pages' p95 under the limit",
    )
    search.add_argument("--p95-limit-ms", type=float, default=300, help="page p95 limit")
    search.add_argument("--step-seconds", type=int, default=30, help="measured seconds a step")
    search.add_argument(
        "--settle-seconds", type=int, default=5, help="seconds at a step's rate before measuring"
    )
    search.add_argument("--max-steps", type=int, default=8)
    search.add_argument(
        "--max-rate", type=float, default=2000, help="highest rate tried (sizes the senders)"
    )
    search.add_argument(
        "--rate-resolution", type=float, default=50, help="stop when held and missed are closer"
    )
    args = parser.parse_args(argv)
    if not database_name(args.database_url).startswith(DB_PREFIX):
        parser.error(f"the database name must start with {DB_PREFIX!r} (it is dropped)")
    if args.ingest_rate <= 0:
        parser.error("--ingest-rate must be above 0")
    if args.find_max_rate:
        args.duration = args.step_seconds
    if args.ingest_users <= 0:
        top = max(args.ingest_rate, args.max_rate) if args.find_max_rate else args.ingest_rate
        args.ingest_users = max(1, math.ceil(top / args.ingest_batch / 2))
    return args


class RateSearch:
    """--find-max-rate on one running stack: the locustfile measures step k at the rate in
    `step-<k>.rate` (after --settle-seconds at it) and writes `window-<k>.logged` once the
    window's requests are all logged; this then reads the step's figures from the logs and
    gives the next rate (`next_rate`) or writes `steps.stop`. Reviewers stay logged in and
    keep working between steps, and the stream keeps its rate until given the next one."""

    def __init__(self, args: argparse.Namespace, results: Path) -> None:
        self.args, self.results = args, results
        self.steps: list[dict[str, Any]] = []
        self.done = False
        self._give(args.ingest_rate)

    def _give(self, rate: float) -> None:
        path = self.results / f"step-{len(self.steps)}.rate"
        path.with_suffix(".tmp").write_text(f"{rate:g}")
        path.with_suffix(".tmp").replace(path)  # never read half-written

    def poll(self, sampler: CpuSampler) -> None:
        k = len(self.steps)
        logged = (self.results / f"window-{k}.logged").exists()
        if self.done or not logged or not sampler.has(f"{k}.end"):
            return
        self.steps.append(self.figures(k, sampler))
        say(step_line(self.steps[-1]))
        rate = next_rate(
            [(s["rate"], s["held"]) for s in self.steps],
            start=self.args.ingest_rate,
            ceiling=self.args.max_rate,
            resolution=self.args.rate_resolution,
        )
        if rate is None or len(self.steps) >= self.args.max_steps:
            self.done = True
            (self.results / "steps.stop").write_text("")
        else:
            self._give(rate)

    def figures(self, k: int, sampler: CpuSampler) -> dict[str, Any]:
        events = read_jsonl(self.results / "events.jsonl")
        requests = read_jsonl(self.results / "requests.jsonl")
        opened = next(e for e in events if e["ev"] == "measure_start" and e["step"] == k)
        closed = next(e for e in events if e["ev"] == "measure_end" and e["step"] == k)
        step = {"step": k, "rate": opened["rate"]}
        step.update(window_figures(events, requests, opened["t"], closed["t"]))
        step["missed"] = step_misses(step, limit_ms=self.args.p95_limit_ms)
        step["held"] = not step["missed"]
        step.update(sampler.between(f"{k}.start", f"{k}.end"))
        return step

    def final(self, sampler: CpuSampler) -> dict[str, Any]:
        """Every step again from the final logs (the same figures, unless a request outlived
        the locustfile's wait for it), and the highest rate that held."""
        steps = [self.figures(k, sampler) for k in range(len(self.steps))]
        best = max((s for s in steps if s["held"]), key=lambda s: s["rate"], default=None)
        return {
            "p95_limit_ms": self.args.p95_limit_ms,
            "step_seconds": self.args.step_seconds,
            "settle_seconds": self.args.settle_seconds,
            "max_rate_held": best["rate"] if best else None,
            "max_rate_held_achieved": best["ingest_rate_achieved"] if best else None,
            "max_rate_held_page_p95_ms": best["page_p95_ms"] if best else None,
            "lowest_rate_missed": min((s["rate"] for s in steps if not s["held"]), default=None),
            "steps": steps,
        }


def run_locust(args, workdir: Path, port: int, token: str, services: Services) -> dict[str, Any]:
    results = workdir / "results"
    results.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    env.update(
        LOAD_RESULTS_DIR=str(results),
        LOAD_TOKEN=token,
        LOAD_PASSWORD=PASSWORD,
        LOAD_REVIEWERS=str(args.reviewers),
        LOAD_DURATION=str(args.duration),
        LOAD_LOGIN_TIMEOUT=str(args.login_timeout),
        LOAD_INGEST_RATE=str(args.ingest_rate),
        LOAD_INGEST_BATCH=str(args.ingest_batch),
        LOAD_INGEST_USERS=str(args.ingest_users),
        LOAD_THINK_MIN=str(args.think_min),
        LOAD_THINK_MAX=str(args.think_max),
        LOAD_MIX=args.mix,
        LOAD_HTMX_SHARE=str(args.htmx_share),
        LOAD_SEED=str(args.seed),
        LOAD_STEPPED="1" if args.find_max_rate else "0",
        LOAD_SETTLE=str(args.settle_seconds if args.find_max_rate else 0),
        PYTHONUNBUFFERED="1",
    )
    # The time after the logins: the window, or per step its settling, its window, the wait
    # for its slowest requests (the client's timeout is 60 s) and the choice of the next rate.
    load_s = args.duration
    if args.find_max_rate:
        load_s = args.max_steps * (args.settle_seconds + args.duration + 90)
    cmd = [
        PYTHON,
        "-m",
        "locust",
        "-f",
        str(ROOT / "bench" / "locustfile.py"),
        "--headless",
        "--host",
        f"http://127.0.0.1:{port}",
        "--users",
        str(args.reviewers + args.ingest_users),
        "--spawn-rate",
        str(args.spawn_rate),
        # A backstop only: the locustfile ends the run when the last window has closed.
        "--run-time",
        f"{load_s + args.login_timeout + 60:.0f}s",
        "--stop-timeout",
        "30",
        "--csv",
        str(workdir / "locust"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    search = RateSearch(args, results) if args.find_max_rate else None
    access_log = workdir / "access.log"
    access_offset = access_log.stat().st_size if access_log.exists() else 0
    started = time.time()
    proc = services.start("locust", cmd, env)
    sampler = CpuSampler(database_name(args.database_url), results, services.sessions())
    sampler.start()
    deadline = time.monotonic() + load_s + args.login_timeout + 240
    last_report = time.monotonic()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            say("locust overran its time; stopping it")
            break
        for name in ("gunicorn", "celery-worker", "celery-beat"):
            if services.procs[name][0].poll() is not None:
                say(f"{name} died during the run")
        if search:
            search.poll(sampler)
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            say(f"  t+{time.time() - started:.0f}s  {machine_load()}")
        time.sleep(0.5)
    ended = time.time()
    services.stop("locust")
    sampler.stop()
    last = sampler.last_window()
    # The whole run's CPU: from the first window's start to the last one's end.
    cpu = sampler.between("0.start", f"{last}.end") if last is not None else sampler.no_window()
    return {
        "locust_start": started,
        "locust_end": ended,
        "locust_seconds": ended - started,
        "locust_rc": proc.returncode,
        "access_offset": access_offset,
        "cpu": cpu,
        "search": search.final(sampler) if search else None,
    }


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def cpu_line(f: Mapping[str, Any]) -> str:
    """CPU seconds and shares of the machine: generator vs server vs the rest."""
    if f.get("cores_busy") is None:
        return "CPU: no measured window"
    parts = f["cpu_s"]

    def of(names: Sequence[str]) -> str:
        return ", ".join(f"{n} {parts[n]:g}" for n in names if n in parts)

    return (
        f"CPU over {f['cpu_window_s']:g} s on {f['cores']} cores: generator "
        f"{f['cpu_generator_s']:g} s ({_pct(f['cpu_share_generator'])} of the machine: "
        f"{of(GENERATOR)}), server {f['cpu_server_s']:g} s ({_pct(f['cpu_share_server'])}: "
        f"{of(SERVER)}), other {f['cpu_other_s']:g} s ({_pct(f['cpu_share_other'])}), idle "
        f"{_pct(f['cpu_share_idle'])}; {f['cores_busy']:g} of {f['cores']} cores busy"
    )


def step_line(s: Mapping[str, Any]) -> str:
    verdict = "held" if s["held"] else "missed: " + "; ".join(s["missed"])
    return (
        f"step {s['step']}: ingest {s['rate']:g}/s target, {s['ingest_rate_achieved']:g}/s "
        f"achieved; page p95 {s['page_p95_ms']:g} ms (review screen {s['review_p95_ms']:g} "
        f"ms, {s['pages']} pages); 5xx {s['http_5xx']}, connection errors "
        f"{s['connection_errors']}; CPU generator {_pct(s['cpu_share_generator'])}, server "
        f"{_pct(s['cpu_share_server'])}, other {_pct(s['cpu_share_other'])}, "
        f"{s['cores_busy']} cores busy -> {verdict}"
    )


def summary_lines(f: dict[str, Any]) -> list[str]:
    if f["mode"] == "find_max_rate":
        ingest = (
            f"ingest over the steps: {f['ingest_rate_achieved']:,}/s on average; "
            f"{f['interactions_created']:,} created, {f['interactions_stored']:,} stored, "
            f"{f['ingest_requests_failed']} failed requests, {f['ingest_item_errors']} item errors"
        )
    else:
        ingest = (
            f"ingest: {f['ingest_rate_achieved']:,}/s achieved of {f['ingest_rate_target']:,}/s "
            f"target; {f['interactions_created']:,} created, {f['interactions_stored']:,} "
            f"stored, {f['ingest_requests_failed']} failed requests, {f['ingest_item_errors']} "
            "item errors"
        )
    lines = [
        f"measured {f['measured_s']}s after {f['reviewers_logged_in']}/{f['reviewers']} logins "
        f"(login p50 {f['login_p50_ms']} ms, p95 {f['login_p95_ms']} ms); gunicorn "
        f"{f['gunicorn']}; {f['requests']:,} requests in the window ({f['requests_per_s']}/s)",
        ingest,
        f"reviews: {f['decisions_acked']:,} acknowledged, {f['reviews_made']:,} rows "
        f"{f['reviews_by_verdict']}; lost {f['lost_reviews']}, unacknowledged rows "
        f"{f['unacked_reviews']}, refused {f['decisions_refused']}",
        f"claims: {f['claims_client']:,} seen by reviewers, {f['claims_audit']:,} in the audit "
        f"log; double claims {f['double_claims']} (audit {f['double_claims_audit']}, client "
        f"{f['double_claims_client']}), re-claims {f['reclaims']}",
        f"errors: 5xx {f['http_5xx']} (gunicorn log {f['http_5xx_gunicorn']}), connection "
        f"errors {f['connection_errors']} (after resending {f['dropped_and_resent']} dropped "
        f"requests once), worker timeouts {f['worker_timeouts']}, 4xx "
        f"{f['http_4xx'] or 0}",
        f"page time p50 {f['page_p50_ms']} ms, p95 {f['page_p95_ms']} ms, p99 "
        f"{f['page_p99_ms']} ms (reviewer pages in the window; per page type:)",
    ]
    for name, p in f["pages"].items():
        lines.append(
            f"  {name:42} n={p['n']:6}  p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  "
            f"p99 {p['p99']:7.1f} ms"
        )
    lines.append(cpu_line(f))
    if f["mode"] == "find_max_rate":
        lines.extend(step_line(s) for s in f["steps"])
        held = f["max_rate_held"]
        lines.append(
            f"highest ingest rate held with {f['reviewers']} reviewers (page p95 < "
            f"{f['p95_limit_ms']:g} ms, no 5xx or connection errors, >= "
            f"{SUSTAINED_SHARE:.0%} of the target taken): "
            + (
                f"{held:g}/s ({f['max_rate_held_achieved']:g}/s achieved, page p95 "
                f"{f['max_rate_held_page_p95_ms']:g} ms)"
                if held is not None
                else "none"
            )
            + (f"; {f['lowest_rate_missed']:g}/s missed" if f["lowest_rate_missed"] else "")
        )
    for trace in f["server_errors"]:
        lines.append("server error:\n" + trace)
    lines.append("OK" if f["ok"] else f"FAILED: {', '.join(f['failed_checks'])}")
    lines.append(f"logs: {f['logs']}")
    return lines


def finish_search(figures: dict[str, Any], search: Mapping[str, Any]) -> dict[str, Any]:
    """--find-max-rate: the steps join the whole run's figures. 5xx and connection errors
    under overload are what a step finds, so they fail that step, not the run; the run fails
    on a correctness count (double claims, lost reviews, ingest) or when no rate held."""
    failed = [c for c in figures["failed_checks"] if c not in ("5xx", "connection errors")]
    if search["max_rate_held"] is None:
        failed.append("no rate held")
    return {**figures, **search, "ok": not failed, "failed_checks": failed}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-load-"))
    if args.find_max_rate:
        plan = (
            f"steps of {args.settle_seconds}+{args.step_seconds}s from {args.ingest_rate:g}/s "
            f"(at most {args.max_steps}, up to {args.max_rate:g}/s) for a page p95 under "
            f"{args.p95_limit_ms:g} ms"
        )
    else:
        plan = f"ingest {args.ingest_rate:g}/s, {args.duration}s"
    say(
        f"load test: {args.reviewers} reviewers, {plan}; batches of {args.ingest_batch} from "
        f"{args.ingest_users} senders; database {database_name(args.database_url)}, redis "
        f"{args.redis_url}"
    )
    say(f"logs in {workdir}")
    say(machine_load())
    services = Services(workdir)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and `kill` stop the services. SIGINT explicitly too: a shell starts a background
    # job with SIGINT ignored, and the default handler would stay off.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        started = time.monotonic()
        token = setup(args, workdir)
        flush_redis(args.redis_url)
        say(f"setup done in {time.monotonic() - started:.1f}s")
        port = free_port()
        env = app_env(args, workdir)
        services.start(
            "gunicorn",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--worker-class",
                "gthread",
                "--timeout",
                "60",
                "--graceful-timeout",
                "30",
                "--access-logfile",
                str(workdir / "access.log"),
                "--access-logformat",
                ACCESS_LOG_FORMAT,
            ],
            env,
        )
        services.start(
            "celery-worker",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=INFO",
                "--concurrency",
                str(args.celery_concurrency),
                "--hostname",
                f"load-{os.getpid()}@%h",
            ],
            env,
        )
        services.start(
            "celery-beat",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "--loglevel=INFO",
                "--schedule",
                str(workdir / "celerybeat-schedule"),
            ],
            env,
        )
        health = wait_healthy(services, port)
        if not wait_for_log(services, "celery-worker", " ready."):
            say("warning: the Celery worker did not report ready within 60s")
        warm_up(port, token, rounds=args.workers * args.threads)
        say(f"serving on 127.0.0.1:{port}: {health}")

        run = run_locust(args, workdir, port, token, services)
        # Stop the web and workers first: every request in flight finishes and is logged.
        for name in ("gunicorn", "celery-beat", "celery-worker"):
            services.stop(name)
        figures = analyse(args, workdir, run)
        if run["search"]:
            figures = finish_search(figures, run["search"])
        for line in summary_lines(figures):
            say(line)
        say(machine_load())
        emit_figures(figures)
        return 0 if figures["ok"] else 1
    except KeyboardInterrupt:
        say("interrupted; stopping the services")
        return 130
    finally:
        # Nothing more on stdout: the JSON line of figures stays the last line.
        services.stop_all()
        if args.drop_db:
            try:
                recreate_database(args.database_url, drop_only=True)
            except Exception as exc:
                print(f"could not drop {database_name(args.database_url)}: {exc}", file=sys.stderr)
        print(f"logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
