"""Reads of the reviews app."""

from datetime import timedelta

from django.utils import timezone

from reviews.models import ApiToken

# last_used_at is refreshed at most this often, so authenticated requests do not each write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def token_authenticate(secret: str):
    """The active user behind a live token, or None. Records the use (coarsely)."""
    if not secret or len(secret) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash_key(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.user.api_token = token
    return token.user


def queue_overview() -> dict:
    """Open review items by agent and reason, and interaction totals, for the home page.
    Three aggregate queries whatever the data size."""
    from django.db.models import Count, Min

    from reviews.models import Agent, ReviewItem

    open_items = ReviewItem.objects.filter(status__in=ReviewItem.OPEN_STATUSES)
    by_agent = {
        row["agent"]: row
        for row in open_items.values("agent").annotate(n=Count("pk"), oldest=Min("created_at"))
    }
    by_reason = list(open_items.values("reason").annotate(n=Count("pk")).order_by("-n"))
    agents = []
    for agent in Agent.objects.order_by("slug"):
        row = by_agent.get(agent.pk, {})
        agents.append({"agent": agent, "open": row.get("n", 0), "oldest": row.get("oldest")})
    return {"agents": agents, "by_reason": by_reason, "total_open": sum(a["open"] for a in agents)}


def item_for_review(item_id: int):
    """An item with everything the review screen and the API show, in a fixed number of
    queries: the item with its interaction and agent (one join), and its reviews with their
    reviewers and categories (one more)."""
    from django.db.models import Prefetch

    from reviews.models import Review, ReviewItem

    return (
        ReviewItem.objects.select_related("interaction", "agent", "claimed_by", "assigned_to")
        .prefetch_related(
            Prefetch(
                "reviews",
                queryset=Review.objects.select_related("reviewer", "error_category").order_by(
                    "created_at", "pk"
                ),
            )
        )
        .filter(pk=item_id)
        .first()
    )


def interaction_payload(interaction) -> dict:
    return {
        "external_id": interaction.external_id,
        "agent_version": interaction.agent_version or None,
        "conversation_id": interaction.conversation_id or None,
        "input": interaction.input,
        "context": interaction.context,
        "output": interaction.output,
        "confidence": interaction.confidence,
        "intent": interaction.intent or None,
        "domain": interaction.domain or None,
        "resolved": interaction.resolved,
        "escalated": interaction.escalated,
        "sentiment": interaction.sentiment,
        "turns": interaction.turns,
        "metadata": interaction.metadata,
        "created_at": interaction.created_at.isoformat(),
    }


def review_payload(review) -> dict:
    return {
        "reviewer": review.reviewer.get_username(),
        "verdict": review.verdict,
        "corrected_output": review.corrected_output or None,
        "error_category": review.error_category.slug if review.error_category else None,
        "notes": review.notes,
        "created_at": review.created_at.isoformat(),
        "is_adjudication": review.is_adjudication,
    }


def item_payload(item) -> dict:
    """The API form of an item (POST /api/v1/queue/claim, GET /api/v1/items)."""
    return {
        "id": item.pk,
        "agent": item.agent.slug,
        "interaction": interaction_payload(item.interaction),
        "reason": item.reason,
        "reason_detail": item.reason_detail,
        "priority": item.priority,
        "status": item.status,
        "domain": item.domain,
        "required_reviews": item.required_reviews,
        "assigned_to": item.assigned_to.get_username() if item.assigned_to else None,
        "version": item.version,
        "previous_reviews": [review_payload(r) for r in item.reviews.all() if r.verdict != "skip"],
    }
