"""The comparison lease sweep as a Celery task: called directly (twice), scheduled by beat,
and once on a real worker against Redis."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from evals import claims
from evals.models import Comparison
from evals.tasks import expire_comparison_leases
from tests.conftest import wait_for
from tests.evals.factories import ComparisonFactory


def claimed_and_expired(reviewer) -> Comparison:
    ComparisonFactory()
    comparison = claims.comparison_claim(reviewer=reviewer)
    assert comparison is not None
    Comparison.objects.filter(pk=comparison.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=5)
    )
    return comparison


@pytest.mark.django_db
def test_it_expires_comparison_leases_idempotently(reviewer):
    comparison = claimed_and_expired(reviewer)
    assert expire_comparison_leases() == 1
    assert expire_comparison_leases() == 0
    assert Comparison.objects.get(pk=comparison.pk).status == "pending"


def test_it_schedules_the_comparison_lease_sweep_periodically():
    entry = settings.CELERY_BEAT_SCHEDULE["evals.expire-comparison-leases"]
    assert entry["task"] == expire_comparison_leases.name
    assert entry["schedule"] == settings.LEASE_SWEEP_SECONDS


@pytest.mark.redis
@pytest.mark.celery_worker
def test_it_expires_comparison_leases_on_a_real_worker(celery_worker, reviewer):
    comparison = claimed_and_expired(reviewer)
    expire_comparison_leases.delay()
    wait_for(lambda: Comparison.objects.get(pk=comparison.pk).status == "pending")
    assert Comparison.objects.get(pk=comparison.pk).claimed_by is None


@pytest.mark.django_db
def test_the_embedded_periodic_runner_sweeps_comparisons_too(reviewer):
    from django.core.management import call_command

    comparison = claimed_and_expired(reviewer)
    call_command("run_periodic", "--once")
    assert Comparison.objects.get(pk=comparison.pk).status == "pending"
