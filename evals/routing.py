"""Making comparisons: the one writer of new `Comparison` rows, for the regression runs
(a new answer the matching could not settle) and for the API's version-against-version
comparisons (`POST /api/v1/comparisons`).

Side order: which answer a reviewer sees on the left is drawn here, once per comparison,
with `secrets.randbits(1)` (unpredictable to whoever posted the answers), recorded in
`a_on_left` and never shown; votes copy it, so position bias can be measured.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from agents.models import Agent
from agents.redaction import ConversationMap, Redacted, RedactionPolicy, Redactor
from evals.models import Comparison

# Rows per INSERT: one statement per batch (about 20 parameters a row, far below
# PostgreSQL's 65,535 per statement).
INSERT_BATCH = 1000
MAX_LABEL_CHARS = 100
MAX_EXTERNAL_ID_CHARS = 255


@dataclass(frozen=True)
class NewComparison:
    """What a comparison is made of; the side order and queue fields are added here."""

    agent_id: int
    kind: str
    input: str
    answer_a: str
    answer_b: str
    version_a: str = ""
    version_b: str = ""
    context: list = field(default_factory=list)
    domain: str = ""
    intent: str = ""
    interaction_id: int | None = None
    external_id: str = ""
    required_reviews: int = 1
    priority: int = 0


def comparisons_create(rows: Iterable[NewComparison]) -> list[Comparison]:
    """Inserts the comparisons, pending, with a side order drawn for each: one INSERT per
    INSERT_BATCH rows, no per-row save. Returns them with their ids (PostgreSQL and SQLite
    return the ids of a bulk insert). Raises IntegrityError when an `external_id` is
    already taken for its agent (callers that take posted ids check first)."""
    made = [
        Comparison(
            agent_id=row.agent_id,
            kind=row.kind,
            external_id=row.external_id,
            domain=row.domain,
            intent=row.intent,
            interaction_id=row.interaction_id,
            input=row.input,
            context=row.context,
            answer_a=row.answer_a,
            version_a=row.version_a,
            answer_b=row.answer_b,
            version_b=row.version_b,
            a_on_left=bool(secrets.randbits(1)),
            priority=row.priority,
            required_reviews=row.required_reviews,
        )
        for row in rows
    ]
    return Comparison.objects.bulk_create(made, batch_size=INSERT_BATCH)


# --- POST /api/v1/comparisons -------------------------------------------------------------


@dataclass(frozen=True)
class ItemError:
    index: int
    field: str
    message: str


@dataclass
class PostResult:
    created: int = 0
    duplicates: int = 0
    errors: list[ItemError] = field(default_factory=list)


_REQUIRED_TEXT = ("input", "answer_a", "answer_b")
_SHORT = {
    "external_id": MAX_EXTERNAL_ID_CHARS,
    "version_a": MAX_LABEL_CHARS,
    "version_b": MAX_LABEL_CHARS,
    "domain": MAX_LABEL_CHARS,
    "intent": MAX_LABEL_CHARS,
}


def _check_item(item: Any) -> tuple[str, str] | None:
    """(field, message) of the first thing wrong with one posted comparison, else None."""
    if not isinstance(item, dict):
        return "item", "must be an object"
    longest = settings.INGEST_MAX_TEXT_CHARS
    for name in ("agent", "external_id", *_REQUIRED_TEXT, "version_a", "version_b"):
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            return name, "required (a non-empty string)"
    for name in _REQUIRED_TEXT:
        if len(item[name]) > longest:
            return name, f"longer than {longest:,} characters"
    for name, limit in _SHORT.items():
        value = item.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return name, "must be a string"
        if len(value) > limit:
            return name, f"longer than {limit} characters"
    context = item.get("context")
    if context is not None:
        if not isinstance(context, list):
            return "context", "must be a list of {role, content} objects"
        for i, turn in enumerate(context):
            if (
                not isinstance(turn, dict)
                or not isinstance(turn.get("role"), str)
                or not isinstance(turn.get("content"), str)
            ):
                return f"context.{i}", "must be an object with string role and content"
    unknown = set(item) - {"agent", "context", *_REQUIRED_TEXT, *_SHORT}
    if unknown:
        return sorted(unknown)[0], "unknown field"
    return None


def comparisons_post(items: Sequence[Any]) -> PostResult:
    """Stores posted version-against-version comparisons (kind `versions`); each error
    names the item's index and field, and the valid items are stored anyway. Idempotent by
    (agent, external_id): a comparison already stored, or repeated within the body, counts
    as a duplicate and changes nothing. Reads the agents and the taken ids in one query
    each, then inserts in batches; a concurrent post of the same ids is detected by the
    unique constraint and re-checked once."""
    result = PostResult()
    valid: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(items):
        problem = _check_item(item)
        if problem:
            result.errors.append(ItemError(index, *problem))
        else:
            valid.append((index, item))
    slugs = {item["agent"] for _, item in valid}
    agents = {a.slug: a for a in Agent.objects.filter(slug__in=slugs)}
    known: list[tuple[int, dict[str, Any]]] = []
    for index, item in valid:
        if item["agent"] in agents:
            known.append((index, item))
        else:
            result.errors.append(ItemError(index, "agent", f"unknown agent {item['agent']!r}"))
    for attempt in range(2):
        try:
            with transaction.atomic():
                created, duplicates = _insert_new(known, agents)
            break
        except IntegrityError:
            if attempt:  # a second collision is not a race any more
                raise
    result.created, result.duplicates = created, duplicates
    result.errors.sort(key=lambda e: e.index)
    return result


def _insert_new(
    known: list[tuple[int, dict[str, Any]]], agents: dict[str, Agent]
) -> tuple[int, int]:
    keys = {(agents[item["agent"]].pk, item["external_id"]) for _, item in known}
    taken: set[tuple[int, str]] = set()
    for agent_id in {agent_id for agent_id, _ in keys}:
        ids = [external_id for a, external_id in keys if a == agent_id]
        taken.update(
            (agent_id, external_id)
            for external_id in Comparison.objects.filter(
                agent_id=agent_id, external_id__in=ids
            ).values_list("external_id", flat=True)
        )
    rows, duplicates = [], 0
    redactors = _redactors(agents.values())
    for _, item in known:
        agent = agents[item["agent"]]
        key = (agent.pk, item["external_id"])
        if key in taken:
            duplicates += 1
            continue
        taken.add(key)
        rows.append(
            NewComparison(
                agent_id=agent.pk,
                kind=Comparison.Kind.VERSIONS,
                external_id=item["external_id"],
                **_texts(item, redactors.get(agent.pk)),
                version_a=item["version_a"],
                version_b=item["version_b"],
                # The routing tag decides whose pool sees it; the agent's, when not given.
                domain=item.get("domain") or agent.domain,
                intent=item.get("intent") or "",
                required_reviews=agent.required_reviews,
            )
        )
    return len(comparisons_create(rows)), duplicates


def _redactors(agents: Iterable[Agent]) -> dict[int, Redactor]:
    """The redactors of the agents with a redaction policy (agents/redaction.py)."""
    out = {}
    for agent in agents:
        policy = RedactionPolicy.parse(agent.redaction)
        if policy is not None:
            out[agent.pk] = Redactor(policy, settings.SECRET_KEY.encode())
    return out


def _texts(item: dict[str, Any], redactor: Redactor | None) -> dict[str, Any]:
    """The comparison's texts, redacted by its agent's policy like ingested interactions.
    A posted comparison belongs to no conversation: its placeholders are numbered within it
    (the same value is the same placeholder in its input, context and both answers) and no
    original is kept, whatever the policy says (there is nothing to reveal it beside)."""
    texts = {
        "input": item["input"],
        "context": item.get("context") or [],
        "answer_a": item["answer_a"],
        "answer_b": item["answer_b"],
    }
    if redactor is None:
        return texts
    mapping, out = ConversationMap.load([]), Redacted()
    context = [
        {**turn, "content": redactor.text(turn["content"], mapping, out)}
        for turn in texts["context"]
    ]
    return {
        "context": context,
        "input": redactor.text(texts["input"], mapping, out),
        "answer_a": redactor.text(texts["answer_a"], mapping, out),
        "answer_b": redactor.text(texts["answer_b"], mapping, out),
    }
