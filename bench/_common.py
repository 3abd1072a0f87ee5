"""Helpers shared by the bench scripts: the bench database, subprocesses measured for time and
peak RSS, a gunicorn server, and the one JSON line of figures every script ends with.

The bench scripts run as `python bench/<name>.py` (so this module is imported as `_common`),
never inside the test process: they talk to the project only through its command line and
HTTP API, against a database of their own.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench"
# A bench drops and re-creates its database: only names with this prefix are ever touched,
# so a mistyped URL cannot wipe `coachdesk`, a `test_*` database or anything else.
BENCH_DB_PREFIX = "coachdesk_bench"
BENCH_SECRET_KEY = "bench-only-secret-key-not-for-production"


def say(message: str) -> None:
    """A human-readable progress line (stdout, flushed so a background run can be tailed)."""
    print(message, flush=True)


def emit_figures(figures: Mapping[str, Any]) -> None:
    """The last line of every bench: one JSON object of its figures."""
    print(json.dumps(dict(figures), separators=(", ", ": ")), flush=True)


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


class Stopwatch:
    """Accumulates the time spent inside `with watch:` blocks (only the timed work)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._started


def machine_load() -> str:
    """Load average against cores: on a small machine another job skews every figure."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} cores"


def self_peak_rss_mb() -> float:
    """Peak RSS of this process so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# --- Database -----------------------------------------------------------------------------------


def bench_database_url(explicit: str | None) -> str:
    """--database-url, else $BENCH_DATABASE_URL, else the local default. The app's own
    DATABASE_URL is deliberately not used: the bench drops the database it runs on."""
    url = explicit or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    name = database_name(url)
    if not name.startswith(BENCH_DB_PREFIX):
        raise SystemExit(
            f"refusing to use database {name!r}: a bench drops and re-creates its database, "
            f"so its name must start with {BENCH_DB_PREFIX!r}"
        )
    return url


def database_name(url: str) -> str:
    return conninfo_to_dict(url).get("dbname") or ""


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(url, **kwargs)


def _maintenance(url: str) -> psycopg.Connection:
    params = {**conninfo_to_dict(url), "dbname": "postgres"}
    return psycopg.connect(**params, autocommit=True)


def recreate_database(url: str) -> None:
    """DROP (disconnecting any leftover session) and CREATE the bench database."""
    name = database_name(url)
    assert name.startswith(BENCH_DB_PREFIX), name
    with _maintenance(url) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))


def drop_database(url: str) -> None:
    name = database_name(url)
    assert name.startswith(BENCH_DB_PREFIX), name
    with _maintenance(url) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def checkpoint(url: str) -> None:
    """Flush dirty buffers so one timed phase does not pay for the writes of the one before.
    Needs superuser (or pg_checkpoint); skipped without it."""
    try:
        with connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        pass


def scalar(url: str, query: str, params: Sequence[Any] = ()) -> Any:
    with connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


# --- The project as a subprocess ----------------------------------------------------------------


def project_env(url: str, **extra: str) -> dict[str, str]:
    """Environment of a production-like process on the bench database. Without REDIS_URL,
    Celery runs eagerly; nothing the benches measure enqueues tasks."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY=BENCH_SECRET_KEY,
        DEBUG="0",  # DEBUG on would keep every SQL query in memory and skew RSS
        ALLOWED_HOSTS="127.0.0.1,localhost",
        COACHDESK_PLAIN_STATIC="1",
        COACHDESK_HTTPS="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`python manage.py ARGS` on the bench database; output captured."""
    proc = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=project_env(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )
    return proc


def setup_database(url: str) -> None:
    """A fresh bench database with the project's schema (drop, create, migrate)."""
    recreate_database(url)
    manage(url, "migrate", "--noinput", "-v", "0")


def make_token(url: str, username: str = "bench-pipeline") -> str:
    """An API token of a user in the agent group (created if missing), through manage.py."""
    manage(
        url,
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "from django.contrib.auth.models import Group\n"
        f"user, _ = get_user_model().objects.get_or_create(username={username!r})\n"
        "user.groups.add(Group.objects.get(name='agent'))\n",
    )
    return manage(url, "createtoken", username, "--name", "bench").stdout.strip().splitlines()[-1]


@dataclass
class Measured:
    returncode: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # the child's user + system CPU (all its threads)


def run_measured(cmd: Sequence[str], *, env: Mapping[str, str], workdir: Path) -> Measured:
    """Runs `cmd` to completion; wall-clock time and the child's own peak RSS.

    `os.wait4` gives the rusage of this one child, unlike RUSAGE_CHILDREN, which is the
    maximum over every child ever reaped (so a second, smaller run could not be told apart).
    Output goes to files: a pipe nobody reads could block the child and distort the timing.
    """
    out_path, err_path = workdir / "child.stdout", workdir / "child.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(env), stdout=out, stderr=err)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        returncode=proc.returncode,
        seconds=seconds,
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(url: str, *, workers: int = 2, workdir: Path) -> Iterator[int]:
    """Serves the project with gunicorn on a free local port (yielded) until the block ends."""
    with gunicorn_server(url, workers=workers, workdir=workdir) as (port, _):
        yield port


@contextmanager
def gunicorn_server(
    url: str, *, workers: int = 2, workdir: Path, extra: Sequence[str] = ()
) -> Iterator[tuple[int, int]]:
    """`gunicorn` yielding (port, pid of the master) for a bench that reads the CPU of the
    master's workers (its children) in /proc; `extra` is added to gunicorn's arguments."""
    port = free_port()
    log = (workdir / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "config.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         *extra],
        cwd=ROOT,
        env=project_env(url, ALLOWED_HOSTS="127.0.0.1"),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_healthy(port, proc, workdir / "gunicorn.log")
        yield port, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own session: master and workers
                proc.wait()
        log.close()


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(
        f"gunicorn did not answer /healthz in {timeout:.0f}s:\n{log.read_text()[-3000:]}"
    )
