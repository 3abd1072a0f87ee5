"""The README's production steps, followed as written: collectstatic, then gunicorn with DEBUG
off serves the pages and their static files; skipping collectstatic is named by a check."""

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import ROOT, subprocess_env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def production_env(static_root: Path) -> dict[str, str]:
    env = subprocess_env()
    env.update(
        DEBUG="0",
        SECRET_KEY="production-test-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        STATIC_ROOT=str(static_root),
    )
    env.pop("COACHDESK_PLAIN_STATIC", None)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_it_serves_pages_and_static_files_after_the_documented_steps(tmp_path):
    env = production_env(tmp_path / "static")
    collected = manage(env, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    assert "core.W001" not in manage(env, "check").stderr

    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                status, page = get(f"{base}/accounts/login/")
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not answer")
        assert status == 200
        css = re.search(r'href="(/static/coachdesk/app\.[0-9a-f]{12}\.css)"', page)
        assert css, "the login page links the hashed stylesheet"
        status, body = get(base + css.group(1))
        assert status == 200 and "{" in body
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_it_names_the_missing_collectstatic_step(tmp_path):
    result = manage(production_env(tmp_path / "never-collected"), "check")

    assert "core.W001" in result.stderr
    assert "collectstatic" in result.stderr
