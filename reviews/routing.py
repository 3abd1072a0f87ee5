"""Which interactions go to review, and why. Pure functions: no database access, except
`Policy.of`, which reads the agent's review deadlines once per import (one query).

Routing runs inside the ingest transaction (ingest/services.py), so an interaction and its
ReviewItem are written together or not at all.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import models

from agents.models import Agent
from reviews.deadlines import NO_RULES, DeadlineRules, item_due
from reviews.models import Deadline, ReviewItem

Reason = ReviewItem.Reason


@dataclass(frozen=True, slots=True)
class Policy:
    """The review policy of one agent, frozen for the duration of an import."""

    agent_id: int
    slug: str
    threshold: float
    audit_rate: float
    review_intents: frozenset[str]
    review_domains: frozenset[str]
    domain: str
    required_reviews: int
    # The review deadlines of its items (most of the time none: then nothing is computed).
    deadlines: DeadlineRules = NO_RULES

    @classmethod
    def of(cls, agent: Agent) -> "Policy":
        return cls(
            agent_id=agent.pk,
            slug=agent.slug,
            threshold=agent.confidence_threshold,
            audit_rate=agent.audit_rate,
            review_intents=frozenset(agent.review_intents or ()),
            review_domains=frozenset(agent.review_domains or ()),
            domain=agent.domain,
            required_reviews=agent.required_reviews,
            deadlines=deadline_rules(agent.pk),
        )

    def item_domain(self, domain: str) -> str:
        """The queue an item lands in: its own domain tag, else the agent's."""
        return domain or self.domain

    def item_due(
        self, item_domain: str, created: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """(near_at, due_at) of an item of `item_domain` routed at `created`; (None, None)
        when no deadline applies."""
        return item_due(self.deadlines, item_domain, created)


def deadline_rules(agent_id: int | None) -> DeadlineRules:
    """The deadlines that may apply to an agent's items (its own and every domain's), in one
    query; the domain rules of all agents are a handful of rows."""
    rows = Deadline.objects.filter(
        models.Q(agent_id=agent_id) | models.Q(agent__isnull=True)
    ).values_list("agent_id", "domain", "hours", "working_hours")
    return DeadlineRules.from_rows(rows, agent_id)


def audit_fraction(slug: str, external_id: str) -> float:
    """A number in [0, 1) fixed by (agent, external_id): re-imports sample the same items."""
    digest = hashlib.blake2b(f"{slug}\x1f{external_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def route(
    policy: Policy, *, external_id: str, confidence: float, intent: str, domain: str
) -> tuple[str, str] | None:
    """Returns (reason, detail) when the interaction needs review, else None.

    Rules come first (an admin said "always"), then low confidence, then the audit sample,
    which only ever applies to confident responses so that it is an unbiased view of them.
    """
    if intent and intent in policy.review_intents:
        return Reason.RULE, f"intent '{intent}' is always reviewed"
    if domain and domain in policy.review_domains:
        return Reason.RULE, f"domain '{domain}' is always reviewed"
    if confidence < policy.threshold:
        return (
            Reason.LOW_CONFIDENCE,
            f"confidence {confidence:.3f} < threshold {policy.threshold:.3f}",
        )
    if policy.audit_rate > 0 and audit_fraction(policy.slug, external_id) < policy.audit_rate:
        return Reason.AUDIT_SAMPLE, f"audit sample ({policy.audit_rate:.1%} of confident responses)"
    return None
