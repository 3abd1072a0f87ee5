"""Sign-in records do not pile up: axes' log rows older than LOGIN_LOG_DAYS are swept, and
failed attempts past their cool-off are gone after the next login event."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.tasks import prune_login_logs
from tests.conftest import wait_for


def sign_in_and_age(client: Client, *, days: int) -> None:
    client.post("/accounts/login/", {"username": "rita", "password": "pw-for-tests"})
    AccessLog.objects.filter(attempt_time__gte=timezone.now() - timedelta(minutes=1)).update(
        attempt_time=timezone.now() - timedelta(days=days)
    )


@pytest.mark.django_db
def test_it_prunes_sign_in_logs_older_than_the_retention(reviewer, settings):
    settings.LOGIN_LOG_DAYS = 30
    sign_in_and_age(Client(REMOTE_ADDR="10.0.0.1"), days=31)
    sign_in_and_age(Client(REMOTE_ADDR="10.0.0.2"), days=29)
    assert AccessLog.objects.count() == 2
    assert prune_login_logs() == 1
    assert prune_login_logs() == 0
    assert list(AccessLog.objects.values_list("ip_address", flat=True)) == ["10.0.0.2"]


@pytest.mark.django_db
def test_expired_failed_attempts_go_at_the_next_login_event(reviewer, settings):
    Client(REMOTE_ADDR="10.0.0.1").post("/accounts/login/", {"username": "rita", "password": "x"})
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    Client(REMOTE_ADDR="10.0.0.9").post("/accounts/login/", {"username": "ann", "password": "y"})
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["ann"]


def test_it_schedules_the_sweep():
    assert (
        settings.CELERY_BEAT_SCHEDULE["accounts.prune-login-logs"]["task"] == prune_login_logs.name
    )


@pytest.mark.redis
@pytest.mark.celery_worker
def test_it_prunes_on_a_real_worker(celery_worker, reviewer, settings):
    sign_in_and_age(Client(REMOTE_ADDR="10.0.0.1"), days=settings.LOGIN_LOG_DAYS + 1)
    prune_login_logs.delay()
    wait_for(lambda: not AccessLog.objects.exists())
