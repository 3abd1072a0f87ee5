"""Fault injection: a Redis server of the test's own (so stopping it disturbs nobody else),
and a Celery worker on it."""

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from tests.conftest import celery_sends_to, start_celery_worker, stop_celery_worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A real redis-server on a free port that the test can stop and start again."""

    def __init__(self, workdir):
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.answers():
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # like a crash: no goodbye to the clients
            self.process.wait(timeout=10)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def private_redis(tmp_path):
    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_worker(transactional_db, private_redis, settings):
    """This process sends to `private_redis`; a real worker consumes from it. The Django
    cache and broker settings point at it too, so /healthz and the rate limiter see it."""
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    settings.REDIS_URL = private_redis.url  # what /healthz checks
    with celery_sends_to(private_redis.url, queue):
        worker = start_celery_worker(private_redis.url, queue, {"OUTBOX_GRACE_SECONDS": "1"})
        worker.queue = queue
        try:
            yield worker
        finally:
            worker.log = stop_celery_worker(worker)
