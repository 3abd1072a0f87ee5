"""factory_boy factories for the domain models."""

from datetime import UTC, datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.models import ReviewerProfile
from agents.models import Agent, Interaction
from reviews.models import ReviewItem


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for name in extracted or ():
            self.groups.add(Group.objects.get_or_create(name=name)[0])

    @factory.post_generation
    def domains(self, create, extracted, **kwargs):
        if extracted is not None:
            ReviewerProfile.objects.update_or_create(
                user=self, defaults={"domains": list(extracted)}
            )


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"agent-{n}")
    name = factory.LazyAttribute(lambda a: a.slug.replace("-", " ").title())
    kind = Agent.Kind.CHAT
    domain = "support"
    audit_rate = 0.0


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    agent = factory.SubFactory(AgentFactory)
    external_id = factory.Sequence(lambda n: f"t-{n}")
    agent_version = "v1"
    input = "What's your return policy?"
    output = "You can return an item within 30 days."
    confidence = 0.5
    domain = "support"
    created_at = factory.LazyFunction(lambda: datetime(2026, 11, 20, 10, 0, tzinfo=UTC))


class ReviewItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewItem

    interaction = factory.SubFactory(InteractionFactory)
    agent = factory.LazyAttribute(lambda i: i.interaction.agent)
    domain = factory.LazyAttribute(lambda i: i.interaction.domain or i.interaction.agent.domain)
    confidence = factory.LazyAttribute(lambda i: i.interaction.confidence)
    source_created_at = factory.LazyAttribute(lambda i: i.interaction.created_at)
    reason = ReviewItem.Reason.LOW_CONFIDENCE
