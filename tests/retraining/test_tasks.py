"""Celery tasks of the retraining app: called directly (twice), and on a real worker,
including one killed in the middle of a build."""

import os
import signal

import pytest

from retraining import services, tasks
from retraining.models import ExportBatch
from tests.conftest import wait_for

Status = ExportBatch.Status


@pytest.mark.django_db
def test_it_builds_through_the_task_idempotently(agent, decide, ml):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    assert tasks.build_batch(batch.pk) == Status.READY
    sha = ExportBatch.objects.get(pk=batch.pk).sha256
    assert tasks.build_batch(batch.pk) == Status.READY
    assert ExportBatch.objects.get(pk=batch.pk).sha256 == sha


@pytest.mark.django_db
def test_it_does_nothing_for_a_batch_that_is_gone():
    assert tasks.build_batch(987_654) == ""


def test_it_retries_only_transient_errors_and_acks_late():
    assert tasks.build_batch.acks_late is True
    assert set(tasks.build_batch.autoretry_for) == set(services.TRANSIENT_ERRORS)
    assert ValueError not in tasks.build_batch.autoretry_for


def test_it_schedules_the_sweep_periodically(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["retraining.sweep-batches"]
    assert entry["task"] == tasks.sweep_batches.name
    assert entry["schedule"] == settings.EXPORT_SWEEP_SECONDS


@pytest.mark.django_db
def test_it_sweeps_idempotently():
    assert tasks.sweep_batches() == {"requeued": 0, "failed": 0, "reenqueued": 0}
    assert tasks.sweep_batches() == {"requeued": 0, "failed": 0, "reenqueued": 0}


@pytest.mark.redis
@pytest.mark.celery_worker
def test_it_builds_a_batch_on_a_real_worker(worker, agent, decide, ml, api_client):
    for n in range(5):
        decide(agent, f"question {n} ✓", f"answer {n}")

    batch = services.batch_request(agent=agent, format="parquet", actor=ml)

    wait_for(lambda: ExportBatch.objects.get(pk=batch.pk).is_finished, timeout=60)
    batch.refresh_from_db()
    assert batch.status == Status.READY, batch.failure_reason
    assert batch.row_count == 5
    response = api_client(ml).get(f"/api/v1/exports/{batch.pk}/download")
    assert response.status_code == 200
    assert response["X-Content-SHA256"] == batch.sha256


@pytest.fixture
def slow_builds(monkeypatch, settings):
    """Builds that take seconds (one row per chunk, a pause after each) and a short lease;
    set in the environment before the worker starts, and here for the sweep."""
    for name, value in {
        "EXPORT_CHUNK_SIZE": "1",
        "EXPORT_TEST_CHUNK_DELAY_SECONDS": "0.4",
        "EXPORT_BUILD_LEASE_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings.EXPORT_BUILD_LEASE_SECONDS = 2


@pytest.fixture
def slow_worker(slow_builds, worker):
    return worker


@pytest.mark.faults
@pytest.mark.redis
@pytest.mark.celery_worker
def test_it_recovers_a_build_whose_worker_was_killed(
    slow_worker, agent, decide, ml, api_client, client, media
):
    for n in range(12):
        decide(agent, f"question {n}", f"answer {n}")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml)
    tmp = media / ".export-tmp"

    def half_written():
        row = ExportBatch.objects.get(pk=batch.pk)
        parts = list(tmp.glob("*.part")) if tmp.exists() else []
        return row.status == Status.BUILDING and 0 < row.progress < 100 and parts

    wait_for(half_written, timeout=60)
    os.kill(slow_worker.pid, signal.SIGKILL)  # no cleanup, no goodbye: like the OOM killer
    slow_worker.wait(timeout=10)

    # Dead mid-build: still "building", nothing to download, nothing in storage.
    row = ExportBatch.objects.get(pk=batch.pk)
    assert row.status == Status.BUILDING and not row.file and not row.sha256
    assert api_client(ml).get(f"/api/v1/exports/{batch.pk}/download").status_code == 409
    client.force_login(ml)
    assert client.get(f"/exports/{batch.pk}/download/").status_code == 409
    assert not (media / "exports").exists() or not any((media / "exports").rglob("*.jsonl"))
    assert list(tmp.glob("*.part"))  # the partial file is local and unreferenced

    # The heartbeat stops; after the lease the sweep puts the batch back in the queue ...
    wait_for(lambda: services.batches_sweep()["requeued"] == 1, timeout=20, interval=0.5)
    assert ExportBatch.objects.get(pk=batch.pk).status == Status.QUEUED
    assert not list(tmp.glob("*.part"))  # ... and deletes the dead build's partial file.

    # The sweep sent the build again (through the outbox): the next worker builds it whole,
    # the same bytes as a clean build.
    from config.celery import app
    from tests.conftest import start_celery_worker, stop_celery_worker

    queue = app.conf.task_default_queue
    second = start_celery_worker(app.conf.broker_url, queue)
    try:
        wait_for(
            lambda: ExportBatch.objects.get(pk=batch.pk).status == Status.READY,
            timeout=60,
            interval=0.5,
        )
    finally:
        log = stop_celery_worker(second)
    assert "retraining.tasks.build_batch" in log  # built by the second worker
    rebuilt = ExportBatch.objects.get(pk=batch.pk)
    clean = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    services.batch_build(batch_id=clean.pk)
    assert rebuilt.row_count == 12 and rebuilt.attempts == 2
    assert rebuilt.sha256 == ExportBatch.objects.get(pk=clean.pk).sha256


@pytest.mark.django_db(transaction=True)
def test_a_batch_requested_while_redis_is_down_is_built_once_the_sweep_runs(agent, decide, ml):
    from datetime import timedelta

    from django.utils import timezone

    from core import outbox
    from core.models import OutboxMessage
    from tests.conftest import celery_eager, celery_sends_to

    decide(agent, "Q", "A")
    outbox._Breaker.reset()
    with celery_sends_to("redis://127.0.0.1:1/0", "unused"):  # nothing listens there
        batch = services.batch_request(agent=agent, format="jsonl", actor=ml)
    outbox._Breaker.reset()

    # The request succeeded; the build waits in the outbox, not lost with the message.
    assert ExportBatch.objects.get(pk=batch.pk).status == Status.QUEUED
    message = OutboxMessage.objects.get()
    assert (message.task, message.args) == ("retraining.tasks.build_batch", [batch.pk])

    # The broker is back (here: the in-process embedded mode): the sweep sends it.
    OutboxMessage.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    with celery_eager():
        assert outbox.outbox_sweep() == {"sent": 1, "kept": 0}
    assert ExportBatch.objects.get(pk=batch.pk).status == Status.READY
