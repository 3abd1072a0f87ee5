"""The regression set of an agent: the decided cases a new version is checked against.

The set: every decided item whose final verdict is `correct` or `reject`, restricted to the
held-out inputs, `retraining.build.split_of(input, REGRESSION_HOLDOUT_SHARE) ==
"validation"` (the same stable hash of the input text the exports split on), less any item
whose training pair a batch (not failed) put in its train split (`split_of(input,
batch.validation_share) == "train"`: a batch asked with a smaller validation share trains
on some of the held-out inputs). A rejected item has no pair, so it was never trained on.
The hash is computed here, per row, in Python (CRC-32, as the exports do); the database
narrows the rows first (agent, decided, verdict, the filters) and hands over, per item,
the smallest validation share of the batches holding its pair.

Posting a new version's answers to the set (a run) is `evals.runs`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery

from agents.models import Agent
from retraining.build import split_of
from retraining.formats import VALIDATION
from retraining.models import BatchPair, ExportBatch
from reviews.models import ErrorCategory, Review, ReviewItem

Verdict = Review.Verdict
CASE_VERDICTS = (Verdict.CORRECT, Verdict.REJECT)
MAX_TEXT = 100  # filters
PAGE_SIZE, MAX_PAGE_SIZE = 500, 5000


class InvalidRequest(ValueError):
    """Field errors of a whole request (filters, version, label): `errors` maps field to
    message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def normalise(text: str) -> str:
    """What "the same answer" means: whitespace runs collapsed, ends stripped, casefolded."""
    return " ".join(text.split()).casefold()


# --- the set ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetFilters:
    intent: str = ""
    domain: str = ""
    error_category: str = ""
    agent_version: str = ""
    date_from: date | None = None  # decision day (UTC), inclusive
    date_to: date | None = None

    def as_dict(self) -> dict[str, str]:
        return {
            k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items() if v
        }


_TEXT_FILTERS = ("intent", "domain", "error_category", "agent_version")


# Decision days a filter may name (a day past the last one would overflow its end).
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(9998, 12, 31)


def filters_clean(raw: Mapping[str, Any] | None) -> SetFilters:
    """The set's filters from a query string or a JSON object (all optional); raises
    InvalidRequest naming each bad field (unknown names included)."""
    raw = raw or {}
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value in (None, ""):
            continue
        if name in _TEXT_FILTERS:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                errors[name] = f"must be a string of at most {MAX_TEXT} characters"
            else:
                values[name] = value
        elif name in ("date_from", "date_to"):
            try:
                day = value if isinstance(value, date) else date.fromisoformat(value)
            except (TypeError, ValueError):
                errors[name] = "must be a date (YYYY-MM-DD)"
                continue
            if not EARLIEST_DAY <= day <= LATEST_DAY:
                errors[name] = f"must be between {EARLIEST_DAY} and {LATEST_DAY}"
            else:
                values[name] = day
        else:
            errors[name] = "unknown filter"
    if (
        values.get("date_from")
        and values.get("date_to")
        and values["date_from"] > values["date_to"]
    ):
        errors["date_to"] = "is before date_from"
    slug = values.get("error_category")
    if slug and not ErrorCategory.objects.filter(slug=slug).exists():
        errors["error_category"] = f"unknown error category {slug!r}"
    if errors:
        raise InvalidRequest(errors)
    return SetFilters(**values)


@dataclass(frozen=True)
class Case:
    """One regression case: a decided item (its id is the case id)."""

    id: int
    external_id: str
    input: str
    context: list
    old_answer: str
    reference: str  # the correction; empty for a rejected item
    verdict: str
    error_category: str
    intent: str
    domain: str
    agent_version: str
    decided_at: datetime
    interaction_id: int = field(repr=False, default=0)
    trained_share: float | None = field(repr=False, default=None)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "input": self.input,
            "context": self.context,
            "old_answer": self.old_answer,
            "reference": self.reference,
            "verdict": self.verdict,
            "error_category": self.error_category,
            "intent": self.intent,
            "domain": self.domain,
            "agent_version": self.agent_version,
            "decided_at": self.decided_at.isoformat(),
        }


_COLUMNS = (
    "pk",
    "interaction__external_id",
    "interaction__input",
    "interaction__context",
    "interaction__output",
    "reference",
    "final_verdict",
    "category",
    "interaction__intent",
    "domain",
    "interaction__agent_version",
    "decided_at",
    "interaction_id",
    "trained_share",
)


def _annotated(agent_id: int) -> QuerySet:
    """The agent's items with, per item, the deciding review's correction and error
    category, and the smallest validation share of the batches (not failed) holding its
    pair: correlated subqueries, each an index probe per row (review (item, …), pair by
    item, batch pair by pair)."""
    agreeing = Review.objects.filter(
        item_id=OuterRef("pk"), verdict=OuterRef("final_verdict")
    ).order_by("-is_adjudication", "-created_at", "-pk")
    held = (
        BatchPair.objects.filter(pair__item_id=OuterRef("pk"))
        .exclude(batch__status=ExportBatch.Status.FAILED)
        .order_by("batch__validation_share")
    )
    return ReviewItem.objects.filter(agent_id=agent_id).annotate(
        reference=Subquery(agreeing.values("corrected_output")[:1]),
        # The final review's category, else an agreeing review's (as the pair records it).
        category=Subquery(
            agreeing.filter(error_category__isnull=False).values("error_category__slug")[:1]
        ),
        trained_share=Subquery(held.values("batch__validation_share")[:1]),
    )


