"""The multi-node cluster (tests/multinode/cluster.py) as a module fixture, and the logs of
its processes in the report of any test that fails while it runs."""

import os
import signal
import threading
from urllib.parse import urlsplit

import pytest

from tests.multinode.cluster import Cluster, missing_prerequisites

REQUIRE = os.environ.get("COACHDESK_REQUIRE_SERVICES") == "1"

# Small and quick on purpose: builds slow enough to kill a worker in the middle, leases and
# sweeps short enough that a takeover happens within seconds.
APP_SETTINGS = {
    "EXPORT_CHUNK_SIZE": "10",
    "EXPORT_TEST_CHUNK_DELAY_SECONDS": "0.2",
    "EXPORT_BUILD_LEASE_SECONDS": "4",
    "EXPORT_SWEEP_SECONDS": "2",
    "REVIEW_LEASE_SECONDS": "15",
    "LEASE_SWEEP_SECONDS": "4",
    "OUTBOX_GRACE_SECONDS": "2",
    "OUTBOX_SWEEP_SECONDS": "2",
    # The reviewers' clients send a few hundred requests a minute with one token each.
    "INGEST_RATE_LIMIT_PER_MINUTE": "0",
    "LOG_LEVEL": "WARNING",
}

_running: list[Cluster] = []


@pytest.fixture(scope="module")
def cluster():
    missing = missing_prerequisites()
    if missing:
        message = "the multi-node cluster needs " + ", ".join(missing)
        if REQUIRE:
            pytest.fail(message)
        pytest.skip(message)
    redis = urlsplit(os.environ["TEST_REDIS_URL"])
    # A CI timeout sends SIGTERM, which would end the run without any teardown: turned into
    # an interrupt, the cluster below is still stopped and its folder deleted.
    if threading.current_thread() is not threading.main_thread():
        yield from _cluster(redis)  # only the main thread may set a signal handler
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield from _cluster(redis)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _cluster(redis):
    with Cluster(
        redis_host=redis.hostname or "127.0.0.1",
        redis_port=redis.port or 6379,
        settings=APP_SETTINGS,
        prepare="tests.multinode.seed:run",
    ) as running:
        _running.append(running)
        try:
            yield running
        finally:
            _running.remove(running)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and _running:
        report.sections.append(("multinode process logs", _running[-1].log_tails()))
    return report
