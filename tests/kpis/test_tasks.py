"""The KPI tasks: called directly (twice), and the recompute on a real Celery worker."""

import pytest
from django.utils import timezone

from kpis import tasks
from kpis.models import KpiRun, KpiSnapshot
from tests import factories
from tests.conftest import wait_for
from tests.kpis.conftest import at


def test_it_schedules_the_recompute_from_a_setting(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["kpis.recompute"]
    assert entry["task"] == tasks.recompute.name
    assert entry["schedule"] == settings.KPI_RECOMPUTE_SECONDS
    assert settings.CELERY_BEAT_SCHEDULE["kpis.settle"]["task"] == tasks.settle.name
    retry = settings.CELERY_BEAT_SCHEDULE["kpis.deliver-due-alerts"]
    assert retry["task"] == tasks.deliver_due_alerts.name


def snapshots():
    # today's backlog age moves with the clock; every other value must not move
    today = timezone.now().date()
    return {(s.agent_version, s.date): s.stats for s in KpiSnapshot.objects.exclude(date=today)}


def test_it_recomputes_the_same_snapshots_when_the_task_runs_twice(dataset):
    tasks.recompute()
    first = snapshots()
    tasks.recompute()
    assert snapshots() == first and first
    runs = list(KpiRun.objects.order_by("pk"))
    assert [r.state for r in runs] == ["done", "done"]
    assert runs[0].trigger == "schedule"


def test_it_skips_the_scheduled_run_while_another_is_active(dataset):
    factories.KpiRunFactory(running=True)
    assert tasks.recompute() is None


def test_it_does_nothing_for_a_run_that_already_finished(dataset):
    run = factories.KpiRunFactory()
    assert tasks.run_recompute(run.pk) == "done"
    assert tasks.run_recompute(run.pk) == "done"
    assert KpiRun.objects.get(pk=run.pk).state == "done"


def test_it_settles_the_last_days(dataset, settings):
    settings.KPI_SETTLE_DAYS = 2
    run = KpiRun.objects.get(pk=tasks.settle())
    assert (run.state, run.mode) == ("done", "range")


@pytest.mark.redis
@pytest.mark.postgres  # the worker process must open the test database (not in-memory SQLite)
@pytest.mark.celery_worker
def test_it_recomputes_on_a_real_worker(fresh_celery_pool, celery_worker, lead):
    from kpis import services

    agent = factories.AgentFactory(slug="worker-bot")
    factories.InteractionFactory(
        agent=agent, agent_version="v1", created_at=at(2, 9), resolved=True
    )
    factories.InteractionFactory(
        agent=agent, agent_version="v1", created_at=at(2, 10), resolved=False
    )
    run, created = services.run_request(trigger=KpiRun.Trigger.BUTTON, user=lead)
    assert created
    done = wait_for(lambda: KpiRun.objects.filter(pk=run.pk, state="done").first(), timeout=60)
    assert done.days >= 1
    stats = KpiSnapshot.objects.get(agent=agent, agent_version="", date=at(2, 0).date()).stats
    assert (stats["interactions"], stats["resolved"], stats["resolved_n"]) == (2, 1, 2)
    # the periodic task too, through the broker
    tasks.recompute.delay()
    wait_for(lambda: KpiRun.objects.filter(trigger="schedule", state="done").exists(), timeout=60)
