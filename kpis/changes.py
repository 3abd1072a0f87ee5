"""What changed since the last KPI run: the (agent, day) pairs touched by rows above a
cursor, the highest ids, the agents whose backlog ages with the clock, and an agent's first
day. `services.py` plans its incremental and range runs from these; reads only.

Each query is a primary-key range scan (or an index lookup) and one GROUP BY, so a run that
finds little new costs little. Days are UTC dates.
"""

from __future__ import annotations

from datetime import date

from django.db.models import F, Max, Min

from agents.models import FeedbackEvent, Interaction
from kpis.periods import day_of, utc_day
from reviews.models import Review, ReviewItem

SOURCES = ("interaction", "feedback", "reviewitem", "review")


def touched_since(source: str, floor: int) -> tuple[set[tuple[int, date]], int]:
    """(agent, day) pairs whose statistics rows of `source` with an id above `floor` change,
    and the highest id seen (a primary-key range scan, then one GROUP BY)."""
    touched: set[tuple[int, date]] = set()
    top = floor
    if source == "interaction":
        rows = (
            Interaction.objects.filter(pk__gt=floor)
            .values("agent_id", d1=day_of("created_at"))
            .annotate(top=Max("pk"))
        )
    elif source == "feedback":
        rows = (
            FeedbackEvent.objects.filter(pk__gt=floor)
            .values("agent_id", d1=day_of("interaction__created_at"))
            .annotate(top=Max("pk"))
        )
    elif source == "reviewitem":
        # The response's day (review rate) and the day it was queued (backlog).
        rows = (
            ReviewItem.objects.filter(pk__gt=floor)
            .values("agent_id", d1=day_of("source_created_at"), d2=day_of("created_at"))
            .annotate(top=Max("pk"))
        )
    elif source == "review":
        # A review is written in the transaction that moves its item, so it stands for the
        # decision too: the response's day (verdict rates), the review's day (decisions,
        # agreement) and the decision's day (time to review, backlog).
        rows = (
            Review.objects.filter(pk__gt=floor)
            .values(
                agent_id=F("item__agent_id"),
                d1=day_of("item__source_created_at"),
                d2=day_of("created_at"),
                d3=day_of("item__decided_at"),
            )
            .annotate(top=Max("pk"))
        )
    else:
        raise ValueError(f"unknown source {source!r}")
    for row in rows.order_by():
        top = max(top, row["top"])
        for key in ("d1", "d2", "d3"):
            if row.get(key) is not None:
                touched.add((row["agent_id"], row[key]))
    return touched, top


def source_max_id(source: str) -> int:
    model = {
        "interaction": Interaction,
        "feedback": FeedbackEvent,
        "reviewitem": ReviewItem,
        "review": Review,
    }[source]
    return model.objects.aggregate(top=Max("pk"))["top"] or 0


def agents_with_open_items() -> set[int]:
    """Agents whose backlog changes with the clock alone (the age of the oldest item)."""
    return set(
        ReviewItem.objects.filter(decided_at__isnull=True)
        .values_list("agent_id", flat=True)
        .distinct()
        .order_by()
    )


def first_day(agent_id: int) -> date | None:
    first = Interaction.objects.filter(agent_id=agent_id).aggregate(m=Min("created_at"))["m"]
    queued = ReviewItem.objects.filter(agent_id=agent_id).aggregate(m=Min("created_at"))["m"]
    moments = [m for m in (first, queued) if m is not None]
    return utc_day(min(moments)) if moments else None
