"""Load test: simulated reviewers working the queue through the real pages while an agent
pipeline streams interactions into the ingest API, against the production stack (gunicorn,
PostgreSQL, Redis, a Celery worker and celery beat), then a count of what went wrong.

    python bench/load.py [--duration 120] [--reviewers 50] [--ingest-rate 500]
    python bench/load.py --duration 15 --reviewers 5 --ingest-rate 50 --backlog 300  # smoke

Targets (issue 7): zero 5xx, zero double claims, zero lost reviews; p95 page time printed.

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
   - page times (exact percentiles per page type), requests/s, CPU seconds per component.
The last line printed is one JSON object of the figures; the exit code is 1 when any 5xx,
connection error (a request dropped with its kept-alive connection is resent once, as a
browser does; it is counted in `dropped_and_resent`), double claim or lost review was
counted, or when no work was done. Logs stay in a temp folder whose path is printed.

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


class CpuSampler(threading.Thread):
    """CPU seconds used in the measured window by each of our process sessions, by the
    PostgreSQL backends of our database, by the rest of PostgreSQL, Redis and everything else
    on the machine, and the machine's busy cores (/proc, sampled every second). The window
    opens and closes when the locustfile writes its `measure_start` / `measure_end` files."""

    def __init__(self, database_url: str, results: Path) -> None:
        super().__init__(daemon=True)
        self.sessions: dict[int, str] = {}
        self.database_url, self.dbname = database_url, database_name(database_url)
        self.opens, self.closes = results / "measure_start", results / "measure_end"
        self.tick = os.sysconf("SC_CLK_TCK")
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.backends: set[int] = set()
        self.stopped = threading.Event()
        self.window: list[tuple[float, tuple[float, float]]] = []  # (monotonic, machine) x2

    def _machine(self) -> tuple[float, float]:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        values = [float(v) for v in fields[:8]]
        return (sum(values) - values[3] - values[4]) / self.tick, sum(values) / self.tick

    def _backends(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.database_url, autocommit=True, connect_timeout=3) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()",
                    (self.dbname,),
                ).fetchall()
            self.backends |= {r[0] for r in rows}
        except Exception:  # sampling is best effort
            pass

    def _group(self, pid: int, comm: str, session: int) -> str:
        if session in self.sessions:
            return self.sessions[session]
        if pid in self.backends:
            return "postgres_backends"
        if comm.startswith("postgres"):
            return "postgres_other"
        if comm.startswith("redis"):
            return "redis"
        return "other"

    def _sweep(self) -> dict[int, tuple[str, float]]:
        found = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            rest = raw[raw.rindex(")") + 2 :].split()
            cpu = (int(rest[11]) + int(rest[12])) / self.tick
            found[int(entry.name)] = (self._group(int(entry.name), comm, int(rest[3])), cpu)
        return found

    def run(self) -> None:
        n = 0
        while not self.stopped.is_set() and len(self.window) < 2:
            if n % 3 == 0:
                self._backends()
            n += 1
            if not self.window and self.opens.exists():
                self._backends()
                snapshot = self._sweep()
                self.first = {pid: cpu for pid, (_, cpu) in snapshot.items()}
                self.last = snapshot
                self.window.append((time.monotonic(), self._machine()))
            elif self.window:
                self.last.update(self._sweep())
                if self.closes.exists():
                    self.window.append((time.monotonic(), self._machine()))
            self.stopped.wait(1.0)
        if len(self.window) == 1:  # stopped before the window closed
            self.last.update(self._sweep())
            self.window.append((time.monotonic(), self._machine()))

    def stop(self) -> dict[str, Any]:
        self.stopped.set()
        self.join(timeout=15)
        if len(self.window) < 2:
            return {"cpu_s": {}, "cores_busy": None, "cores": os.cpu_count()}
        used: Counter[str] = Counter()
        for pid, (group, cpu) in self.last.items():
            used[group] += cpu - self.first.get(pid, 0.0)
        (t0, (busy0, _)), (t1, (busy1, _)) = self.window
        return {
            "cpu_s": {k: round(v, 1) for k, v in used.most_common() if v >= 0.05},
            "cores_busy": round((busy1 - busy0) / max(t1 - t0, 1e-9), 2),
            "cores": os.cpu_count(),
        }


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
    # The measured window: from the last login to DURATION seconds later (see locustfile).
    opened = [e["t"] for e in events if e["ev"] == "measure_start"]
    closed = [e["t"] for e in events if e["ev"] == "measure_end"]
    window_start = opened[0] if opened else run["locust_start"]
    window_end = closed[0] if closed else run["locust_end"]
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
    created_in_window = sum(e["created"] for e in ok_batches if e["t0"] < window_end)
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
    parser.add_argument("--ingest-rate", type=float, default=500, help="interactions per second")
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
    args = parser.parse_args(argv)
    if not database_name(args.database_url).startswith(DB_PREFIX):
        parser.error(f"the database name must start with {DB_PREFIX!r} (it is dropped)")
    if args.ingest_users <= 0:
        requests_per_s = args.ingest_rate / args.ingest_batch
        args.ingest_users = max(1, math.ceil(requests_per_s / 2))
    return args


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
        PYTHONUNBUFFERED="1",
    )
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
        # A backstop only: the locustfile ends the run DURATION seconds after the last login.
        "--run-time",
        f"{args.duration + args.login_timeout + 60:.0f}s",
        "--stop-timeout",
        "30",
        "--csv",
        str(workdir / "locust"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    sampler = CpuSampler(args.database_url, results)
    access_log = workdir / "access.log"
    access_offset = access_log.stat().st_size if access_log.exists() else 0
    started = time.time()
    proc = services.start("locust", cmd, env)
    sampler.sessions = services.sessions()
    sampler.start()
    deadline = time.monotonic() + args.duration + args.login_timeout + 240
    last_report = time.monotonic()
    while proc.poll() is None:
        if time.monotonic() > deadline:
            say("locust overran its time; stopping it")
            break
        for name in ("gunicorn", "celery-worker", "celery-beat"):
            if services.procs[name][0].poll() is not None:
                say(f"{name} died during the run")
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            say(f"  t+{time.time() - started:.0f}s  {machine_load()}")
        time.sleep(0.5)
    ended = time.time()
    services.stop("locust")
    cpu = sampler.stop()
    return {
        "locust_start": started,
        "locust_end": ended,
        "locust_seconds": ended - started,
        "locust_rc": proc.returncode,
        "access_offset": access_offset,
        "cpu": cpu,
    }


def summary_lines(f: dict[str, Any]) -> list[str]:
    lines = [
        f"measured {f['measured_s']}s after {f['reviewers_logged_in']}/{f['reviewers']} logins "
        f"(login p50 {f['login_p50_ms']} ms, p95 {f['login_p95_ms']} ms); gunicorn "
        f"{f['gunicorn']}; {f['requests']:,} requests in the window ({f['requests_per_s']}/s)",
        f"ingest: {f['ingest_rate_achieved']:,}/s achieved of {f['ingest_rate_target']:,}/s "
        f"target; {f['interactions_created']:,} created, {f['interactions_stored']:,} stored, "
        f"{f['ingest_requests_failed']} failed requests, {f['ingest_item_errors']} item errors",
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
    lines.append(f"CPU seconds: {f['cpu_s']}; {f['cores_busy']} of {f['cores']} cores busy")
    for trace in f["server_errors"]:
        lines.append("server error:\n" + trace)
    lines.append("OK" if f["ok"] else f"FAILED: {', '.join(f['failed_checks'])}")
    lines.append(f"logs: {f['logs']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-load-"))
    say(
        f"load test: {args.reviewers} reviewers, ingest {args.ingest_rate:g}/s in batches of "
        f"{args.ingest_batch} from {args.ingest_users} senders, {args.duration}s; "
        f"database {database_name(args.database_url)}, redis {args.redis_url}"
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
