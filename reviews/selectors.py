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
