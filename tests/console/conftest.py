"""Fixtures of the console tests."""

import factory
import pytest

from tests.factories import AgentFactory, ReviewItemFactory


@pytest.fixture
def queued(db):
    """queued(n, domain="support", **fields) → n pending items of the agent `<domain>-bot`,
    in queue order: the i-th has confidence `confidence(i, n)`, by default 0, 1/(n+1), …"""

    def queued(n, domain="support", *, confidence=lambda i, n: i / (n + 1), **fields):
        return ReviewItemFactory.create_batch(
            n,
            interaction__agent=AgentFactory(slug=f"{domain}-bot", domain=domain),
            interaction__domain=domain,
            interaction__confidence=factory.Iterator([confidence(i, n) for i in range(n)]),
            **fields,
        )

    return queued
