"""Alerts raised and resolved from KPI snapshots, and their webhook deliveries
(kpis/alerts.py)."""

import json
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.utils import timezone

from kpis import alerts, services
from kpis.models import Alert, AlertDelivery, KpiSnapshot
from tests import factories
from tests.kpis.conftest import NOW

NOV2, NOV4, NOV5 = (date(2026, 11, d) for d in (2, 4, 5))


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
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (1, 0)
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (0, 0)
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
    alerts.alerts_evaluate(agent=watched, now=NOW)
    set_resolution(watched, 9, 10, day=NOV4)  # the 7 days now hold 12 of 20
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (0, 0)
    set_resolution(watched, 19, 20, day=NOV4)  # 22 of 30 = 0.733
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (0, 1)
    alert = Alert.objects.get(agent=watched)
    assert alert.resolved_at == NOW
    assert alert.resolved_value == pytest.approx(22 / 30)
    # crossing again raises a new alert
    set_resolution(watched, 0, 30, day=NOV4)
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (1, 0)
    assert Alert.objects.filter(agent=watched).count() == 2


def test_it_keeps_an_alert_open_while_there_is_too_little_data(watched):
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    set_resolution(watched, 4, 4)  # all good, but 4 < min_n
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (0, 0)
    assert Alert.objects.get(agent=watched).resolved_at is None


def test_it_looks_only_at_the_last_days_of_the_threshold(watched):
    set_resolution(watched, 0, 50, day=NOV5 - timedelta(days=7))  # 8 days ago: outside
    set_resolution(watched, 10, 10)
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (0, 0)


def test_it_resolves_the_alert_of_a_removed_threshold(watched):
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    watched.alert_thresholds = {}
    watched.save()
    assert alerts.alerts_evaluate(agent=watched, now=NOW) == (0, 1)


def test_it_raises_nothing_when_a_concurrent_run_raised_it_first(watched):
    set_resolution(watched, 3, 10)
    value = alerts.period_value(watched.pk, "resolution_rate", NOV5, NOV5)
    assert alerts._alert_raise(watched, "resolution_rate", {"below": 0.7}, value)
    assert not alerts._alert_raise(watched, "resolution_rate", {"below": 0.7}, value)
    assert Alert.objects.filter(agent=watched).count() == 1


def test_it_alerts_on_the_median_time_to_review(dataset):
    dataset.agent.alert_thresholds = {"median_time_to_review": {"above": 3600, "days": 7}}
    dataset.agent.save()
    services.kpis_recompute(agent_ids=[dataset.agent.pk], since=NOV2, now=NOW)
    # decided in the week: 30 min, 60 min, 48 h → median 60 min, not above 3600 s
    assert not Alert.objects.filter(agent=dataset.agent).exists()
    dataset.agent.alert_thresholds = {"median_time_to_review": {"above": 3000, "days": 7}}
    dataset.agent.save()
    assert alerts.alerts_evaluate(agent=dataset.agent, now=NOW) == (1, 0)
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
        alerts.alerts_evaluate(agent=watched, now=NOW)
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
    alerts.alerts_evaluate(agent=watched, now=NOW)
    delivery = AlertDelivery.objects.get()
    delivery = alerts.delivery_attempt(delivery_id=delivery.pk)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("pending", 1, 503)
    assert delivery.last_error == "HTTP 503"
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=25)
    assert alerts.delivery_attempt(delivery_id=delivery.pk) is None  # not due yet
    later = delivery.next_attempt_at + timedelta(seconds=1)
    assert alerts.deliveries_due(now=later) == [delivery.pk]
    delivery = alerts.delivery_attempt(delivery_id=delivery.pk, now=later)
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert len(receiver.requests) == 2


def test_it_gives_up_after_the_last_attempt(watched, hook, settings):
    hook(500, 500, 500)
    settings.KPI_ALERT_WEBHOOK_ATTEMPTS = 2
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    delivery = AlertDelivery.objects.get()
    alerts.delivery_attempt(delivery_id=delivery.pk)
    delivery = alerts.delivery_attempt(
        delivery_id=delivery.pk, now=timezone.now() + timedelta(days=1)
    )
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("failed", 2, None)


def test_it_does_not_retry_a_rejected_webhook(watched, hook):
    hook(404)
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    delivery = alerts.delivery_attempt(delivery_id=AlertDelivery.objects.get().pk)
    assert (delivery.state, delivery.last_status, delivery.last_error) == (
        "failed",
        404,
        "HTTP 404",
    )


def test_it_times_out_a_slow_webhook_and_retries_it(watched, hook, settings):
    hook(delay=3)
    settings.KPI_ALERT_WEBHOOK_TIMEOUT = 1
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    started = time.monotonic()
    delivery = alerts.delivery_attempt(delivery_id=AlertDelivery.objects.get().pk)
    assert time.monotonic() - started < 2.5
    assert delivery.state == "pending"
    assert "timed out" in delivery.last_error.lower() or "timeout" in delivery.last_error.lower()


def test_it_posts_the_resolution_too(watched, hook):
    receiver = hook()
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    set_resolution(watched, 10, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    assert alerts.deliveries_retry_due() == 2
    assert [r["body"]["event"] for r in receiver.requests] == ["alert.raised", "alert.resolved"]


def test_it_records_no_delivery_without_a_webhook_url(watched, settings):
    settings.KPI_ALERT_WEBHOOK_URL = ""
    set_resolution(watched, 3, 10)
    alerts.alerts_evaluate(agent=watched, now=NOW)
    assert not AlertDelivery.objects.exists()
