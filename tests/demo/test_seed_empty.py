"""`seed_demo` on an empty database (and one that is not): these tests seed their own, small
demo (at least the record indexes of every hand-written special)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agents.models import Interaction
from demo.seed import demo_seed
from reviews.models import Review
from tests.demo.conftest import FAST_HASHING, seed
from tests.factories import AgentFactory, InteractionFactory

N = 150


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = FAST_HASHING
    settings.MEDIA_ROOT = tmp_path / "media"  # the demo builds export batches
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"


def test_it_skips_with_if_empty_when_interactions_exist(db):
    InteractionFactory()

    output = seed("--if-empty", n=N)

    assert "not seeding" in output
    assert Interaction.objects.count() == 1
    assert not get_user_model().objects.filter(username="lena").exists()


def test_it_seeds_an_empty_database_with_if_empty(db):
    output = seed("--if-empty", n=N)

    assert Interaction.objects.count() == N
    assert Review.objects.exists()
    assert "Review history (replayed now)" in output


def _history() -> list[tuple]:
    return sorted(
        Review.objects.values_list(
            "item__interaction__external_id", "reviewer__username", "verdict", "created_at"
        )
    )


def test_it_replays_the_same_history_from_the_same_seed_and_moment(db):
    now = timezone.now()
    savepoint = transaction.savepoint()
    demo_seed(interactions=N, now=now)
    first = _history()
    transaction.savepoint_rollback(savepoint)
    assert not Review.objects.exists()

    demo_seed(interactions=N, now=now)

    assert first and _history() == first


def test_it_replays_no_reviews_into_traffic_it_did_not_bring(db):
    """A decision must come after its item arrived: into an existing demo agent's traffic
    the seed only adds what is missing."""
    InteractionFactory(agent=AgentFactory(slug="legal-bot"))

    output = seed(n=N)

    assert Interaction.objects.count() == N + 1
    assert not Review.objects.exists()
    assert "Review history (kept as it was): 0 reviews" in output
