"""Recompute (incremental, idempotent, overlapping runs), runs, alerts and webhooks."""

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from kpis import compute, services
from kpis.models import Alert, AlertDelivery, KpiCursor, KpiRun, KpiSnapshot
from tests import factories
from tests.kpis.conftest import NOW, at, make_interaction

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
    make_interaction(quiet, "v1", at(1, 9))
    services.kpis_recompute(now=NOW)

    make_interaction(quiet, "v1", at(3, 9))  # a late arrival about 3 Nov
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
    from tests.kpis.conftest import make_item, make_review

    item = make_item(
        dataset.interactions["i5"], reason="feedback", queued=at(4, 1), decided=at(5, 9)
    )
    make_review(item, dataset.reviewer, "approve", at(5, 9))
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
    make_interaction(agent, "v1", at(2, 9))
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
    run = KpiRun.objects.create(trigger=KpiRun.Trigger.BUTTON, state=KpiRun.State.RUNNING)
    KpiRun.objects.filter(pk=run.pk).update(started_at=NOW - timedelta(days=1))
    assert services.run_execute(run_id=run.pk).state == KpiRun.State.DONE


# --- alerts -------------------------------------------------------------------------------------


@pytest.fixture
def watched(db):
    agent = factories.AgentFactory(
        slug="watched-bot",
        alert_thresholds={"resolution_rate": {"below": 0.7, "days": 7, "min_n": 10}},
    )
    return agent


def set_resolution(agent, resolved: int, known: int, day: date = NOV5) -> None:
    KpiSnapshot.objects.update_or_create(
        agent=agent,
        agent_version="",
        date=day,
        defaults={"stats": {"interactions": known, "resolved": resolved, "resolved_n": known}},
    )


def test_it_raises_an_alert_once_when_a_kpi_crosses_its_threshold(watched):
    set_resolution(watched, 3, 10)
    assert services.alerts_evaluate(agent=watched, now=NOW) == (1, 0)
    assert services.alerts_evaluate(agent=watched, now=NOW) == (0, 0)
    alert = Alert.objects.get(agent=watched)
    assert (alert.kpi, alert.value, alert.n, alert.resolved_at) == (
        "resolution_rate",
        0.3,
        10,
        None,
    )
    assert alert.threshold == {"below": 0.7, "days": 7, "min_n": 10}


def test_it_resolves_the_alert_when_the_kpi_recovers(watched):
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    set_resolution(watched, 9, 10, day=NOV4)  # the 7 days now hold 12 of 20
    assert services.alerts_evaluate(agent=watched, now=NOW) == (0, 0)
    set_resolution(watched, 19, 20, day=NOV4)  # 22 of 30 = 0.733
    assert services.alerts_evaluate(agent=watched, now=NOW) == (0, 1)
    alert = Alert.objects.get(agent=watched)
    assert alert.resolved_at == NOW
    assert alert.resolved_value == pytest.approx(22 / 30)
    # crossing again raises a new alert
    set_resolution(watched, 0, 30, day=NOV4)
    assert services.alerts_evaluate(agent=watched, now=NOW) == (1, 0)
    assert Alert.objects.filter(agent=watched).count() == 2


def test_it_keeps_an_alert_open_while_there_is_too_little_data(watched):
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    set_resolution(watched, 4, 4)  # all good, but 4 < min_n
    assert services.alerts_evaluate(agent=watched, now=NOW) == (0, 0)
    assert Alert.objects.get(agent=watched).resolved_at is None


def test_it_looks_only_at_the_last_days_of_the_threshold(watched):
    set_resolution(watched, 0, 50, day=NOV5 - timedelta(days=7))  # 8 days ago: outside
    set_resolution(watched, 10, 10)
    assert services.alerts_evaluate(agent=watched, now=NOW) == (0, 0)


def test_it_resolves_the_alert_of_a_removed_threshold(watched):
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    watched.alert_thresholds = {}
    watched.save()
    assert services.alerts_evaluate(agent=watched, now=NOW) == (0, 1)


def test_it_raises_nothing_when_a_concurrent_run_raised_it_first(watched):
    set_resolution(watched, 3, 10)
    value = services.period_value(watched.pk, "resolution_rate", NOV5, NOV5)
    assert services._alert_raise(watched, "resolution_rate", {"below": 0.7}, value)
    assert not services._alert_raise(watched, "resolution_rate", {"below": 0.7}, value)
    assert Alert.objects.filter(agent=watched).count() == 1


