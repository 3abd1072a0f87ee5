"""The two ways to serve, started as a user starts them.

`make run` against PostgreSQL (DATABASE_URL set), as a new user would try it: 16 API
reviewers at once must get no connection error, and the development server must not pile up
database connections (its thread-per-request used to keep one per thread until PostgreSQL
answered "too many clients already"). `make serve`: gunicorn, a Celery worker and beat from
the Procfile under honcho, working together."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import httpx
import psycopg
import pytest
from psycopg import sql

from config.env import database_from_url
from tests.support import ROOT, free_port, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DROP = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
REVIEWERS = 16
ROUNDS = 12  # claim + decide pairs per reviewer (fewer once the demo's queue is empty)
# The demo's open queue depends on the day it is seeded (its history is replayed up to now):
# between about 95 and 115 claims. The burst must make at least this many.
MIN_PAIRS = 80

MAKE_REVIEWERS = f"""
from django.contrib.auth.models import Group, User
from accounts.models import ReviewerProfile
from accounts.services import token_create
group = Group.objects.get(name="reviewer")
for n in range({REVIEWERS}):
    user = User.objects.create_user(f"load{{n}}")
    user.groups.add(group)
    ReviewerProfile.objects.create(user=user, domains=["support", "product", "legal"])
    print(token_create(user=user, name="load", agent_slugs=[])[1])
"""


@pytest.fixture
def database():
    """A database of its own on the test server, dropped afterwards."""
    base = database_from_url(os.environ["DATABASE_URL"])
    server = {"host": base["HOST"] or None, "port": base["PORT"] or None, "user": base["USER"]}
    name = f"coachdesk_makerun_{os.getpid()}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgres://{base['USER']}@{base['HOST'] or '127.0.0.1'}:{base['PORT'] or 5432}/{name}"
    yield url, server, name
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def connections_to(server: dict, name: str) -> int:
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]
        ).fetchone()
    return row[0]


def test_make_run_on_postgres_serves_16_api_reviewers_without_connection_errors(database):
    url, server, name = database
    port = free_port()
    env = {**subprocess_env(), "DATABASE_URL": url}
    for key in ("REDIS_URL", "DEBUG", "SECRET_KEY", "DATABASE_CONN_MAX_AGE"):
        env.pop(key, None)  # exactly what a new user has: only DATABASE_URL
    log = open(ROOT / f".make-run-{port}.log", "w+")  # noqa: SIM115
    make = subprocess.Popen(
        [shutil.which("make") or "make", "--no-print-directory", "run", "HOST=127.0.0.1",
         f"PORT={port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # migrate and seed the demo first
        while True:
            assert make.poll() is None, f"make run exited: {(ROOT / log.name).read_text()}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()  # noqa: S310
                break
            except OSError:
                assert time.monotonic() < deadline, "make run did not serve within 240 s"
                time.sleep(0.5)
        made = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "manage.py", "shell", "--no-imports", "-c",
             MAKE_REVIEWERS],
            cwd=ROOT, env={**env, "DEBUG": "1"}, capture_output=True, text=True, check=True,
        )  # fmt: skip
        tokens = made.stdout.split()
        assert len(tokens) == REVIEWERS

        statuses: list[int] = []
        claims: list[int] = []
        errors: list[str] = []
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], connections_to(server, name))
                time.sleep(0.05)

        rubrics: dict[str, dict] = {}

        def scores_for(http: httpx.Client, agent: str) -> dict:
            """What a client scores: the top value of each required criterion of the agent's
            rubric (the demo's support bot has one), read once per agent."""
            if agent not in rubrics:
                criteria = http.get(f"/api/v1/agents/{agent}/rubric", timeout=60).json()
                required = [c for c in criteria["criteria"] if c["required"]]
                top = {c["key"]: max(c["values"]) for c in required}
                rubrics[agent] = {"scores": top} if top else {}
            return rubrics[agent]

        def work(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
                for _ in range(ROUNDS):
                    try:
                        claimed = http.post("/api/v1/queue/claim", json={}, timeout=60)
                        statuses.append(claimed.status_code)
                        claims.append(claimed.status_code)
                        if claimed.status_code != 200:
                            continue
                        item = claimed.json()["item"]
                        decided = http.post(
                            f"/api/v1/items/{item['id']}/decision",
                            json={"verdict": "approve", **scores_for(http, item["agent"])},
                            timeout=60,
                        )
                        statuses.append(decided.status_code)
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=work, args=(t,)) for t in tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1)  # anything left open after the burst shows now
        after = connections_to(server, name)
        done.set()
        watcher.join()
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
        log.close()
        text = (ROOT / log.name).read_text()
        (ROOT / log.name).unlink()

    assert errors == [], errors[:3]
    # Every claim got an item or found the queue empty (204), every claimed item was decided.
    assert set(claims) <= {200, 204}, claims
    assert claims.count(200) >= MIN_PAIRS, claims
    assert statuses.count(200) == 2 * claims.count(200), statuses
    assert not [s for s in statuses if s >= 500], text[-3000:]
    assert "too many clients" not in text
    # At most one connection per request in flight (16) and the periodic loop's own.
    assert peak[0] <= REVIEWERS + 4, peak[0]
    assert after <= 3, after  # none kept once the requests are done


@pytest.mark.redis
def test_make_serve_runs_gunicorn_a_worker_and_beat_together(database, tmp_path):
    url, _, _ = database
    port = free_port()
    env = {
        **subprocess_env(),
        "DATABASE_URL": url,
        "REDIS_URL": os.environ["TEST_REDIS_URL"].rsplit("/", 1)[0] + "/12",
        "SECRET_KEY": "serve-under-test-" + "x" * 40,
        "CELERY_TASK_DEFAULT_QUEUE": f"serve-{os.getpid()}",
        "OUTBOX_SWEEP_SECONDS": "1",
        "STATIC_ROOT": str(tmp_path / "static"),
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }
    env.pop("DEBUG", None)
    env.pop("COACHDESK_PLAIN_STATIC", None)  # production static files (whitenoise, hashed)
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(
            [shutil.which("make") or "make", "--no-print-directory", "serve", "HOST=127.0.0.1",
             f"PORT={port}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # migrate and collect the static files first
        while "outbox_sweep" not in log.read_text() or "succeeded" not in log.read_text():
            assert serve.poll() is None, f"make serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        page = httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
    text = log.read_text()
    assert page.status_code == 200 and "Log in to Coachdesk" in page.text
    assert health.status_code == 200, health.text
    for process in ("web.1", "worker.1", "beat.1"):
        assert re.search(rf"^\S+ {re.escape(process)}\s+\| ", text, re.M), process
    # beat scheduled the sweep, the worker ran it: the three work together.
    assert "Sending due task core.outbox-sweep" in text
    assert "Task core.tasks.outbox_sweep" in text and "succeeded" in text


def test_make_serve_says_what_it_needs(tmp_path):
    env = {k: v for k, v in subprocess_env().items() if k not in {"DATABASE_URL", "SECRET_KEY"}}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [shutil.which("make") or "make", "--no-print-directory", "serve"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "make serve needs: DATABASE_URL REDIS_URL SECRET_KEY" in done.stderr
