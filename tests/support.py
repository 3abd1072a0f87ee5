"""Helpers for tests that run real processes against the test database."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """The environment of a manage.py subprocess that talks to the test database
    (pytest-django renamed it in settings, so DATABASE_URL must follow)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    return env


def manage(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )


def free_port() -> int:
    """A TCP port free on loopback right now (for a server a test starts)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """gunicorn serving the app on a free loopback port, against the test database (start it
    from a test with a transactional database, so it sees committed rows)."""

    def __init__(self, *, env: dict[str, str] | None = None, workers: int = 1) -> None:
        import tempfile

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **subprocess_env(),
            "SECRET_KEY": "gunicorn-under-test-" + "x" * 40,
            **(env or {}),
        }
        self.workers = workers
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def start(self) -> "Gunicorn":
        import time
        import urllib.request

        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "config.wsgi", "--bind",
                f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--threads", "4",
                "--timeout", "60", "--access-logfile", "-",
            ],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.text()}")
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2).close()  # noqa: S310
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within 60 s: {self.text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def text(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()