def test_it_alerts_on_the_median_time_to_review(dataset):
    dataset.agent.alert_thresholds = {"median_time_to_review": {"above": 3600, "days": 7}}
    dataset.agent.save()
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV2, now=NOW)
    # decided in the week: 30 min, 60 min, 48 h → median 60 min, not above 3600 s
    assert not Alert.objects.filter(agent=dataset.agent).exists()
    dataset.agent.alert_thresholds = {"median_time_to_review": {"above": 3000, "days": 7}}
    dataset.agent.save()
    assert services.alerts_evaluate(agent=dataset.agent, now=NOW) == (1, 0)
    assert Alert.objects.get(agent=dataset.agent).value == 3600.0


# --- webhooks -----------------------------------------------------------------------------------


class Hook:
    """A local webhook receiver answering a scripted list of statuses (then 200)."""

    def __init__(self, statuses=(), delay: float = 0.0):
        self.statuses = list(statuses)
        self.delay = delay
        self.requests: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                time.sleep(hook.delay)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(settings):
    hooks = []

    def make(*statuses, delay=0.0):
        h = Hook(statuses, delay)
        hooks.append(h)
        settings.KPI_ALERT_WEBHOOK_URL = h.url
        settings.KPI_ALERT_WEBHOOK_BACKOFF_SECONDS = 30
        return h

    yield make
    for h in hooks:
        h.close()


def test_it_posts_a_raised_alert_to_the_webhook_after_commit(
    watched, hook, django_capture_on_commit_callbacks
):
    receiver = hook()
    set_resolution(watched, 3, 10)
    with django_capture_on_commit_callbacks(execute=True):
        services.alerts_evaluate(agent=watched, now=NOW)
    delivery = AlertDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    [request] = receiver.requests
    assert request["body"]["event"] == "alert.raised"
    assert request["body"]["agent"] == "watched-bot"
    assert request["body"]["value"] == 0.3
    assert "Resolution rate" in request["body"]["text"]
    assert request["headers"]["Idempotency-Key"] == f"coachdesk-alert-delivery-{delivery.pk}"


def test_it_retries_a_failing_webhook_with_backoff(watched, hook):
    receiver = hook(503)
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    delivery = AlertDelivery.objects.get()
    delivery = services.delivery_attempt(delivery_id=delivery.pk)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("pending", 1, 503)
    assert delivery.last_error == "HTTP 503"
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=25)
    assert services.delivery_attempt(delivery_id=delivery.pk) is None  # not due yet
    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert services.deliveries_due(now=later) == [delivery.pk]
    delivery = services.delivery_attempt(delivery_id=delivery.pk, now=later)
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert len(receiver.requests) == 2


def test_it_gives_up_after_the_last_attempt(watched, hook, settings):
    hook(500, 500, 500)
    settings.KPI_ALERT_WEBHOOK_ATTEMPTS = 2
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    delivery = AlertDelivery.objects.get()
    services.delivery_attempt(delivery_id=delivery.pk)
    delivery = services.delivery_attempt(
        delivery_id=delivery.pk, now=timezone.now() + timedelta(days=1)
    )
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 2, None)


def test_it_does_not_retry_a_rejected_webhook(watched, hook):
    hook(404)
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    delivery = services.delivery_attempt(delivery_id=AlertDelivery.objects.get().pk)
    assert (delivery.state, delivery.last_status, delivery.last_error) == (
        "failed",
        404,
        "HTTP 404",
    )


def test_it_times_out_a_slow_webhook_and_retries_it(watched, hook, settings):
    hook(delay=3)
    settings.KPI_ALERT_WEBHOOK_TIMEOUT = 1
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    started = time.monotonic()
    delivery = services.delivery_attempt(delivery_id=AlertDelivery.objects.get().pk)
    assert time.monotonic() - started < 2.5
    assert delivery.state == "pending"
    assert "timed out" in delivery.last_error.lower() or "timeout" in delivery.last_error.lower()


def test_it_posts_the_resolution_too(watched, hook):
    receiver = hook()
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    set_resolution(watched, 10, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    assert services.deliveries_retry_due() == 2
    assert [r["body"]["event"] for r in receiver.requests] == ["alert.raised", "alert.resolved"]


def test_it_records_no_delivery_without_a_webhook_url(watched, settings):
    settings.KPI_ALERT_WEBHOOK_URL = ""
    set_resolution(watched, 3, 10)
    services.alerts_evaluate(agent=watched, now=NOW)
    assert not AlertDelivery.objects.exists()


def test_it_counts_a_touched_day_per_source(dataset):
    touched, top = compute.touched_since("review", 0)
    agent = dataset.agent.pk
    # reviews: on 2 Nov about 2 Nov responses, and i3's (2 Nov response) on 4 Nov
    assert touched == {(agent, NOV2), (agent, NOV4)}
    assert top == max(r.pk for item in dataset.items.values() for r in item.reviews.all())
