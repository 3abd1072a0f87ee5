"""Requesting, building, retrying and labelling batches (retraining/services.py)."""

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.db import OperationalError
from django.utils import timezone

from core.models import AuditEvent
from retraining import build, formats, services
from retraining.models import BatchPair, ExportBatch, TrainingPair

pytestmark = pytest.mark.django_db

Status = ExportBatch.Status


def read_jsonl(batch):
    return pd.read_json(batch.file.path, lines=True, dtype=False).to_dict("records")


def stored_files(media) -> list[str]:
    folder = media / "exports"
    return sorted(str(p.relative_to(media)) for p in folder.rglob("*") if p.is_file())


# --- requesting ----------------------------------------------------------------------------


def test_it_queues_a_request_with_normalised_filters_and_a_data_cutoff(agent, decide, ml):
    pair = decide(agent, "Q", "A")

    batch = services.batch_request(
        agent=agent,
        format="jsonl",
        actor=ml,
        enqueue=False,
        new_only=True,
        filters={"sources": ["correct", "approve"], "error_categories": ["tone", None]},
    )

    assert batch.status == Status.QUEUED
    assert batch.cutoff_id == pair.pk
    assert batch.validation_share == 0.1
    assert batch.filters == {
        "date_from": None,
        "date_to": None,
        "sources": ["approve", "correct"],
        "error_categories": ["tone", None],
        "agent_versions": [],
        "min_reviews": 1,
        "new_only": True,
        "system_prompt": "",
        "intents": [],
        "domains": [],
    }
    assert AuditEvent.objects.filter(action="batch.requested", target_id=batch.pk).exists()


BACKWARDS = {"date_from": "2026-11-02", "date_to": "2026-11-01"}


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "jsonl", "filters": {"colour": "red"}}, "filters"),
        ({"format": "jsonl", "filters": {"date_from": "27/11/2026"}}, "date_from"),
        ({"format": "jsonl", "filters": BACKWARDS}, "date_to"),
        ({"format": "jsonl", "filters": {"sources": ["maybe"]}}, "sources"),
        ({"format": "jsonl", "filters": {"error_categories": ["no-such"]}}, "error_categories"),
        ({"format": "jsonl", "filters": {"min_reviews": 0}}, "min_reviews"),
        ({"format": "jsonl", "filters": {"system_prompt": "Hi"}}, "system_prompt"),
        ({"format": "preference", "filters": {"sources": ["approve"]}}, "sources"),
        ({"format": "jsonl", "dataset": "feedback"}, "format"),
        ({"format": "csv", "dataset": "feedback", "filters": {"kinds": ["nope"]}}, "kinds"),
    ],
)  # fmt: skip
def test_it_refuses_an_invalid_request_field_by_field(agent, ml, request_, field):
    with pytest.raises(services.InvalidRequest) as caught:
        services.batch_request(agent=agent, actor=ml, enqueue=False, **request_)

    assert field in caught.value.errors
    assert not ExportBatch.objects.exists()