def _case(row: tuple) -> Case:
    (pk, external_id, text, context, old, reference, verdict, category, intent, domain,
     version, decided_at, interaction_id, trained_share) = row  # fmt: skip
    return Case(
        id=pk,
        external_id=external_id,
        input=text,
        context=context or [],
        old_answer=old,
        reference=(reference or "") if verdict == Verdict.CORRECT else "",
        verdict=verdict,
        error_category=category or "",
        intent=intent,
        domain=domain,
        agent_version=version,
        decided_at=decided_at,
        interaction_id=interaction_id,
        trained_share=trained_share,
    )


def held_out(case: Case) -> bool:
    """In the held-out split, and in no batch's train split."""
    share = settings.REGRESSION_HOLDOUT_SHARE
    if split_of(case.input, share) != VALIDATION:
        return False
    return case.trained_share is None or split_of(case.input, case.trained_share) == VALIDATION


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(qs: QuerySet, filters: SetFilters) -> QuerySet:
    qs = qs.filter(status=ReviewItem.Status.DONE, final_verdict__in=CASE_VERDICTS)
    qs = qs.filter(decided_at__isnull=False)
    if filters.intent:
        qs = qs.filter(interaction__intent=filters.intent)
    if filters.domain:
        qs = qs.filter(domain=filters.domain)
    if filters.agent_version:
        qs = qs.filter(interaction__agent_version=filters.agent_version)
    if filters.error_category:
        qs = qs.filter(category=filters.error_category)
    if filters.date_from:
        qs = qs.filter(decided_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        qs = qs.filter(decided_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    return qs


def matches_filters(case: Case, filters: SetFilters) -> bool:
    """`_filtered` in Python, for cases read by id."""
    day = case.decided_at.astimezone(UTC).date() if case.decided_at else None
    return (
        case.verdict in CASE_VERDICTS
        and day is not None
        and (not filters.intent or case.intent == filters.intent)
        and (not filters.domain or case.domain == filters.domain)
        and (not filters.agent_version or case.agent_version == filters.agent_version)
        and (not filters.error_category or case.error_category == filters.error_category)
        and (not filters.date_from or day >= filters.date_from)
        and (not filters.date_to or day <= filters.date_to)
    )


def encode_cursor(decided_at: datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{decided_at.isoformat()}|{pk}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises InvalidRequest for anything `encode_cursor` did not make."""
    try:
        stamp, pk = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), int(pk)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequest({"cursor": "not a cursor this API gave out"}) from None


def _scan(
    agent: Agent, filters: SetFilters, after: tuple[datetime, int] | None, chunk: int
) -> Iterator[tuple[Case, tuple[datetime, int]]]:
    """Every candidate row in (decided_at, id) order after `after`, as (case, its key),
    read `chunk` rows per query (keyset pagination on the agent's decided-items index: no
    OFFSET, no long-lived cursor)."""
    base = _filtered(_annotated(agent.pk), filters).order_by("decided_at", "pk")
    while True:
        qs = base
        if after is not None:
            stamp, pk = after
            qs = qs.filter(Q(decided_at__gt=stamp) | Q(decided_at=stamp, pk__gt=pk))
        rows = list(qs.values_list(*_COLUMNS)[:chunk])
        for row in rows:
            case = _case(row)
            after = (case.decided_at, case.id)
            yield case, after
        if len(rows) < chunk:
            return


def cases_iter(agent: Agent, filters: SetFilters, *, chunk: int = 2000) -> Iterator[Case]:
    """The whole set, streamed (memory: one chunk of rows)."""
    for case, _ in _scan(agent, filters, None, chunk):
        if held_out(case):
            yield case


def cases_page(
    agent: Agent, filters: SetFilters, *, cursor: str | None = None, limit: int = PAGE_SIZE
) -> tuple[list[Case], str | None]:
    """One page of the set and the cursor of the next (None at the end)."""
    after = decode_cursor(cursor) if cursor else None
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    # About one row in ten is held out: read enough rows per query to fill a page in one.
    chunk = min(20_000, max(1000, limit * 12))
    page: list[Case] = []
    for case, key in _scan(agent, filters, after, chunk):
        if held_out(case):
            page.append(case)
            if len(page) == limit:
                return page, encode_cursor(*key)
    return page, None


def cases_by_id(agent: Agent, ids: Sequence[int]) -> dict[int, Case]:
    """The agent's items among `ids`, decided or not, in one query (a run's lookup)."""
    rows = _annotated(agent.pk).filter(pk__in=ids).values_list(*_COLUMNS, "status")
    return {row[0]: _case(row[:-1]) for row in rows if row[-1] == ReviewItem.Status.DONE}
