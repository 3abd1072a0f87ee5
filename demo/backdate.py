"""The demo's history clock: puts what the replay wrote at the moments it stands for.

The services stamp their rows with the real time (`auto_now_add`, `timezone.now()`,
PostgreSQL's `now()`), which is right for real work. `demo.history` replays four weeks of
reviews in seconds through those same services, so it notes the simulated moment of each
step here and, when the replay is over, `apply()` moves the stamps there.

Only time columns are written: `created_at`, `updated_at`, `decided_at`, `ingested_at`, an
item's deadline times (`due_at`, `sla_near_at`) and a batch's `started_at` / `finished_at` /
`heartbeat_at`. Never a status or state field (those
move only through `core.transitions`; tests/core/test_transitions.py checks that nothing else
writes one), and only rows this replay created or moved: ids above the marks taken when the
clock started, or rows the services handed back.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Case, F, Max, Model, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce

from agents.models import FeedbackEvent, Interaction
from core.models import AuditEvent
from retraining.models import ExportBatch, TrainingPair
from reviews.deadlines import item_due
from reviews.models import Review, ReviewItem
from reviews.routing import deadline_rules

# How long after an interaction the pipeline delivered it (and routing queued it).
INGEST_LAG = timedelta(minutes=2)
_CHUNK = 200  # CASE branches per UPDATE


def _top(model: type[Model]) -> int:
    return model._base_manager.aggregate(top=Max("pk"))["top"] or 0


# The only columns `_set_times` writes.
TIME_COLUMNS = frozenset({"created_at", "updated_at", "decided_at"})


def _set_times(model: type[Model], column: str, moments: dict[int, datetime]) -> None:
    """Sets one time column of many rows (id → moment), one statement per chunk. Not
    `bulk_update`: it builds a CASE branch per row, about a millisecond each, the longest
    part of the demo after the reviews themselves. Portable SQL (a CTE of VALUES and a
    correlated subquery), the same on PostgreSQL and SQLite."""
    if column not in TIME_COLUMNS:
        raise ValueError(f"{column!r} is not a time column")
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    target = quote(model._meta.get_field(column).column)
    stamp = "CAST(%s AS timestamptz)" if connection.vendor == "postgresql" else "%s"
    rows = sorted(moments.items())
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            values = ", ".join([f"(CAST(%s AS bigint), {stamp})"] * len(part))
            cursor.execute(
                f"WITH moments (id, at) AS (VALUES {values}) "
                f"UPDATE {table} SET {target} = "
                f"(SELECT at FROM moments WHERE moments.id = {table}.id) "
                f"WHERE id IN (SELECT id FROM moments)",
                [v for pk, at in part for v in (pk, connection.ops.adapt_datetimefield_value(at))],
            )


class HistoryClock:
    """Collects (row, simulated moment) while the replay runs; `apply()` writes them."""

    def __init__(self) -> None:
        self._marks = {m: _top(m) for m in (AuditEvent, ReviewItem, Interaction)}
        self._audited = self._marks[AuditEvent]
        self._audit: list[tuple[int, int, datetime]] = []  # (after id, up to id, moment)
        self._reviews: dict[int, datetime] = {}
        self._touched: dict[int, datetime] = {}  # item → its last move
        self._decided: dict[int, datetime] = {}
        self._pairs: dict[int, datetime] = {}
        # item → the moments of its audit events, in order (see `decision`)
        self._item_events: dict[int, list[datetime]] = defaultdict(list)

    def at(self, moment: datetime) -> None:
        """Everything audited since the previous call happened at `moment` (the moves of
        review items are then dated one by one, from what `decision` noted)."""
        top = _top(AuditEvent)
        if top > self._audited:
            self._audit.append((self._audited, top, moment))
            self._audited = top

    def decision(self, outcome: Any, moment: datetime, *, claimed: datetime | None = None) -> None:
        """A `reviews.services.Outcome` made at `moment`: a review (the item was claimed at
        `claimed`, then moved: two audit events) or an adjudication (one event)."""
        self._reviews[outcome.review.pk] = moment
        self._touched[outcome.item.pk] = moment
        if outcome.status == ReviewItem.Status.DONE:
            self._decided[outcome.item.pk] = moment
        if outcome.pair is not None:
            self._pairs[outcome.pair.pk] = moment
        if not outcome.review.is_adjudication:
            self._item_events[outcome.item.pk].append(claimed or moment)
        self._item_events[outcome.item.pk].append(moment)

    def batch_requested(self, batch: ExportBatch, moment: datetime) -> None:
        """Right after the request, before the build: the manifest records `created_at`."""
        ExportBatch.objects.filter(pk=batch.pk).update(created_at=moment)
        self.at(moment)

    def batch_built(self, batch: ExportBatch, moment: datetime, seconds: float) -> None:
        """The build's own times (the manifest's `built_at` stays the real one: the file is
        not rewritten)."""
        done = moment + timedelta(seconds=seconds)
        ExportBatch.objects.filter(pk=batch.pk).update(
            started_at=moment, finished_at=done, heartbeat_at=done
        )
        self.at(done)

    def apply(self) -> None:
        """Writes the collected moments; call once, after the replay."""
        self._queue_times()
        self._due_times()
        _set_times(Review, "created_at", self._reviews)
        _set_times(ReviewItem, "updated_at", self._touched)
        _set_times(ReviewItem, "decided_at", self._decided)
        _set_times(TrainingPair, "created_at", self._pairs)
        for start in range(0, len(self._audit), _CHUNK):
            ranges = self._audit[start : start + _CHUNK]
            AuditEvent.objects.filter(pk__gt=ranges[0][0], pk__lte=ranges[-1][1]).update(
                created_at=Case(
                    *(When(pk__gt=lo, pk__lte=hi, then=Value(at)) for lo, hi, at in ranges),
                    default=F("created_at"),
                )
            )
        # Each item's claims and moves, in the order they happened: its events in id order.
        pending = {item: iter(moments) for item, moments in self._item_events.items()}
        events = AuditEvent.objects.filter(
            pk__gt=self._marks[AuditEvent], target_type="review_item"
        ).order_by("pk")
        dated = {
            pk: at
            for pk, item in events.values_list("pk", "target_id")
            if item in pending and (at := next(pending[item], None)) is not None
        }
        _set_times(AuditEvent, "created_at", dated)

    def _due_times(self) -> None:
        """Review deadlines run from the moment an item was queued: its due time moves with
        its queue time (reviews.deadlines), so the demo's older open items are overdue."""
        new = ReviewItem.objects.filter(pk__gt=self._marks[ReviewItem], due_at__isnull=False)
        rules: dict[int, Any] = {}
        moved = []
        for item in new.only("pk", "agent_id", "domain", "created_at"):
            if item.agent_id not in rules:
                rules[item.agent_id] = deadline_rules(item.agent_id)
            item.sla_near_at, item.due_at = item_due(
                rules[item.agent_id], item.domain, item.created_at
            )
            moved.append(item)
        ReviewItem.objects.bulk_update(moved, ["sla_near_at", "due_at"], batch_size=_CHUNK)

    def _queue_times(self) -> None:
        """Interactions arrived shortly after they happened and were queued then; an item
        routed by negative feedback was queued when that feedback came in."""
        Interaction.objects.filter(pk__gt=self._marks[Interaction]).update(
            ingested_at=F("created_at") + INGEST_LAG
        )
        new = ReviewItem.objects.filter(pk__gt=self._marks[ReviewItem])
        new.exclude(reason=ReviewItem.Reason.FEEDBACK).update(
            created_at=F("source_created_at") + INGEST_LAG,
            updated_at=F("source_created_at") + INGEST_LAG,
        )
        complaint = (
            FeedbackEvent.objects.filter(
                interaction=OuterRef("interaction"), kind__in=FeedbackEvent.NEGATIVE
            )
            .order_by("created_at")
            .values("created_at")[:1]
        )
        queued = Coalesce(Subquery(complaint), F("source_created_at") + INGEST_LAG)
        new.filter(reason=ReviewItem.Reason.FEEDBACK).update(created_at=queued, updated_at=queued)
