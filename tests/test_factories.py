"""The factories of tests/factories.py: one per model, and every trait makes a valid row."""

import factory
import pytest
from django.apps import apps
from django.utils import timezone

from accounts.models import ApiToken
from tests import factories

PROJECT_APPS = ("core", "accounts", "agents", "reviews", "retraining", "kpis")
FACTORIES = {
    cls._meta.model: cls
    for cls in vars(factories).values()
    if isinstance(cls, type)
    and issubclass(cls, factory.django.DjangoModelFactory)
    and cls._meta.model is not None
}
TRAITS = sorted(
    (cls.__name__, name)
    for cls in FACTORIES.values()
    for name, declaration in cls._meta.parameters.items()
    if isinstance(declaration, factory.Trait)
)


def test_it_has_a_factory_for_every_model_of_the_project():
    models = {m for name in PROJECT_APPS for m in apps.get_app_config(name).get_models()}
    missing = sorted(m.__name__ for m in models - set(FACTORIES))
    assert missing == []


@pytest.mark.parametrize("model", sorted(FACTORIES, key=lambda m: m.__name__), ids=str)
def test_it_makes_a_valid_row_by_default(db, model):
    row = FACTORIES[model]()
    row.validate_constraints()  # the database checked them on insert too
    assert model.objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize(("factory_name", "trait"), TRAITS, ids=[f"{f}.{t}" for f, t in TRAITS])
def test_it_makes_a_valid_row_with_each_trait(db, factory_name, trait):
    row = getattr(factories, factory_name)(**{trait: True})
    row.validate_constraints()  # the database checked them on insert too
    assert type(row).objects.filter(pk=row.pk).exists()


def test_it_gives_a_claimed_item_a_holder_and_a_live_lease(db):
    item = factories.ReviewItemFactory(claimed=True)
    assert item.status == "claimed" and item.claimed_by.groups.filter(name="reviewer").exists()
    assert item.lease_expires_at > timezone.now()


def test_it_gives_a_decided_item_its_verdict_and_time(db):
    item = factories.ReviewItemFactory(done=True, final_verdict="reject")
    assert (item.status, item.final_verdict) == ("done", "reject")
    assert item.decided_at is not None


def test_it_gives_a_correction_its_corrected_output(db):
    assert factories.ReviewFactory(corrected=True).corrected_output == "A better answer."
    assert factories.ReviewFactory(verdict="correct", corrected_output="Mine").corrected_output == (
        "Mine"
    )
    assert factories.ReviewFactory().corrected_output == ""


def test_it_makes_pairs_like_the_decision_does(db):
    pair = factories.TrainingPairFactory(corrected=True)
    assert (pair.item.status, pair.item.final_verdict) == ("done", "correct")
    assert (pair.output, pair.rejected_output) == (
        "A better answer.",
        "You can return an item within 30 days.",
    )
    again = factories.TrainingPairFactory(corrected=True)
    assert again.content_hash == pair.content_hash  # same input and output


def test_it_keeps_a_batch_and_its_pairs_on_one_agent(db):
    held = factories.BatchPairFactory()
    assert held.pair.agent_id == held.batch.agent_id


def test_it_makes_unique_feedback_events(db):
    interaction = factories.InteractionFactory()
    first = factories.FeedbackEventFactory(interaction=interaction)
    second = factories.FeedbackEventFactory(interaction=interaction)
    assert first.dedupe_key != second.dedupe_key
    assert first.agent == second.agent == interaction.agent


def test_it_makes_tokens_whose_secret_is_known(db):
    token = factories.ApiTokenFactory()
    assert ApiToken.objects.get(key_hash=ApiToken.hash_key(token.secret)) == token
    assert factories.ApiTokenFactory(revoked=True).revoked_at is not None
