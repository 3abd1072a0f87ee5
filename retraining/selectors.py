"""Reads of the retraining app: what pairs are available, which ones a batch selects, the
rows of a batch in chunks, the batch list."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, date, datetime, time, timedelta
from itertools import batched
from typing import Any

import orjson
from django.core.paginator import Page, Paginator
from django.db import connections
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from agents.models import Agent, FeedbackEvent, Interaction
from retraining.models import BatchPair, ExportBatch, TrainingPair
from retraining.sources import writer_for  # registered datasets too
from reviews.models import ErrorCategory

Source = TrainingPair.Source


def _held_by_a_batch(exclude_batch_id: int | None = None) -> Exists:
    held = BatchPair.objects.filter(pair_id=OuterRef("pk"))
    if exclude_batch_id is not None:
        held = held.exclude(batch_id=exclude_batch_id)
    return Exists(held)


def _counts(qs: QuerySet, *group: str) -> QuerySet:
    return (
        qs.values(*group)
        .annotate(
            total=Count("pk"),
            approved=Count("pk", filter=Q(source=Source.APPROVE)),
            corrected=Count("pk", filter=Q(source=Source.CORRECT)),
            new=Count("pk", filter=~_held_by_a_batch()),
        )
        .order_by(*group)
    )


# --- The exports page --------------------------------------------------------------------------


def agents_overview() -> list[dict[str, Any]]:
    """Every agent with its pairs: total, approved, corrected, and new (in no batch yet),
    plus its latest batch. Agents without pairs are listed too (with zeros)."""
    counts = {row["agent_id"]: row for row in _counts(TrainingPair.objects.all(), "agent_id")}
    latest: dict[int, ExportBatch] = {}
    for batch in ExportBatch.objects.filter(
        pk__in=Subquery(
            ExportBatch.objects.values("agent_id")
            .annotate(last=Max("pk"))
            .values("last")
            .order_by()
        )
    ):
        latest[batch.agent_id] = batch
    empty = {"total": 0, "approved": 0, "corrected": 0, "new": 0}
    return [
        {
            "agent": agent,
            **{k: counts.get(agent.pk, empty)[k] for k in empty},
            "last_batch": latest.get(agent.pk),
        }
        for agent in Agent.objects.order_by("slug")
    ]


def agent_breakdown(agent: Agent) -> dict[str, Any]:
    """One agent's pairs by error category and by agent version (approved / corrected /
    new each), and its latest batch."""
    pairs = TrainingPair.objects.filter(agent=agent)
    names = dict(ErrorCategory.objects.values_list("pk", "name"))
    by_category = [
        {**row, "category": names.get(row["error_category_id"], "(none)")}
        for row in _counts(pairs, "error_category_id")
    ]
    by_category.sort(key=lambda row: (row["error_category_id"] is None, row["category"]))
    by_version = list(_counts(pairs, "agent_version"))
    by_version.sort(key=lambda row: row["agent_version"], reverse=True)
    return {
        "by_category": by_category,
        "by_version": by_version,
        "last_batch": ExportBatch.objects.filter(agent=agent).order_by("-pk").first(),
    }


def batches_page(*, agent: Agent | None = None, page: Any = 1, per_page: int = 20) -> Page:
    batches = ExportBatch.objects.select_related("agent", "created_by").order_by("-pk")
    if agent is not None:
        batches = batches.filter(agent=agent)
    return Paginator(batches, per_page).get_page(page)


def batches_recent(
    *, agent_slug: str | None = None, status: str | None = None, limit: int = 50
) -> list[ExportBatch]:
    batches = ExportBatch.objects.select_related("agent", "created_by").order_by("-pk")
    if agent_slug:
        batches = batches.filter(agent__slug=agent_slug)
    if status:
        batches = batches.filter(status=status)
    return list(batches[:limit])


def batch_get(pk: int) -> ExportBatch:
    """Raises ExportBatch.DoesNotExist. Every ML user sees every batch (team data)."""
    return ExportBatch.objects.select_related("agent", "created_by").get(pk=pk)


def agent_by_slug(slug: str) -> Agent | None:
    return Agent.objects.filter(slug=slug).first()


def agent_versions(agent: Agent) -> list[str]:
    return list(
        TrainingPair.objects.filter(agent=agent)
        .exclude(agent_version="")
        .values_list("agent_version", flat=True)
        .distinct()
        .order_by("-agent_version")
    )


# The build form lists the intents and domains of this many of the agent's latest pairs:
# a bounded read (the (agent, created_at) index backwards, then one primary-key lookup per
# pair) instead of a DISTINCT over every pair joined to its interaction on each page view.
TAGS_SAMPLE_PAIRS = 20_000
TAGS_LISTED = 200  # options per list at most (alphabetical)


def pair_tags(agent: Agent | None) -> dict[str, list[str]]:
    """The intents and domains of the interactions behind the agent's latest
    TAGS_SAMPLE_PAIRS pairs, sorted, at most TAGS_LISTED each (empty ones left out): the
    build form's options. Rarer, older ones can still be asked for by the API and command."""
    if agent is None:
        return {"intents": [], "domains": []}
    # By id, not through the agent's slug: with a join the planner cannot walk the
    # (agent, created_at) index backwards and sorts every pair of the agent instead.
    latest = (
        TrainingPair.objects.filter(agent_id=agent.pk)
        .order_by("-created_at")
        .values("interaction_id")[:TAGS_SAMPLE_PAIRS]
    )
    combos = (
        Interaction.objects.filter(pk__in=latest)
        .values_list("intent", "domain")
        .distinct()
        .order_by()
    )
    intents: set[str] = set()
    domains: set[str] = set()
    for intent, domain in combos:
        intents.add(intent)
        domains.add(domain)
    return {
        "intents": sorted(intents - {""})[:TAGS_LISTED],
        "domains": sorted(domains - {""})[:TAGS_LISTED],
    }