def test_it_enqueues_the_build_only_once_the_request_commits(
    agent, decide, ml, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch = services.batch_request(agent=agent, format="jsonl", actor=ml)
    assert ExportBatch.objects.get(pk=batch.pk).status == Status.QUEUED
    assert len(callbacks) == 1

    callbacks[0]()  # the commit: eager Celery builds it here

    assert ExportBatch.objects.get(pk=batch.pk).status == Status.READY


# --- what a batch holds ------------------------------------------------------------------------


def test_it_drops_exact_duplicates_and_counts_them(agent, decide, build):
    first = decide(agent, "Same question", "Same answer")
    decide(agent, "Same question", "Same answer")  # exact repeat
    decide(agent, "Same question", "orig", verdict="correct", corrected="Same answer")  # too
    other = decide(agent, "Same question", "Another answer")

    batch = build(agent, "jsonl")

    assert [r["pair_id"] for r in read_jsonl(batch)] == [first.pk, other.pk]
    assert batch.counts["selected"] == 4
    assert batch.counts["duplicates_dropped"] == 2
    assert batch.manifest["counts"]["duplicates_dropped"] == 2
    # The repeats are held by the batch all the same: their content is in it.
    assert BatchPair.objects.filter(batch=batch).count() == 4
    assert BatchPair.objects.filter(batch=batch, duplicate=True).count() == 2


def test_it_keeps_each_input_on_one_side_of_the_split(agent, decide, build, settings):
    settings.EXPORT_VALIDATION_SHARE = 0.5
    for n in range(10):
        for m in range(3):  # the same input with different outputs
            decide(agent, f"question {n}", f"answer {n}.{m}")

    rows = read_jsonl(build(agent, "jsonl"))

    sides = {}
    for row in rows:
        sides.setdefault(row["input"], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values()), sides
    assert {row["split"] for row in rows} == {"train", "validation"}


def test_it_splits_by_a_stable_hash_at_the_configured_share():
    texts = [f"customer question number {n}" for n in range(20_000)]

    validation = [t for t in texts if build.split_of(t, 0.1) == "validation"]

    assert 0.09 < len(validation) / len(texts) < 0.11
    # CRC-32 (zlib) of the UTF-8 text, modulo 10,000: worked out independently here.
    import zlib

    assert all(zlib.crc32(t.encode()) % 10_000 < 1000 for t in validation)
    assert build.split_of("anything", 0.0) == "train"


def test_it_rebuilds_a_byte_identical_file_in_every_format(agent, tricky_pairs, build):
    for fmt in ExportBatch.Format.values:
        first, second = build(agent, fmt), build(agent, fmt)

        assert first.sha256 == second.sha256, fmt
        assert Path(first.file.path).read_bytes() == Path(second.file.path).read_bytes()
        assert first.file.name != second.file.name  # two immutable files


def test_it_leaves_out_pairs_of_earlier_batches_when_only_new_pairs_are_asked(agent, decide, build):
    old = [decide(agent, f"old {n}", "A") for n in range(3)]
    first = build(agent, "jsonl", new_only=True)
    new = decide(agent, "new", "A")

    second = build(agent, "jsonl", new_only=True)
    everything = build(agent, "csv")

    assert [r["pair_id"] for r in read_jsonl(first)] == [p.pk for p in old]
    assert [r["pair_id"] for r in read_jsonl(second)] == [new.pk]
    assert everything.row_count == 4
    assert set(new.batches.all()) == {second, everything}
    assert set(old[0].batches.all()) == {first, everything}
    assert build(agent, "jsonl", new_only=True, expect="failed").row_count == 0


def test_it_frees_the_pairs_of_a_failed_batch(agent, decide, build, monkeypatch):
    pair = decide(agent, "Q", "A")

    def boom(*args, **kwargs):
        raise ValueError("disk on fire")

    monkeypatch.setattr(formats.JsonlWriter, "write", boom)
    failed = build(agent, "jsonl", new_only=True, expect="failed")
    monkeypatch.undo()

    assert not pair.batches.exists()
    assert [r["pair_id"] for r in read_jsonl(build(agent, "jsonl", new_only=True))] == [pair.pk]
    assert failed.failure_reason == "ValueError: disk on fire"


def test_it_holds_pairs_up_to_its_data_cutoff(agent, decide, ml):
    early = decide(agent, "early", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    decide(agent, "late", "A")  # decided after the request

    services.batch_build(batch_id=batch.pk)

    assert [r["pair_id"] for r in read_jsonl(ExportBatch.objects.get(pk=batch.pk))] == [early.pk]


def test_it_selects_by_source_category_version_and_reviews(
    agent, decide, build, reviewer, other_reviewer
):
    approved = decide(agent, "a", "A", version="v1")
    toned = decide(
        agent, "b", "B", verdict="correct", corrected="B!", category="tone", version="v2"
    )
    decide(agent, "c", "C", verdict="correct", corrected="C!", category="incomplete", version="v2")
    four_eyes = decide(agent, "d", "D", four_eyes=True, version="v3")

    def ids(**filters):
        return [r["pair_id"] for r in read_jsonl(build(agent, "jsonl", filters=filters))]

    assert ids(sources=["approve"]) == [approved.pk, four_eyes.pk]
    assert ids(error_categories=["tone", None]) == [approved.pk, toned.pk, four_eyes.pk]
    assert ids(agent_versions=["v2"], error_categories=["tone"]) == [toned.pk]
    assert ids(min_reviews=2) == [four_eyes.pk]


def test_it_selects_by_decision_day(agent, decide, build):
    old, today = decide(agent, "old", "A"), decide(agent, "today", "A")
    TrainingPair.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    day = timezone.now().date()

    rows = read_jsonl(build(agent, "jsonl", filters={"date_from": day.isoformat()}))
    earlier = read_jsonl(
        build(agent, "jsonl", filters={"date_to": (day - timedelta(days=1)).isoformat()})
    )

    assert [r["pair_id"] for r in rows] == [today.pk]
    assert [r["pair_id"] for r in earlier] == [old.pk]


# --- the file and its manifest -----------------------------------------------------------------


def test_it_writes_a_manifest_beside_the_file(agent, tricky_pairs, build, ml, media):
    batch = build(agent, "parquet")

    data = Path(batch.file.path).read_bytes()
    assert batch.sha256 == hashlib.sha256(data).hexdigest()
    assert batch.file_size == len(data)
    manifest_path = Path(batch.manifest_file.path)
    assert manifest_path.parent == Path(batch.file.path).parent
    assert manifest_path.name == Path(batch.file.name).stem + ".manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest == batch.manifest
    assert manifest["id"] == batch.pk and manifest["agent"] == "support-bot"
    assert manifest["format"] == "parquet" and manifest["sha256"] == batch.sha256
    assert manifest["filters"] == batch.filters
    assert manifest["created_by"] == ml.username and manifest["created_at"]
    assert manifest["counts"]["by_split"] == {"train": 8, "validation": 0}
    assert manifest["counts"]["by_source"] == {"approve": 4, "correct": 4}
    assert manifest["code_version"].startswith("coachdesk ")
    assert manifest["split"]["validation_share"] == 0.1


def test_it_fails_with_the_reason_and_leaves_no_file_behind(agent, tricky_pairs, build, media,
                                                            monkeypatch, settings):  # fmt: skip
    settings.EXPORT_CHUNK_SIZE = 2
    calls = []

    def write_then_break(self, rows, splits):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("writer broke")
        return original(self, rows, splits)

    original = formats.JsonlWriter.write
    monkeypatch.setattr(formats.JsonlWriter, "write", write_then_break)

    batch = build(agent, "jsonl", expect="failed")

    assert batch.failure_reason == "RuntimeError: writer broke"
    assert not batch.file and not batch.sha256
    assert stored_files(media) == []
    assert list((media / ".export-tmp").iterdir()) == []
    with pytest.raises(services.Conflict):
        services.batch_file_open(batch=batch)


def test_it_releases_the_batch_and_reraises_a_transient_error(agent, decide, ml, monkeypatch):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    def db_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(formats.JsonlWriter, "write", db_gone)
    with pytest.raises(OperationalError):
        services.batch_build(batch_id=batch.pk)

    batch.refresh_from_db()
    assert batch.status == Status.QUEUED and batch.lease_token == ""
    assert batch.attempts == 1
    assert BatchPair.objects.filter(batch=batch).exists()  # the next attempt reuses it
    monkeypatch.undo()
    assert services.batch_build(batch_id=batch.pk) == Status.READY


def test_a_stream_shorter_than_the_selection_is_retried_not_made_ready(
    agent, decide, ml, monkeypatch
):
    """A replica that has not replayed the selection yet streams fewer rows than were
    selected: the build is put back in the queue, never finished as a short batch."""
    from retraining import selectors
    from retraining.errors import StaleRead

    decide(agent, "Q1", "A1")
    decide(agent, "Q2", "A2")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    full = selectors.batch_pair_chunks

    def behind(*args, **kwargs):
        for chunk in full(*args, **kwargs):
            yield chunk[:-1]

    monkeypatch.setattr(selectors, "batch_pair_chunks", behind)
    with pytest.raises(StaleRead, match="1 of the 2 selected rows were read"):
        services.batch_build(batch_id=batch.pk)

    batch.refresh_from_db()
    assert batch.status == Status.QUEUED and not batch.file
    monkeypatch.undo()
    assert services.batch_build(batch_id=batch.pk) == Status.READY
    batch.refresh_from_db()
    assert batch.row_count == 2


def test_it_builds_once_when_run_twice(agent, decide, ml):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    assert services.batch_build(batch_id=batch.pk) == Status.READY
    first = ExportBatch.objects.get(pk=batch.pk)
    assert services.batch_build(batch_id=batch.pk) == Status.READY

    again = ExportBatch.objects.get(pk=batch.pk)
    assert (again.file.name, again.sha256, again.attempts) == (first.file.name, first.sha256, 1)
    assert AuditEvent.objects.filter(action="batch.started", target_id=batch.pk).count() == 1


def stale_build(batch, *, attempts=1, seconds=3600):
    ExportBatch.objects.filter(pk=batch.pk).update(
        status=Status.BUILDING,
        lease_token="dead-worker",
        attempts=attempts,
        heartbeat_at=timezone.now() - timedelta(seconds=seconds),
    )


def test_it_leaves_a_build_with_a_live_heartbeat_alone(agent, decide, ml):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    stale_build(batch, seconds=1)

    assert services.batch_build(batch_id=batch.pk) == Status.BUILDING
    assert ExportBatch.objects.get(pk=batch.pk).lease_token == "dead-worker"


def test_it_takes_over_a_build_whose_heartbeat_stopped(agent, decide, ml):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    stale_build(batch)

    assert services.batch_build(batch_id=batch.pk) == Status.READY
    assert ExportBatch.objects.get(pk=batch.pk).attempts == 2
    assert AuditEvent.objects.filter(action="batch.taken_over", target_id=batch.pk).exists()


def test_it_gives_up_after_the_last_attempt(agent, decide, ml, settings):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    stale_build(batch, attempts=settings.EXPORT_MAX_ATTEMPTS)

    assert services.batch_build(batch_id=batch.pk) == Status.FAILED
    assert "Gave up after 3 attempts" in ExportBatch.objects.get(pk=batch.pk).failure_reason


def test_it_throws_its_work_away_when_its_lease_was_taken_over(
    agent, decide, ml, media, monkeypatch
):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    write = build._write

    def overtaken(batch, heartbeat):
        built = write(batch, heartbeat)
        # Meanwhile the sweep presumed this worker dead and someone else took over.
        ExportBatch.objects.filter(pk=batch.pk).update(lease_token="someone-else")
        return built

    monkeypatch.setattr(build, "_write", overtaken)

    assert services.batch_build(batch_id=batch.pk) == Status.BUILDING
    again = ExportBatch.objects.get(pk=batch.pk)
    assert (again.lease_token, again.file.name) == ("someone-else", "")
    assert stored_files(media) == []


# --- the sweep ---------------------------------------------------------------------------------


def test_it_requeues_a_dead_build_with_attempts_left(
    agent, decide, ml, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    stale_build(batch)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.batches_sweep()["requeued"] == 1

    # Requeued and (eager Celery) built again by the enqueued task.
    assert ExportBatch.objects.get(pk=batch.pk).status == Status.READY


def test_it_fails_a_dead_build_after_its_last_attempt(agent, decide, ml, settings):
    pair = decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    build.select(batch)  # a worker froze the selection, then died
    stale_build(batch, attempts=settings.EXPORT_MAX_ATTEMPTS)
    assert pair.batches.exists()

    assert services.batches_sweep()["failed"] == 1

    batch.refresh_from_db()
    assert batch.status == Status.FAILED
    assert "worker stopped answering" in batch.failure_reason
    assert not pair.batches.exists()


def test_it_enqueues_a_forgotten_queued_batch_again(
    agent, decide, ml, settings, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    ExportBatch.objects.filter(pk=batch.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.EXPORT_REQUEUE_SECONDS + 1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert services.batches_sweep()["reenqueued"] == 1
        assert services.batches_sweep()["reenqueued"] == 0  # not again at once

    assert ExportBatch.objects.get(pk=batch.pk).status == Status.READY


def test_it_deletes_partial_files_of_dead_builds(media, settings):
    folder = media / ".export-tmp"
    folder.mkdir(parents=True)
    dead, live = folder / "batch-1-aaaa.jsonl.part", folder / "batch-2-bbbb.jsonl.part"
    dead.write_bytes(b"{}")
    live.write_bytes(b"{}")
    old = (timezone.now() - timedelta(seconds=settings.EXPORT_BUILD_LEASE_SECONDS + 60)).timestamp()
    import os

    os.utime(dead, (old, old))

    services.batches_sweep()

    assert not dead.exists() and live.exists()


# --- retry, training mark, the state machine ---------------------------------------------------


def test_it_retries_a_failed_batch(agent, decide, build, ml, monkeypatch,
                                   django_capture_on_commit_callbacks):  # fmt: skip
    decide(agent, "Q", "A")
    monkeypatch.setattr(formats.JsonlWriter, "write", lambda *a: 1 / 0)
    batch = build(agent, "jsonl", expect="failed")
    monkeypatch.undo()

    with django_capture_on_commit_callbacks(execute=True):
        services.batch_retry(batch=batch, actor=ml)

    batch.refresh_from_db()
    assert batch.status == Status.READY and batch.failure_reason == ""
    assert AuditEvent.objects.filter(action="batch.retried", actor=ml).exists()


def test_it_refuses_to_retry_a_batch_that_did_not_fail(agent, decide, build, ml):
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    with pytest.raises(services.Conflict):
        services.batch_retry(batch=batch, actor=ml)


def test_it_marks_a_ready_batch_as_used_to_train_a_version(agent, decide, build, ml):
    from retraining import selectors

    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    services.batch_mark_trained(batch=batch, agent_version=" 2026.12.1 ", actor=ml)

    assert ExportBatch.objects.get(pk=batch.pk).trained_agent_version == "2026.12.1"
    assert list(selectors.batches_trained_for(agent, "2026.12.1")) == [batch]
    event = AuditEvent.objects.get(action="batch.marked_trained")
    assert event.after == {"trained_agent_version": "2026.12.1"}


def test_it_refuses_to_mark_a_batch_that_is_not_ready(agent, decide, ml):
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    with pytest.raises(services.Conflict):
        services.batch_mark_trained(batch=batch, agent_version="v9", actor=ml)


def test_it_audits_every_status_change_of_a_build(agent, decide, build):
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    actions = AuditEvent.objects.filter(target_type="export_batch", target_id=batch.pk)
    assert sorted(actions.values_list("action", flat=True)) == [
        "batch.ready",
        "batch.requested",
        "batch.started",
    ]


def test_it_assigns_batch_status_only_in_services():
    """One place owns the state machine: no other module writes ExportBatch.status."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("retraining/**/*.py"), *root.glob("kpis/**/*.py")]:
        if path.name == "services.py" and path.parent.name == "retraining":
            continue
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"\.status\s*=[^=]|update\([^)]*\bstatus=", text) and "ExportBatch" in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
