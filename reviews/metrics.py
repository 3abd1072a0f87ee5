"""The queue figures shown on more than one page, defined once (issue 17).

The reviewer's queue (`reviews.selectors`), the console's workload page (`console.selectors`)
and the KPI snapshots (`kpis.stats`, `kpis.definitions`) all count with these, so the same
world gives the same numbers everywhere:

- **Open** (the backlog): an item not yet decided, i.e. pending, claimed, waiting for its
  second review or disputed (a dispute is still work: a lead's). `decided_at` is set exactly
  when an item becomes done (`reviews.services._decide`), so "open" is also
  `decided_at IS NULL`: the KPI backlog, which rebuilds past days from `decided_at`, counts
  the same items for today. What a reviewer may *claim* is narrower
  (`ReviewItem.OPEN_STATUSES`: pending and needs second review); the queue page counts that
  subset with the same age.
- **Age** of an item: now − `ReviewItem.created_at`, the time it entered the queue (not the
  interaction's `source_created_at`, which an import may back-date by months). The KPI time
  to review and backlog age use the same column, so they can be rebuilt for any past day.
  The oldest open item is the open item with the smallest `created_at`.
- **Reviewed today**: reviews (one per reviewer and item, adjudications included: a lead's
  final word is a decision) whose verdict is not a skip (a skip passes an item on without
  judging it), created since midnight **UTC**, the KPI day (`kpis.periods`), whatever the
  project's TIME_ZONE.

Only constants and `Q` builders here, so every layer above `reviews` may import it.
"""

from datetime import UTC, datetime

from django.db.models import Q
from django.utils import timezone

# Not the model's TextChoices: `kpis.definitions` is pure Python and mirrors these (a test in
# tests/reviews/test_metrics.py keeps the two equal).
BACKLOG_STATUSES = ("pending", "claimed", "needs_second_review", "disputed")
QUEUED_AT = "created_at"
NOT_REVIEWED_VERDICTS = ("skip",)
REVIEWED_VERDICTS = ("approve", "correct", "reject", "escalate")


def backlog_q(prefix: str = "") -> Q:
    """Open items (`prefix` e.g. "assigned_items__" when reached through a relation)."""
    return Q(**{f"{prefix}status__in": BACKLOG_STATUSES})


def reviewed_q(prefix: str = "") -> Q:
    """Reviews that count as reviewed (any day)."""
    return Q(**{f"{prefix}verdict__in": REVIEWED_VERDICTS})


def day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of `now`'s day (the KPI day), as an aware datetime."""
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def reviewed_today_q(now: datetime | None = None, prefix: str = "") -> Q:
    """Reviews that count as reviewed today (see the module docstring)."""
    return reviewed_q(prefix) & Q(**{f"{prefix}created_at__gte": day_start(now)})
