"""Recompute (incremental, idempotent, overlapping runs) and runs (kpis/services.py).
Alerts and webhooks: test_alerts.py."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection

from kpis import services
from kpis.models import KpiCursor, KpiRun, KpiSnapshot
from tests import factories
from tests.kpis.conftest import NOW, at

NOV2, NOV3, NOV4, NOV5 = (date(2026, 11, d) for d in (2, 3, 4, 5))


def snapshot_map(agent):
    return {(s.agent_version, s.date): s.stats for s in KpiSnapshot.objects.filter(agent=agent)}


# --- recompute ----------------------------------------------------------------------------------


def test_it_reads_everything_on_the_first_run(dataset):
    result = services.kpis_recompute(now=NOW)
    assert result.scopes[dataset.agent.pk] >= {NOV2, NOV4, NOV5}
    assert (
        KpiSnapshot.objects.get(agent=dataset.agent, agent_version="", date=NOV2).stats[
            "interactions"
        ]
        == 6
    )


def test_it_recomputes_only_the_days_touched_since_the_last_run(dataset, settings):
    quiet = factories.AgentFactory(slug="quiet-bot")
    factories.InteractionFactory(agent=quiet, agent_version="v1", created_at=at(1, 9))
    services.kpis_recompute(now=NOW)

    factories.InteractionFactory(
        agent=quiet, agent_version="v1", created_at=at(3, 9)
    )  # a late arrival about 3 Nov
    scopes, _ = services.plan_incremental(now=NOW)
    assert scopes[quiet.pk] == {NOV3}
    # shop-bot has an open item: today and yesterday, whose backlog ages with the clock
    assert scopes[dataset.agent.pk] == {NOV4, NOV5}

    services.kpis_recompute(now=NOW)
    assert snapshot_map(quiet)[("", NOV3)]["interactions"] == 1
    # within the cursor overlap the rows are read again; after it, they are not
    assert quiet.pk in services.plan_incremental(now=NOW)[0]
    later = NOW + timedelta(seconds=settings.KPI_CURSOR_OVERLAP_SECONDS + 1)
    assert quiet.pk not in services.plan_incremental(now=later)[0]


def test_it_recomputes_the_day_of_the_response_when_a_review_arrives(dataset):
    services.kpis_recompute(now=NOW)
    item = factories.ReviewItemFactory(
        interaction=dataset.interactions["i5"],
        reason="feedback",
        created_at=at(4, 1),
        done=True,
        decided_at=at(5, 9),
    )
    factories.ReviewFactory(
        item=item, reviewer=dataset.reviewer, verdict="approve", created_at=at(5, 9)
    )
    scopes, _ = services.plan_incremental(now=NOW)
    # the response's day, 2 Nov (verdict rates); the day it was queued, 4 Nov (backlog);
    # the day of the review and the decision, 5 Nov
    assert scopes[dataset.agent.pk] == {NOV2, NOV4, NOV5}


def test_it_gives_the_same_snapshots_when_run_twice(dataset):
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV2, now=NOW)
    first = snapshot_map(dataset.agent)
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV2, now=NOW)
    assert snapshot_map(dataset.agent) == first
    assert KpiSnapshot.objects.filter(agent=dataset.agent).count() == len(first)


def test_it_deletes_the_rows_of_a_version_that_has_no_data_any_more(dataset):
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV2, now=NOW)
    assert ("v2", NOV4) in snapshot_map(dataset.agent)
    dataset.agent.interactions.filter(created_at__gte=at(4, 0)).update(agent_version="v3")
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV4, now=NOW)
    rows = snapshot_map(dataset.agent)
    assert ("v2", NOV4) not in rows
    assert rows[("v3", NOV4)]["interactions"] == 2
    assert ("v2", NOV2) in rows  # days outside the recompute are left alone


def test_it_moves_the_cursors_forward_only(dataset):
    services.kpis_recompute(now=NOW)
    cursor = KpiCursor.objects.get(source="interaction")
    top = cursor.last_id
    services._cursors_advance({"interaction": top - 3}, NOW - timedelta(minutes=1))
    cursor.refresh_from_db()
    assert cursor.last_id == top


def test_it_reads_again_over_the_overlap_for_rows_committed_late(settings):
    settings.KPI_CURSOR_OVERLAP_SECONDS = 600
    now = datetime(2026, 11, 5, 12, tzinfo=UTC)
    cursor = KpiCursor(
        source="interaction",
        last_id=300,
        history=[
            [services._stamp(now - timedelta(minutes=30)), 100],
            [services._stamp(now - timedelta(minutes=12)), 200],
            [services._stamp(now - timedelta(minutes=2)), 300],
        ],
    )
    # the newest run at least 10 minutes old saw up to id 200: ids above it are read again,
    # so a row with id 250 that committed after the run that saw 300 is not missed
    assert services.cursor_floor(cursor, now) == 200
    assert services.cursor_floor(None, now) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_makes_an_overlapping_run_wait_and_then_see_the_first_ones_data():
    import psycopg

    agent = factories.AgentFactory(slug="busy-bot")
    factories.InteractionFactory(agent=agent, agent_version="v1", created_at=at(2, 9))
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    # "the first run": holds the agent's lock and writes an interaction, not yet committed
    other.execute("SELECT pg_advisory_xact_lock(%s, %s)", [services.LOCK_SPACE, agent.pk])
    other.execute(
        "INSERT INTO reviews_interaction (agent_id, external_id, agent_version, "
        "conversation_id, input, context, output, confidence, intent, domain, metadata, "
        "created_at, ingested_at) VALUES (%s, 'late', 'v1', '', 'q', '[]', 'a', 0.5, '', '', "
        "'{}', %s, now())",
        [agent.pk, at(2, 10)],
    )
    done = threading.Event()

    def second_run():
        try:
            services.agent_recompute(agent_id=agent.pk, days={NOV2}, now=NOW)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=second_run)
    thread.start()
    assert not done.wait(1.0)  # waits for the lock
    other.commit()
    other.close()
    assert done.wait(20)
    thread.join()
    stats = KpiSnapshot.objects.get(agent=agent, agent_version="", date=NOV2).stats
    assert stats["interactions"] == 2


# --- runs -----------------------------------------------------------------------------------------


def test_it_shows_the_active_run_instead_of_queuing_another(lead):
    first, created = services.run_request(trigger=KpiRun.Trigger.BUTTON, user=lead, enqueue=False)
    again, created_again = services.run_request(
        trigger=KpiRun.Trigger.BUTTON, user=lead, enqueue=False
    )
    assert created and not created_again
    assert again.pk == first.pk


def test_it_records_a_runs_progress_and_outcome(dataset, lead):
    run, _ = services.run_request(trigger=KpiRun.Trigger.BUTTON, user=lead, enqueue=False)
    run = services.run_execute(run_id=run.pk)
    assert run.state == KpiRun.State.DONE
    # one chunk: six aggregates and the write
    assert (run.done_steps, run.total_steps) == (7, 7)
    assert run.days >= 3 and run.rows > 0
    assert run.percent == 100
    # a redelivered task finds it done and does nothing
    assert services.run_execute(run_id=run.pk).finished_at == run.finished_at


def test_it_records_a_failed_run(dataset, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "kpis_recompute", boom)
    run, _ = services.run_request(trigger=KpiRun.Trigger.COMMAND, enqueue=False)
    with pytest.raises(RuntimeError):
        services.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.state == KpiRun.State.FAILED
    assert run.error == "RuntimeError: database went away"


def test_it_takes_over_a_run_left_running_by_a_dead_worker(dataset, settings):
    settings.KPI_RUN_STALE_SECONDS = 60
    run = factories.KpiRunFactory(running=True)
    KpiRun.objects.filter(pk=run.pk).update(started_at=NOW - timedelta(days=1))
    assert services.run_execute(run_id=run.pk).state == KpiRun.State.DONE
