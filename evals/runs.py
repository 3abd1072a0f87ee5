"""Posting a new version's answers to an agent's regression set (`evals.regression`): a run.

A run: `regression_run_post` validates the answers, stores each once per run (ON CONFLICT
DO NOTHING: re-posting changes nothing) and settles what it can by text:
- equal to the reference (the correction), after collapsing whitespace, stripping and
  casefolding → `fixed` (matched_by "match");
- equal to the old answer → `still_wrong` ("unchanged");
- anything else → a blind comparison for a reviewer (`pending`, matched_by "review"),
  against the reference, or for a rejected item (no reference) against the old answer.

A decided comparison sets the answer's outcome (`comparison_judged`, a receiver of
`evals.signals.comparison_decided`):
- against the reference: A (the new answer) better or a tie → fixed; B (the reference)
  better or both bad → still wrong;
- against the previous answer of a rejected item: A better → fixed; a tie or both bad →
  still wrong (as bad as the rejected answer); B (the old answer) better → worse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from agents.models import Agent
from evals.models import Comparison, RegressionAnswer, RegressionRun
from evals.regression import (
    Case,
    InvalidRequest,
    SetFilters,
    cases_by_id,
    filters_clean,
    held_out,
    matches_filters,
    normalise,
)
from evals.routing import ItemError, NewComparison, comparisons_create

Outcome = RegressionAnswer.Outcome
Choice = Comparison.Choice
REFERENCE, PREVIOUS = "reference", "previous"
MAX_TEXT = 100  # version and label
INSERT_BATCH = 2000


@dataclass
class RunResult:
    run: RegressionRun
    created: int = 0
    duplicates: int = 0
    matched: int = 0
    unchanged: int = 0
    routed: int = 0
    errors: list[ItemError] = field(default_factory=list)


def _run_get(
    agent: Agent, version: str, label: str, filters: SetFilters | None, actor
) -> RegressionRun:
    """The run of (agent, version, label), made on first post, locked (FOR UPDATE) until
    the caller's transaction ends: two posts to one run take turns, so an answer is routed
    to a comparison once. Posting again with other filters is refused."""
    run, made = RegressionRun.objects.get_or_create(
        agent=agent,
        agent_version=version,
        label=label,
        defaults={"filters": filters.as_dict() if filters else {}, "created_by": actor},
    )
    run = RegressionRun.objects.select_for_update().get(pk=run.pk)
    run.agent = agent  # read once: every routed comparison takes its policy
    if not made and filters is not None and filters.as_dict() != run.filters:
        raise InvalidRequest(
            {"filters": f"run #{run.pk} ({version!r}, label {label!r}) was posted with the "
             f"filters {run.filters}; post a new label for another set"}
        )  # fmt: skip
    return run


def _answer_problem(row: Any, seen: dict[int, int], index: int) -> tuple[str, str] | None:
    if not isinstance(row, dict):
        return "item", "must be an object with case_id and answer"
    case_id, answer = row.get("case_id"), row.get("answer")
    if case_id is None:
        return "case_id", "required"
    if isinstance(case_id, bool) or not isinstance(case_id, int) or case_id < 1:
        return "case_id", "must be a positive integer"
    if not isinstance(answer, str) or not answer.strip():
        return "answer", "required (a non-empty string)"
    if len(answer) > settings.INGEST_MAX_TEXT_CHARS:
        return "answer", f"longer than {settings.INGEST_MAX_TEXT_CHARS:,} characters"
    if case_id in seen:
        return "case_id", f"case {case_id} is answered twice (first at index {seen[case_id]})"
    seen[case_id] = index
    return None


@transaction.atomic
def regression_run_post(
    *,
    agent: Agent,
    agent_version: str,
    answers: Sequence[Any],
    label: str = "",
    filters: Mapping[str, Any] | None = None,
    actor=None,
) -> RunResult:
    """Adds `answers` (`[{"case_id", "answer"}]`) to the run of (agent, version, label).

    Each bad answer is an error with its index and field (unknown case, case not in the
    set the run's filters select, missing or empty answer, a case answered twice); the good
    ones are stored. An answer already stored for the case counts as a duplicate and
    changes nothing, so posting the same run again (or in several parts) is idempotent.
    Locks the run row; reads the cases in one query and the run's stored answers in one;
    inserts answers and comparisons in batches. Raises InvalidRequest for a bad version,
    label or filters (nothing stored).
    """
    errors: dict[str, str] = {}
    if not agent_version or len(agent_version) > MAX_TEXT:
        errors["version"] = f"required, at most {MAX_TEXT} characters"
    if len(label) > MAX_TEXT:
        errors["label"] = f"at most {MAX_TEXT} characters"
    if errors:
        raise InvalidRequest(errors)
    cleaned = filters_clean(filters) if filters is not None else None
    run = _run_get(agent, agent_version, label, cleaned, actor)
    run_filters = cleaned or filters_clean(run.filters)
    result = RunResult(run=run)

    seen: dict[int, int] = {}
    valid: list[tuple[int, int, str]] = []
    for index, row in enumerate(answers):
        problem = _answer_problem(row, seen, index)
        if problem:
            result.errors.append(ItemError(index, *problem))
        else:
            valid.append((index, row["case_id"], row["answer"]))
    cases = cases_by_id(agent, [case_id for _, case_id, _ in valid])
    stored = set(
        RegressionAnswer.objects.filter(
            run=run, item_id__in=[case_id for _, case_id, _ in valid]
        ).values_list("item_id", flat=True)
    )
    new: list[RegressionAnswer] = []
    routed: list[tuple[RegressionAnswer, NewComparison]] = []
    for index, case_id, answer in valid:
        case = cases.get(case_id)
        if case is None:
            result.errors.append(ItemError(index, "case_id", f"unknown case {case_id}"))
            continue
        if not (matches_filters(case, run_filters) and held_out(case)):
            result.errors.append(
                ItemError(index, "case_id", f"case {case_id} is not in this run's regression set")
            )
            continue
        if case_id in stored:
            result.duplicates += 1
            continue
        row = RegressionAnswer(run=run, item_id=case_id, answer=answer)
        text = normalise(answer)
        if case.reference and text == normalise(case.reference):
            row.matched_by, row.outcome = "match", Outcome.FIXED
            result.matched += 1
        elif text == normalise(case.old_answer):
            row.matched_by, row.outcome = "unchanged", Outcome.STILL_WRONG
            result.unchanged += 1
        else:
            row.matched_by, row.outcome = "review", Outcome.PENDING
            routed.append((row, _comparison_for(run, case, answer)))
        new.append(row)
    made = comparisons_create(comparison for _, comparison in routed)
    for (row, _), comparison in zip(routed, made, strict=True):
        row.comparison = comparison
    result.routed = len(made)
    # The run's lock makes conflicts impossible here; ON CONFLICT DO NOTHING is the
    # (run, item) key's guarantee all the same.
    RegressionAnswer.objects.bulk_create(new, batch_size=INSERT_BATCH, ignore_conflicts=True)
    result.created = len(new)
    result.errors.sort(key=lambda e: e.index)
    return result


def _comparison_for(run: RegressionRun, case: Case, answer: str) -> NewComparison:
    against_reference = bool(case.reference)
    return NewComparison(
        agent_id=run.agent_id,
        kind=Comparison.Kind.REGRESSION,
        interaction_id=case.interaction_id,
        input=case.input,
        context=case.context,
        answer_a=answer,
        version_a=run.agent_version,
        answer_b=case.reference if against_reference else case.old_answer,
        version_b=REFERENCE if against_reference else PREVIOUS,
        domain=case.domain,
        intent=case.intent,
        required_reviews=run.agent.required_reviews,
    )


def judged_outcome(version_b: str, choice: str) -> str:
    """A regression comparison's choice as the answer's outcome (see the module docstring)."""
    if version_b == PREVIOUS:
        if choice == Choice.A:
            return Outcome.FIXED
        return Outcome.WORSE if choice == Choice.B else Outcome.STILL_WRONG
    return Outcome.FIXED if choice in (Choice.A, Choice.TIE) else Outcome.STILL_WRONG


def comparison_judged(sender, *, comparison: Comparison, **kwargs) -> str | None:
    """`evals.signals.comparison_decided`: the answer a regression comparison judges takes
    its outcome (in the deciding transaction). A comparison decided again (after an undo)
    sets it again. Other comparisons are not ours."""
    if comparison.kind != Comparison.Kind.REGRESSION or not comparison.outcome:
        return None
    outcome = judged_outcome(comparison.version_b, comparison.outcome)
    RegressionAnswer.objects.filter(comparison_id=comparison.pk, matched_by="review").update(
        outcome=outcome
    )
    return outcome
