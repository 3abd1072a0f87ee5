"""Building blocks of the multi-node cluster: long-running processes that die like machines,
and PostgreSQL servers of the test's own run as the `postgres` OS user."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
SETPRIV = shutil.which("setpriv")
# Connections of the harness itself (and of migrate and the seed) carry a name that starts
# with this, so the pool check can tell them from the app's.
HARNESS_APP_PREFIX = "multinode-"


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scratch_dir() -> str | None:
    """Memory (tmpfs) when there is plenty of it: two database clusters are written,
    replicated and deleted there several times faster than on a busy disk."""
    shm = "/dev/shm"  # noqa: S108
    with contextlib.suppress(OSError):
        if shutil.disk_usage(shm).free > 2 * 1024**3:
            return shm
    return None  # the system's temporary folder


def postgres_owned(path: Path) -> Path:
    entry = pwd.getpwnam(PG_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def as_postgres() -> dict[str, Any]:
    """subprocess arguments that run the command as the postgres user (initdb, postgres and
    PgBouncer refuse to run as root)."""
    return {"user": PG_USER, "group": PG_USER, "extra_groups": []}


class Proc:
    """One long-running process in a session of its own, its output in a log file.

    `kill()` signals the whole process group (gunicorn's workers, PostgreSQL's backends go
    with their leader), the way a machine that dies takes all its processes. Where util-linux
    `setpriv` exists, the process also gets SIGKILL when the test run itself is killed."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        postgres_user: bool = False,
    ) -> None:
        self.name, self.argv, self.log, self.env, self.cwd = name, argv, log, env, cwd
        self.postgres_user = postgres_user
        self.process: subprocess.Popen | None = None

    def start(self) -> Proc:
        argv = [SETPRIV, "--pdeathsig", "KILL", "--", *self.argv] if SETPRIV else self.argv
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **(as_postgres() if self.postgres_user else {}),
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL to the whole group, at once: the machine is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def stop(self, sig: int | None = signal.SIGTERM, timeout: float = 10) -> None:
        """Asks politely (`sig`; None when it was asked already), waits, then kills the
        group, which also takes what outlived a leader that exited or was killed."""
        if self.process is None:
            return
        if sig is not None:
            self.send(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill()

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


def wait_until(what: str, ready, proc: Proc | None, timeout: float) -> None:
    """Polls `ready()`; fails early, with the log, when `proc` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{what} exited during start:\n{proc.tail()}")
        time.sleep(0.1)
    tail = f":\n{proc.tail()}" if proc is not None else ""
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s{tail}")


def run_as_postgres(*argv: str, cwd: Path, timeout: float = 120) -> None:
    result = subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **as_postgres(),
    )
    if result.returncode:
        output = result.stdout + result.stderr
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}):\n{output}")


class Postgres:
    """A PostgreSQL 15 server of the test's own, as the postgres OS user, listening on
    127.0.0.1 and on a socket in its own folder (never the machine's /var/run/postgresql)."""

    def __init__(self, name: str, folder: Path, port: int) -> None:
        self.name = name
        folder.mkdir(mode=0o700)
        self.folder = postgres_owned(folder)  # data/, the socket and the log
        self.data = folder / "data"
        self.port = port
        self.proc: Proc | None = None

    def dsn(self, dbname: str = "postgres") -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={dbname} "
            f"application_name={HARNESS_APP_PREFIX}harness connect_timeout=5"
        )

    def url(self, dbname: str) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def initdb(self, **settings: Any) -> None:
        run_as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-sync", cwd=self.folder,
        )  # fmt: skip
        self.configure(**settings)

    def basebackup_of(self, primary: Postgres, **settings: Any) -> None:
        """A streaming standby of `primary` (`-R`: standby.signal and primary_conninfo)."""
        run_as_postgres(
            str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", PG_USER, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
            "--no-sync", cwd=self.folder,
        )  # fmt: skip
        self.configure(**settings)

    def configure(self, **settings: Any) -> None:
        """Appends to postgresql.conf (the last value of a setting wins)."""
        settings = {
            "port": self.port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.folder),
            **settings,
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# multinode test\n")
            conf.writelines(f"{key} = {_conf_value(value)}\n" for key, value in settings.items())

    def start(self) -> None:
        self.proc = Proc(
            self.name,
            [str(PG_BIN / "postgres"), "-D", str(self.data)],
            log=self.folder / "server.log",
            cwd=self.folder,
            postgres_user=True,
        ).start()
        wait_until(f"PostgreSQL {self.name}", self.answers, self.proc, timeout=60)

    def answers(self) -> bool:
        import psycopg

        try:
            self.connect().close()
        except psycopg.Error:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGINT, timeout=15)  # SIGINT: fast shutdown


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