def batches_trained_for(agent: Agent, agent_version: str) -> QuerySet[ExportBatch]:
    """The ready batches marked "used to train" this agent version (for the KPI dashboard)."""
    return ExportBatch.objects.filter(
        agent=agent, trained_agent_version=agent_version, status=ExportBatch.Status.READY
    ).order_by("pk")


# --- Selection ---------------------------------------------------------------------------------


def _day_start(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.min, tzinfo=UTC)


def pairs_matching(
    *, agent_id: int, filters: dict[str, Any], cutoff_id: int, exclude_batch_id: int | None = None
) -> QuerySet[TrainingPair]:
    """The pairs a batch with these (normalised) filters selects, up to `cutoff_id`.

    Dates are the decision day in UTC, both ends included. `error_categories` may hold None
    for "no category" (approvals usually have none). `intents` / `domains` match the
    interaction's own tags exactly (a pair whose interaction names none matches neither).
    `new_only` leaves out pairs held by any batch other than `exclude_batch_id` (failed
    batches hold none).
    """
    pairs = TrainingPair.objects.filter(agent_id=agent_id, pk__lte=cutoff_id)
    if filters.get("date_from"):
        pairs = pairs.filter(created_at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        pairs = pairs.filter(created_at__lt=_day_start(filters["date_to"]) + timedelta(days=1))
    if filters.get("sources"):
        pairs = pairs.filter(source__in=filters["sources"])
    if filters.get("error_categories"):
        slugs = [slug for slug in filters["error_categories"] if slug]
        match = Q(error_category__slug__in=slugs)
        if None in filters["error_categories"]:
            match |= Q(error_category__isnull=True)
        pairs = pairs.filter(match)
    if filters.get("agent_versions"):
        pairs = pairs.filter(agent_version__in=filters["agent_versions"])
    # Intent and domain are the interaction's (the pair does not copy them): one inner join
    # on its primary key, shared by both filters.
    if filters.get("intents"):
        pairs = pairs.filter(interaction__intent__in=filters["intents"])
    if filters.get("domains"):
        pairs = pairs.filter(interaction__domain__in=filters["domains"])
    if (filters.get("min_reviews") or 1) > 1:
        reviews = TrainingPair.reviews.through.objects.filter(trainingpair_id=OuterRef("pk"))
        counted = reviews.order_by().values("trainingpair_id").annotate(n=Count("*"))
        n_reviews = Subquery(counted.values("n"), output_field=IntegerField())  # type: ignore[misc]
        pairs = pairs.annotate(n_reviews=Coalesce(n_reviews, 0)).filter(
            n_reviews__gte=filters["min_reviews"]
        )
    if filters.get("new_only"):
        pairs = pairs.exclude(_held_by_a_batch(exclude_batch_id))
    return pairs


def feedback_matching(
    *, agent_id: int, filters: dict[str, Any], cutoff_id: int
) -> QuerySet[FeedbackEvent]:
    events = FeedbackEvent.objects.filter(agent_id=agent_id, pk__lte=cutoff_id)
    if filters.get("date_from"):
        events = events.filter(created_at__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        events = events.filter(created_at__lt=_day_start(filters["date_to"]) + timedelta(days=1))
    if filters.get("kinds"):
        events = events.filter(kind__in=filters["kinds"])
    if filters.get("intents"):
        events = events.filter(interaction__intent__in=filters["intents"])
    if filters.get("domains"):
        events = events.filter(interaction__domain__in=filters["domains"])
    return events


def pair_cutoff() -> int:
    return TrainingPair.objects.aggregate(m=Max("pk"))["m"] or 0


def feedback_cutoff() -> int:
    return FeedbackEvent.objects.aggregate(m=Max("pk"))["m"] or 0


# --- Streaming a batch -------------------------------------------------------------------------

_PAIR_FIELDS = {
    "pair_id": "pk",
    "input": "input",
    "output": "output",
    "source": "source",
    "agent_version": "agent_version",
    "error_category": "error_category_id",
    "context": "context",
    "steps": "steps",
    "rejected_output": "rejected_output",
    "scores": "scores",
}
# Pair fields stored as JSON (parsed here on PostgreSQL, where rows come raw: see `_stream`).
_PAIR_JSON_FIELDS = ("context", "steps", "scores")
_FEEDBACK_FIELDS = {
    "event_id": "pk",
    "external_id": "interaction__external_id",
    "conversation_id": "interaction__conversation_id",
    "agent_version": "interaction__agent_version",
    "kind": "kind",
    "item_ref": "item_ref",
    "value": "value",
    "created_at": "created_at",
}


def _stream(
    rows: QuerySet, chunk_size: int, *, json_columns: tuple[int, ...] = (), using: str = "default"
) -> Generator[list[tuple]]:
    """The rows of a `values_list` queryset, `chunk_size` at a time, without holding more.

    On PostgreSQL one statement is streamed (psycopg's chunked-rows mode): the server keeps
    producing the next rows while this process writes the previous ones, there is no cursor
    to declare WITH HOLD (which would copy the whole result on the server first) and no
    transaction stays open. Values come raw (the statement bypasses Django's converters), so
    the JSON columns are parsed here. Elsewhere Django's chunked iterator does the same job.
    """
    rows = rows.using(using)
    if connections[using].vendor != "postgresql":
        yield from map(list, batched(rows.iterator(chunk_size=chunk_size), chunk_size))
        return
    sql, params = rows.query.sql_with_params()
    with connections[using].cursor() as cursor:
        # `cursor.cursor` is psycopg's own cursor: Django's wrapper has no stream().
        stream = cursor.cursor.stream(sql, params, size=chunk_size)
        try:
            for chunk in batched(stream, chunk_size):
                if not json_columns:
                    yield list(chunk)
                elif len(json_columns) == 1:
                    (at,) = json_columns
                    yield [(*r[:at], _json(r[at]), *r[at + 1 :]) for r in chunk]
                else:
                    yield [_json_row(r, json_columns) for r in chunk]
        finally:
            # A stream left suspended holds the connection's lock: the next query on it
            # would wait forever. Closing it cancels the statement and frees the connection.
            stream.close()


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _json_row(row: tuple, columns: tuple[int, ...]) -> tuple:
    values = list(row)
    for at in columns:
        values[at] = _json(values[at])
    return tuple(values)


def batch_pair_chunks(
    batch: ExportBatch, fields: tuple[str, ...], chunk_size: int, *, using: str = "default"
) -> Generator[list[tuple]]:
    """The pairs a batch holds (duplicates left out), in pair id order, in chunks of
    `chunk_size` tuples of `fields` (the error category as its id).

    On PostgreSQL the plan is a merge join of the pair primary key with the (batch, pair)
    key: both walked in order, nothing sorted, memory one chunk.
    """
    held = BatchPair.objects.filter(batch=batch, duplicate=False).values("pair_id")
    rows = (
        TrainingPair.objects.filter(pk__in=held)
        .order_by("pk")
        .values_list(*[_PAIR_FIELDS[name] for name in fields])
    )
    json_columns = tuple(fields.index(name) for name in _PAIR_JSON_FIELDS if name in fields)
    yield from _stream(rows, chunk_size, json_columns=json_columns, using=using)


def feedback_chunks(
    batch: ExportBatch, fields: tuple[str, ...], chunk_size: int, *, using: str = "default"
) -> Generator[list[tuple]]:
    """The feedback events of a feedback batch, in event id order, in chunks (as above)."""
    events = (
        feedback_matching(agent_id=batch.agent_id, filters=batch.filters, cutoff_id=batch.cutoff_id)
        .order_by("pk")
        .values_list(*[_FEEDBACK_FIELDS[name] for name in fields])
    )
    yield from _stream(events, chunk_size, using=using)


def category_slugs() -> dict[int, str]:
    return dict(ErrorCategory.objects.values_list("pk", "slug"))


def batch_repeated_contents(batch: ExportBatch) -> list[tuple[int, str]]:
    """(pair id, content hash) of the pairs of a batch whose exact (input, output) occurs
    more than once in it. Memory is the number of repeated rows, not the batch size."""
    held = BatchPair.objects.filter(batch=batch)
    repeated = (
        held.values("pair__content_hash")
        .annotate(n=Count("*"))
        .filter(n__gt=1)
        .values("pair__content_hash")
        .order_by()
    )
    return list(
        held.filter(pair__content_hash__in=Subquery(repeated)).values_list(
            "pair_id", "pair__content_hash"
        )
    )


def content_type(batch: ExportBatch) -> str:
    return writer_for(batch.dataset, batch.format).content_type


def download_name(batch: ExportBatch) -> str:
    extension = writer_for(batch.dataset, batch.format).extension
    kind = batch.format if batch.dataset == ExportBatch.Dataset.PAIRS else batch.dataset
    return f"{batch.agent.slug}-{kind}-batch-{batch.pk}.{extension}"
