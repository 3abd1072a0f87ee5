"""Shared fixtures: personas, API clients, and the service gate.

Tests marked `postgres` need PostgreSQL, tests marked `redis` need Redis. When a service is
missing they are skipped with a banner; with COACHDESK_REQUIRE_SERVICES=1 they fail instead.
"""

import contextlib
import os

import pytest
from django.db import connection

from tests import factories

MISSING = os.environ.get("COACHDESK_MISSING_SERVICES", "")
REQUIRE = os.environ.get("COACHDESK_REQUIRE_SERVICES") == "1"


def pytest_configure(config):
    from django.conf import settings

    # Hashing is not under test: the fast hasher keeps user-heavy tests quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_report_header(config):
    if MISSING:
        return ["!!! SERVICES MISSING, dependent tests skipped:", *MISSING.splitlines()]
    return ["services: PostgreSQL and Redis answer"]


def _gate(item, marker: str, available: bool, what: str) -> None:
    if item.get_closest_marker(marker) and not available:
        if REQUIRE:
            pytest.fail(f"{what} is required (COACHDESK_REQUIRE_SERVICES=1) but not available")
        pytest.skip(f"needs {what}")


def pytest_runtest_setup(item):
    _gate(item, "postgres", connection.vendor == "postgresql", "PostgreSQL")
    _gate(item, "redis", bool(os.environ.get("TEST_REDIS_URL")), "Redis")


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if MISSING:
        terminalreporter.write_sep("!", "SERVICES MISSING", red=True, bold=True)
        for line in MISSING.splitlines():
            terminalreporter.write_line(f"  {line}", red=True)
        terminalreporter.write_line(
            f"  {len(skipped)} tests skipped. Run .ci/run for the full suite.", red=True
        )


@pytest.fixture(autouse=True)
def _taxonomy_uncached():
    """Each test starts without a cached taxonomy (a test's rows roll back without signals)."""
    from django.core.cache import cache

    from reviews.selectors import TAXONOMY_KEY

    cache.delete(TAXONOMY_KEY)


@pytest.fixture(autouse=True)
def _queue_counts_uncached(settings):
    """ "My queue" counts live, so a test sees its own rows (the shared count is cached for a
    few seconds in production; tests/reviews/test_queue_counts.py covers that)."""
    settings.QUEUE_COUNTS_SECONDS = 0


@pytest.fixture
def reviewer(db):
    return factories.UserFactory(username="rita", roles=["reviewer"], domains=["support"])


@pytest.fixture
def other_reviewer(db):
    return factories.UserFactory(username="oscar", roles=["reviewer"], domains=["support"])


@pytest.fixture
def lead(db):
    return factories.UserFactory(username="lee", roles=["admin"], is_staff=True)


@pytest.fixture
def ml(db):
    return factories.UserFactory(username="mo", roles=["ml"])


@pytest.fixture
def pipeline(db):
    """The agent pipeline's service account."""
    return factories.UserFactory(username="pipeline", roles=["agent"])


@pytest.fixture
def api_client(client):
    """Calls the API with a bearer token of a given user: api_client(user).post(...)."""
    from accounts.services import token_create

    class ApiClient:
        def __init__(self, user=None, secret: str | None = None):
            if user is not None:
                _, secret = token_create(user=user, name="test")
            self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

        def post(self, path: str, data, **kwargs):
            import json

            body = data if isinstance(data, (bytes, str)) else json.dumps(data)
            return client.post(
                path, body, content_type="application/json", headers=self.headers, **kwargs
            )

        def get(self, path: str, **kwargs):
            return client.get(path, headers=self.headers, **kwargs)

    return ApiClient


def start_celery_worker(redis_url: str, queue: str, env: dict | None = None):
    """Starts a real `celery worker` process (solo pool) consuming `queue` on `redis_url`
    and waits until it answers a ping. The caller terminates it."""
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from config.celery import app
    from tests.support import subprocess_env

    full_env = {
        **subprocess_env(),
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        # What the worker itself sends (the outbox sweep, retries) stays on its queue.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        **(env or {}),
    }
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop_celery_worker)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "-c",
            "1",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"{queue}-{time.monotonic_ns()}@%h",
            "--loglevel",
            "INFO",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=full_env,
        # A file, not a pipe: nobody reads a pipe while the test runs, and a full one
        # (64 KiB of log) would stop the worker mid-task.
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker.log_file = log
    deadline = time.monotonic() + 60  # a busy 2-core machine can take that long to boot it
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(queue in name for reply in replies for name in reply):
            return worker
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited: {_log_text(worker)}")
    worker.kill()
    raise RuntimeError(f"celery worker did not answer within 60 s: {_log_text(worker)}")


def _log_text(worker) -> str:
    worker.log_file.seek(0)
    return worker.log_file.read()


def stop_celery_worker(worker) -> str:
    """Terminates a worker started by `start_celery_worker`; returns its log."""
    import subprocess

    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    text = _log_text(worker)
    worker.log_file.close()
    return text


@contextlib.contextmanager
def celery_sends_to(redis_url: str, queue: str):
    """This process sends tasks to `queue` on `redis_url` (not eagerly) inside the block."""
    from config.celery import app

    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=redis_url, task_always_eager=False, task_default_queue=queue)
    _drop_celery_pools(app)
    try:
        yield
    finally:
        app.conf.update(saved)
        _drop_celery_pools(app)


@contextlib.contextmanager
def celery_eager():
    """Tasks sent inside the block run in this process (the embedded mode of `make run`),
    whatever an earlier test left in the Celery app's configuration."""
    from config.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = saved


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real `celery worker` process on Redis, against the test database.

    The test process sends to the same Redis (on a queue private to this test) instead of
    running tasks eagerly. Needs `@pytest.mark.redis` and a transactional database, so the
    worker sees committed rows.
    """
    import uuid

    redis_url = os.environ["TEST_REDIS_URL"]
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with celery_sends_to(redis_url, queue):
        worker = start_celery_worker(redis_url, queue)
        try:
            yield worker
        finally:
            worker.log = stop_celery_worker(worker)


def _drop_celery_pools(app) -> None:
    """Closes Celery's broker connection pools *and forgets them*: a closed pool left on the
    app, or in kombu's per-URL registry, makes the next send fail with "Acquire on closed
    pool" (e.g. an eager `.delay()` after a worker test, or a second worker test)."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Polls `predicate` until it is truthy; fails the test after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3-compatible server on loopback (moto in server mode, in a thread): the address
    of a real HTTP S3 API, as MinIO or AWS would give."""
    from moto.server import ThreadedMotoServer

    from tests.support import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def object_storage(s3_endpoint, settings, monkeypatch, request):
    """The file storage switched to a fresh bucket of `s3_endpoint`, configured the way
    STORAGE_URL configures it; returns the boto3 bucket to look into."""
    import boto3

    from config.env import storage_from_url

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    name = f"coachdesk-{request.node.name[:30].replace('_', '-').lower()}"
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = s3.create_bucket(Bucket=name)
    storages = dict(settings.STORAGES)
    storages["default"] = storage_from_url(
        f"s3://{name}?endpoint_url={s3_endpoint}&region_name=us-east-1"
    )
    settings.STORAGES = storages
    yield bucket
    bucket.objects.all().delete()
    bucket.delete()
