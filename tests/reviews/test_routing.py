"""Routing decisions, pure: each reason, precedence, and the deterministic audit sample."""

from reviews.models import ReviewItem
from reviews.routing import Policy, audit_fraction, route

Reason = ReviewItem.Reason


def policy(**changes) -> Policy:
    values = dict(
        agent_id=1,
        slug="bot",
        threshold=0.7,
        audit_rate=0.0,
        review_intents=frozenset(),
        review_domains=frozenset(),
        domain="support",
        required_reviews=1,
    )
    values.update(changes)
    return Policy(**values)


def decide(
    p: Policy, confidence: float, external_id: str = "t-1", intent: str = "", domain: str = ""
):
    return route(p, external_id=external_id, confidence=confidence, intent=intent, domain=domain)


def test_it_queues_below_the_threshold():
    assert decide(policy(), 0.69)[0] == Reason.LOW_CONFIDENCE


def test_it_does_not_queue_at_or_above_the_threshold_without_sampling():
    assert decide(policy(), 0.7) is None
    assert decide(policy(), 0.99) is None


def test_it_queues_always_reviewed_intents_and_domains():
    p = policy(review_intents=frozenset({"refund"}), review_domains=frozenset({"legal"}))
    assert decide(p, 0.99, intent="refund")[0] == Reason.RULE
    assert decide(p, 0.99, domain="legal")[0] == Reason.RULE
    assert "refund" in decide(p, 0.99, intent="refund")[1]


def test_it_prefers_a_rule_over_low_confidence():
    p = policy(review_intents=frozenset({"refund"}))
    assert decide(p, 0.1, intent="refund")[0] == Reason.RULE


def test_it_samples_the_audit_rate_of_confident_items():
    p = policy(audit_rate=0.1)
    sampled = [i for i in range(20_000) if decide(p, 0.95, external_id=f"t-{i}")]
    assert 0.09 < len(sampled) / 20_000 < 0.11
    assert all(
        decide(p, 0.95, external_id=f"t-{i}")[0] == Reason.AUDIT_SAMPLE for i in sampled[:50]
    )


def test_it_samples_deterministically_by_external_id():
    assert audit_fraction("bot", "t-42") == audit_fraction("bot", "t-42")
    assert audit_fraction("bot", "t-42") != audit_fraction("other-bot", "t-42")
    p = policy(audit_rate=0.5)
    first = [decide(p, 0.9, external_id=f"t-{i}") for i in range(100)]
    assert first == [decide(p, 0.9, external_id=f"t-{i}") for i in range(100)]


def test_it_never_samples_with_a_zero_audit_rate():
    assert all(decide(policy(audit_rate=0), 0.9, external_id=f"t-{i}") is None for i in range(1000))
