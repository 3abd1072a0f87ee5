"""Factories of the pairwise review queue's tests.

`ComparisonFactory` writes rows the way the creator does: the side order is drawn with
`secrets.randbits(1)` (never chosen by the test unless it says `a_on_left=`), and the number
of required reviews comes from the agent. It only writes rows: tests of the transitions go
through evals/services.py.
"""

import secrets

import factory

from evals.models import Comparison
from tests.factories import AgentFactory


def draw_a_on_left() -> bool:
    return bool(secrets.randbits(1))


class ComparisonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comparison

    agent = factory.SubFactory(
        AgentFactory, slug="support-bot", name="Support bot", domain="support"
    )
    kind = Comparison.Kind.VERSIONS
    domain = "support"
    input = factory.Sequence(lambda n: f"Question {n}: what is your return policy?")
    context = factory.LazyFunction(list)
    answer_a = factory.Sequence(lambda n: f"First stored answer {n}")
    version_a = "v1"
    answer_b = factory.Sequence(lambda n: f"Second stored answer {n}")
    version_b = "v2"
    a_on_left = factory.LazyFunction(draw_a_on_left)
    required_reviews = factory.LazyAttribute(lambda c: c.agent.required_reviews)


def comparisons_make(n: int, **fields) -> list[Comparison]:
    """`n` comparisons of the support bot, each with its own drawn side order."""
    return [ComparisonFactory(**fields) for _ in range(n)]
