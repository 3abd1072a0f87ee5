"""Celery tasks of the reviews app: called directly (twice), and once on a real worker."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from core.models import AuditEvent
from reviews import services
from reviews.models import ReviewItem
from reviews.tasks import expire_leases
from tests.conftest import wait_for
from tests.factories import ReviewItemFactory


def claimed_and_expired(reviewer) -> ReviewItem:
    ReviewItemFactory(interaction__agent__domain="support", domain="support")
    item = services.item_claim(reviewer=reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=5)
    )
    return item


@pytest.mark.django_db
def test_it_expires_leases_idempotently(reviewer):
    item = claimed_and_expired(reviewer)
    assert expire_leases() == 1
    assert expire_leases() == 0
    item.refresh_from_db()
    assert item.status == "pending"
    assert AuditEvent.objects.filter(action="item.released", target_id=item.pk).count() == 1


def test_it_schedules_the_lease_sweep_periodically():
    entry = settings.CELERY_BEAT_SCHEDULE["reviews.expire-leases"]
    assert entry["task"] == expire_leases.name
    assert entry["schedule"] == settings.LEASE_SWEEP_SECONDS


@pytest.mark.redis
@pytest.mark.celery_worker
def test_it_expires_leases_on_a_real_worker(celery_worker, reviewer):
    item = claimed_and_expired(reviewer)
    expire_leases.delay()
    wait_for(lambda: ReviewItem.objects.get(pk=item.pk).status == "pending")
    assert ReviewItem.objects.get(pk=item.pk).claimed_by is None


@pytest.mark.django_db
def test_it_runs_the_periodic_tasks_in_process_for_the_embedded_mode(reviewer):
    from django.core.management import call_command

    item = claimed_and_expired(reviewer)
    call_command("run_periodic", "--once")
    assert ReviewItem.objects.get(pk=item.pk).status == "pending"
