"""The read helpers against real data: KPIs of interactions the client logged, and export
batches built by the retraining services, downloaded and checked against their sha256."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from client_support import async_client, run_async, wait_for

from coachdesk import ApiError, BatchNotReady, ChecksumMismatch

pytestmark = pytest.mark.usefixtures("transactional_db")

NOW = datetime(2026, 11, 5, 12, 0, tzinfo=timezone.utc)


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


@pytest.fixture
def kpi_data(server, agent_token, make_client):
    """Interactions of `kpi-bot` logged through the client, then the KPIs computed the way
    the periodic task does. 2 Nov: three on v1 (two resolved, sentiments 0.5, -0.5, 1.0),
    3 Nov: none, 4 Nov: one on v2 (resolved, sentiment 0.0)."""
    from agents.models import Agent
    from kpis import services

    writer = make_client(server, agent_token, agent="kpi-bot")
    rows = [
        ("v1", at(2, 9), True, 0.5),
        ("v1", at(2, 10), False, -0.5),
        ("v1", at(2, 11), True, 1.0),
        ("v2", at(4, 10), True, 0.0),
    ]
    for version, created, resolved, sentiment in rows:
        writer.log_interaction(
            input="Q",
            output="A",
            confidence=0.9,
            agent_version=version,
            created_at=created,
            resolved=resolved,
            sentiment=sentiment,
        )
    assert writer.flush(timeout=60)
    agent = Agent.objects.get(slug="kpi-bot")
    services.kpis_recompute(agent_ids=[agent.pk], since=date(2026, 11, 2), now=NOW)
    return agent


def test_kpis_returns_parsed_daily_rows(kpi_data, server, ml_token, make_client):
    reader = make_client(server, ml_token)

    rows = reader.kpis("kpi-bot", start=date(2026, 11, 2), end="2026-11-04")

    assert [r.date for r in rows] == [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)]
    assert {(r.agent, r.agent_version) for r in rows} == {("kpi-bot", None)}
    first, empty, last = rows
    assert first["interactions"].value == 3
    rate = first["resolution_rate"]
    assert rate.value == pytest.approx(2 / 3) and rate.n == 3
    assert rate.low is not None and rate.high is not None and rate.low < rate.value < rate.high
    assert first["mean_sentiment"].value == pytest.approx(1 / 3)
    assert first["mean_sentiment"].n == 3
    assert empty["interactions"].value == 0 and empty["resolution_rate"].value is None
    assert last["interactions"].value == 1

    v2 = reader.kpis("kpi-bot", start="2026-11-02", end="2026-11-04", version="v2")
    assert [r["interactions"].value for r in v2] == [0, 0, 1]
    assert {r.agent_version for r in v2} == {"v2"}


def test_kpis_default_range_and_errors(kpi_data, server, ml_token, agent_token, make_client):
    reader = make_client(server, ml_token)

    recent = reader.kpis("kpi-bot")  # the 30 days up to today
    assert len(recent) == 30
    assert recent[-1].date == datetime.now(timezone.utc).date()

    with pytest.raises(ApiError) as unknown:
        reader.kpis("no-such-agent", start="2026-11-02", end="2026-11-04")
    assert unknown.value.status == 404 and unknown.value.detail == "unknown agent 'no-such-agent'"
    with pytest.raises(ApiError) as forbidden:
        make_client(server, agent_token).kpis("kpi-bot", "2026-11-02", "2026-11-04")
    assert forbidden.value.status == 403


def test_async_kpis(kpi_data, server, ml_token):
    async def main():
        async with async_client(server, ml_token) as reader:
            return await reader.kpis("kpi-bot", start="2026-11-02", end="2026-11-04")

    rows = run_async(main)

    assert [r["interactions"].value for r in rows] == [3, 0, 1]


# --- export batches --------------------------------------------------------------------------

DECISIONS = [
    ("Where is my parcel?", "It left our warehouse today.", ""),
    ("¿Puedo devolver unas botas usadas?", "Sí, en 30 días.", "Sí, dentro de 30 días."),
    ("Can I pay by invoice?", "No.", "Yes: companies can pay by invoice within 14 days."),
    ("Do you ship to Norway?", "Yes, in 3–5 days.", ""),
]


@pytest.fixture
def decided(settings, tmp_path):
    """`support-bot` with four decided items (two approved, two corrected): pairs to export,
    made through the review services. Files go to a temporary MEDIA_ROOT."""
    from reviews import services as review_services
    from tests.factories import AgentFactory, ReviewItemFactory, UserFactory

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    agent = AgentFactory(slug="support-bot", domain="support")
    reviewer = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    for text_in, text_out, corrected in DECISIONS:
        ReviewItemFactory(
            interaction__agent=agent,
            interaction__input=text_in,
            interaction__output=text_out,
            interaction__domain="support",
        )
        item = review_services.item_claim(reviewer=reviewer)
        decision = review_services.decision_validate(
            item=item,
            verdict="correct" if corrected else "approve",
            corrected_output=corrected,
            error_category="incomplete" if corrected else None,
        )
        review_services.review_submit(item=item, reviewer=reviewer, decision=decision)
    return agent


def ready_batch(agent, fmt: str = "jsonl"):
    from retraining import services
    from retraining.models import ExportBatch

    batch = services.batch_request(agent=agent, format=fmt, actor=None, enqueue=False)
    services.batch_build(batch_id=batch.pk)
    batch = ExportBatch.objects.get(pk=batch.pk)
    assert batch.status == "ready"
    return batch


def test_download_batch_streams_the_file_and_checks_its_sha256(
    decided, server, ml_token, make_client, tmp_path
):
    batch = ready_batch(decided)
    reader = make_client(server, ml_token)

    meta = reader.batch(batch.pk)
    path = reader.download_batch(batch.pk, tmp_path / "train.jsonl")

    assert meta.ready and meta.sha256 == batch.sha256 and meta.row_count == 4
    assert meta.agent == "support-bot" and meta.format == "jsonl"
    assert path == tmp_path / "train.jsonl"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == batch.sha256
    assert data.decode().count("\n") == 4 and "¿Puedo devolver" in data.decode()
    assert [b.id for b in reader.batches(agent="support-bot")] == [batch.pk]

    into_dir = reader.download_batch(batch.pk, tmp_path)  # the server's file name
    assert into_dir == tmp_path / f"support-bot-jsonl-batch-{batch.pk}.jsonl"
    assert into_dir.read_bytes() == data


def test_a_file_that_does_not_match_its_sha256_is_not_kept(
    decided, server, ml_token, make_client, tmp_path, settings
):
    batch = ready_batch(decided, "csv")
    stored = Path(settings.MEDIA_ROOT) / batch.file.name
    content = bytearray(stored.read_bytes())
    content[-2] = ord("X") if content[-2] != ord("X") else ord("Y")  # same size, other bytes
    stored.write_bytes(bytes(content))
    out = tmp_path / "out"
    out.mkdir()

    reader = make_client(server, ml_token)
    with pytest.raises(ChecksumMismatch) as mismatch:
        reader.download_batch(batch.pk, out / "batch.csv")

    assert mismatch.value.expected == batch.sha256
    assert mismatch.value.actual == hashlib.sha256(content).hexdigest()
    assert list(out.iterdir()) == []  # no partial file, no temporary left behind


def test_request_wait_and_download_a_batch(decided, server, ml_token, make_client, tmp_path):
    """The ML engineer's whole flow over the API: request, follow, download (the build runs
    in the server, as Celery does in the embedded mode)."""
    reader = make_client(server, ml_token)

    requested = reader.request_batch("support-bot", "openai", filters={"sources": ["correct"]})
    wait_for(lambda: reader.batch(requested.id).ready)
    ready = reader.batch(requested.id)
    path = reader.download_batch(requested.id, tmp_path / "openai.jsonl")

    assert requested.already_existed is False
    assert ready.row_count == 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ready.sha256
    again = reader.request_batch("support-bot", "openai", filters={"sources": ["correct"]})
    assert (again.id, again.already_existed) == (requested.id, True)


def test_a_batch_that_is_not_ready_is_not_downloaded(
    decided, server, ml_token, make_client, tmp_path
):
    from retraining import services

    queued = services.batch_request(agent=decided, format="jsonl", actor=None, enqueue=False)
    reader = make_client(server, ml_token)

    with pytest.raises(BatchNotReady) as not_ready:
        reader.download_batch(queued.pk, tmp_path / "x.jsonl")

    assert not_ready.value.status == "queued"
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(ApiError) as missing:
        reader.batch(999_999)
    assert missing.value.status == 404


def test_async_download_batch(decided, server, ml_token, tmp_path):
    batch = ready_batch(decided, "parquet")

    async def main():
        async with async_client(server, ml_token) as reader:
            return await reader.download_batch(batch.pk, tmp_path)

    path = run_async(main)

    assert path.name.endswith(".parquet")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == batch.sha256
