"""Rubrics: what reviewers score on an agent's answers, per criterion (reads and writes).

A rubric is versioned: `rubric_create` makes the agent's next version (the active one from
then on) and never changes an earlier one, so a `Score` keeps pointing at the criterion,
and through it the version, it was given under.

The decision path (`reviews.services._submit`) does not read rubrics with a query of its
own: the item's locked read carries its agent's active criteria (`active_criteria_json`),
`scores_check` validates what the reviewer sent against them, and `review_insert` writes the
review and its scores in one statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Aggregate, F, JSONField, OuterRef, Subquery
from django.db.models.functions import JSONObject
from django.utils.text import slugify

from core import statements
from core.audit import audit_record
from reviews.models import Criterion, Review, Rubric, Score

if TYPE_CHECKING:
    from agents.models import Agent

Kind = Criterion.Kind
Verdict = Review.Verdict

# Verdicts that must score every required criterion; escalate may score (checked, kept),
# skip scores nothing (what was sent is dropped: the reviewer did not review the answer).
SCORING_REQUIRED = (Verdict.APPROVE, Verdict.CORRECT, Verdict.REJECT)
MAX_CRITERIA = 20
VERSION_KEY = "_rubric_version"  # in TrainingPair.scores and the exports


@dataclass(frozen=True)
class CriterionSpec:
    id: int
    key: str
    name: str
    help_text: str
    kind: str
    required: bool
    position: int

    @property
    def choices(self) -> list[tuple[int, str]]:
        """The values and their labels, in the order the screen shows them."""
        if self.kind == Kind.PASS_FAIL:
            return [(1, "Pass"), (0, "Fail")]
        return [(n, str(n)) for n in range(1, 6)]

    @property
    def kind_label(self) -> str:
        return str(Kind(self.kind).label)

    @property
    def allowed(self) -> str:
        if self.kind == Kind.PASS_FAIL:
            return "1 (pass) or 0 (fail)"
        return "a whole number from 1 to 5"


@dataclass(frozen=True)
class ActiveRubric:
    id: int
    version: int
    criteria: tuple[CriterionSpec, ...]

    def keys(self) -> list[str]:
        return [c.key for c in self.criteria]


@dataclass(frozen=True)
class Scored:
    """Scores that passed `scores_check`: (criterion id, key, value) in criterion order."""

    version: int
    values: tuple[tuple[int, str, int], ...]

    def as_dict(self) -> dict[str, int]:
        """`{key: value, "_rubric_version": N}`: the shape of `TrainingPair.scores`."""
        return {**{key: value for _, key, value in self.values}, VERSION_KEY: self.version}


# --- reads -------------------------------------------------------------------------------------


class _JsonArray(Aggregate):
    """The rows of a group as one JSON array (order unspecified: sorted by the reader)."""

    function = "JSON_GROUP_ARRAY"  # SQLite
    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSONB_AGG", **extra_context)


def active_criteria_json(agent_ref: str = "agent_id") -> Subquery:
    """An annotation: the criteria of the active rubric of the row's agent (`agent_ref`, a
    field of the outer query) as a JSON array, NULL when it has none. One index probe of
    `rubric_agent_version` and the rubric's criteria, inside the outer statement."""
    latest = Rubric.objects.filter(agent_id=OuterRef(OuterRef(agent_ref))).order_by("-version")
    rows = (
        Criterion.objects.filter(rubric_id=Subquery(latest.values("pk")[:1]))
        .values("rubric_id")
        .annotate(
            rows=_JsonArray(
                JSONObject(
                    id="pk",
                    key="key",
                    name="name",
                    help_text="help_text",
                    kind="kind",
                    required="required",
                    position="position",
                    rubric="rubric_id",
                    version=F("rubric__version"),
                )
            )
        )
        .values("rows")
    )
    return Subquery(rows, output_field=JSONField())


def from_rows(rows: Sequence[Mapping[str, Any]] | None) -> ActiveRubric | None:
    """The rubric of an `active_criteria_json` value (None for none)."""
    if not rows:
        return None
    ordered = sorted(rows, key=lambda r: (r["position"], r["id"]))
    criteria = tuple(
        CriterionSpec(
            id=r["id"],
            key=r["key"],
            name=r["name"],
            help_text=r["help_text"],
            kind=r["kind"],
            required=bool(r["required"]),  # SQLite's JSON has 0 / 1
            position=r["position"],
        )
        for r in ordered
    )
    return ActiveRubric(id=ordered[0]["rubric"], version=ordered[0]["version"], criteria=criteria)


def active_rubric(agent_id: int) -> ActiveRubric | None:
    """The agent's active rubric with its criteria (one query); None when it has none or its
    latest version has no criteria (a lead removed them all)."""
    latest = Rubric.objects.filter(agent_id=agent_id).order_by("-version").values("pk")[:1]
    criteria = list(
        Criterion.objects.filter(rubric_id=Subquery(latest))
        .annotate(version=F("rubric__version"))
        .order_by("position", "pk")
    )
    if not criteria:
        return None
    return ActiveRubric(
        id=criteria[0].rubric_id,
        version=criteria[0].version,  # type: ignore[attr-defined]
        criteria=tuple(_spec(c) for c in criteria),
    )


def _spec(c: Criterion) -> CriterionSpec:
    return CriterionSpec(
        id=c.pk,
        key=c.key,
        name=c.name,
        help_text=c.help_text,
        kind=c.kind,
        required=c.required,
        position=c.position,
    )


def rubric_history(agent: Agent) -> list[Rubric]:
    """Every version of the agent's rubric, newest first, with its criteria and author
    (two queries)."""
    return list(
        Rubric.objects.filter(agent=agent)
        .select_related("created_by")
        .prefetch_related("criteria")
        .order_by("-version")
    )


def scores_of(review_ids: Sequence[int]) -> dict[str, int]:
    """The scores of the latest of `review_ids` that has any, as `Scored.as_dict` gives
    them ({} when none has): for a decision whose final review scored nothing (an
    adjudication), the scores of the reviews it agreed with. One query."""
    rows = list(
        Score.objects.filter(review_id__in=review_ids)
        .order_by("-review_id", "criterion__position", "criterion_id")
        .values_list("review_id", "criterion__key", "value", "criterion__rubric__version")
    )
    if not rows:
        return {}
    latest = rows[0][0]
    mine = [r for r in rows if r[0] == latest]
    return {**{key: value for _, key, value, _ in mine}, VERSION_KEY: mine[0][3]}


# --- the decision ------------------------------------------------------------------------------


def _as_value(raw: Any) -> int | None:
    """An integer score from the API (int) or a form (text); None when it is not one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw.strip())
    return None


def scores_check(
    *,
    rubric: ActiveRubric | None,
    verdict: str,
    scores: Mapping[str, Any] | None,
    rubric_version: int | None = None,
    required: bool = True,
) -> tuple[Scored | None, dict[str, str]]:
    """Checks the scores sent with a decision against the agent's active rubric; returns
    what to store (None for nothing) and the errors, keyed `scores.<key>` (or `scores`,
    `rubric_version`), each message naming the criterion.

    approve / correct / reject must score every required criterion; escalate may score;
    skip stores nothing. `rubric_version`, when sent, must be the active version: a page
    showing an older rubric does not store scores against the new one. With `required`
    False (an adjudication) no criterion is required; the scores sent are checked all the
    same."""
    if verdict == Verdict.SKIP:
        return None, {}
    given = {k: v for k, v in (scores or {}).items() if v is not None and v != ""}
    if rubric is None:
        if given:
            return None, {"scores": "were sent, but this agent has no rubric to score"}
        return None, {}
    if rubric_version is not None and rubric_version != rubric.version:
        return None, {
            "rubric_version": f"is {rubric_version}, but this agent's rubric is now version "
            f"{rubric.version}: check the criteria and score them again"
        }
    errors: dict[str, str] = {}
    known = {c.key for c in rubric.criteria}
    for key in given:
        if key not in known:
            errors[f"scores.{key}"] = (
                f"{key!r} is not a criterion of this agent's rubric (version "
                f"{rubric.version}: {', '.join(rubric.keys())})"
            )
    values: list[tuple[int, str, int]] = []
    for c in rubric.criteria:
        if c.key not in given:
            if required and c.required and verdict in SCORING_REQUIRED:
                errors[f"scores.{c.key}"] = (
                    f"{c.name} is required to {verdict}: score it {c.allowed}"
                )
            continue
        value = _as_value(given[c.key])
        low, high = Criterion.RANGES[Kind(c.kind)]
        if value is None or not low <= value <= high:
            errors[f"scores.{c.key}"] = f"{c.name} must be {c.allowed}, not {given[c.key]!r}"
            continue
        values.append((c.id, c.key, value))
    if errors:
        return None, errors
    return (Scored(rubric.version, tuple(values)) if values else None), {}


def review_insert(review: Review, scored: Scored | None) -> None:
    """Inserts a new review and its scores: on PostgreSQL in one statement (the scores take
    the review's id from the INSERT's RETURNING), so scoring costs the decision no round
    trip; elsewhere the review, then one bulk INSERT."""
    if scored is None:
        statements.insert(review)  # the ORM's INSERT, without compiling it anew each time
        return
    if not statements.supported():
        review.save(force_insert=True)
        Score.objects.bulk_create(
            Score(review=review, criterion_id=cid, value=value) for cid, _, value in scored.values
        )
        return
    insert, params = statements.insert_returning_pk(review)
    sql = f"""
        WITH review AS ({insert}),
        scores AS (
            INSERT INTO {Score._meta.db_table} (review_id, criterion_id, value)
            SELECT review.id, s.criterion_id, s.value
            FROM review, unnest(%s::bigint[], %s::smallint[]) AS s(criterion_id, value)
        )
        SELECT id FROM review
    """  # noqa: S608 (our SQL; values are parameters)
    criteria = [cid for cid, _, _ in scored.values]
    values = [value for _, _, value in scored.values]
    with connection.cursor() as cursor:
        cursor.execute(sql, (*params, criteria, values))
        statements.mark_saved(review, cursor.fetchone()[0])


# --- writing a rubric --------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionIn:
    """One criterion as a lead defines it (the console's form rows)."""

    key: str
    name: str
    kind: str
    required: bool = True
    help_text: str = ""


def criteria_problems(criteria: Sequence[CriterionIn]) -> dict[int, dict[str, str]]:
    """{row index: {field: message}} for criteria that cannot be saved."""
    problems: dict[int, dict[str, str]] = {}
    seen: dict[str, int] = {}
    if len(criteria) > MAX_CRITERIA:
        problems[MAX_CRITERIA] = {"key": f"A rubric has at most {MAX_CRITERIA} criteria."}
    for i, c in enumerate(criteria):
        row: dict[str, str] = {}
        if not c.key or slugify(c.key) != c.key or len(c.key) > 50:
            row["key"] = "Use lower-case letters, digits, - and _ (at most 50)."
        elif c.key in seen:
            row["key"] = f"Key {c.key!r} is already used by criterion {seen[c.key] + 1}."
        else:
            seen[c.key] = i
        if not c.name.strip():
            row["name"] = "Give the criterion a name."
        elif len(c.name) > 100:
            row["name"] = "At most 100 characters."
        if len(c.help_text) > 500:
            row["help_text"] = "At most 500 characters."
        if c.kind not in Kind.values:
            row["kind"] = "Choose pass / fail or scale 1–5."
        if row:
            problems[i] = row
    return problems


class RubricError(Exception):
    """Base of the rubric errors; `str()` is a message for the lead."""


class InvalidCriteria(RubricError):
    def __init__(self, problems: dict[int, dict[str, str]]) -> None:
        super().__init__("Some criteria cannot be saved.")
        self.problems = problems


class RubricChanged(RubricError):
    """The rubric got a new version since the editor read it (compare-and-swap lost)."""


@transaction.atomic
def rubric_create(
    *, agent: Agent, criteria: Sequence[CriterionIn], actor: Any, base_version: int
) -> Rubric | None:
    """Saves `criteria` as the agent's next rubric version (copies: no earlier version is
    touched) and records it in the audit log; returns it, or None when the criteria are
    those of the active version already (nothing to save).

    `base_version` is the version the editor started from (0 for none): when the agent's
    latest version is another one, someone saved meanwhile and RubricChanged is raised. Two
    saves racing from the same version both read it, and the unique (agent, version) lets
    only the first INSERT through: the other raises RubricChanged too.

    Raises InvalidCriteria (`problems`: {row: {field: message}}) for invalid criteria."""
    problems = criteria_problems(criteria)
    if problems:
        raise InvalidCriteria(problems)
    latest = Rubric.objects.filter(agent=agent).order_by("-version").first()
    current = latest.version if latest else 0
    if current != base_version:
        raise RubricChanged(
            f"Someone saved version {current} of this rubric since you opened it: "
            "check it and save again."
        )
    if latest is not None:
        same = [
            (c.key, c.name, c.help_text, c.kind, c.required)
            for c in latest.criteria.order_by("position", "pk")
        ]
        if same == [(c.key, c.name, c.help_text, c.kind, c.required) for c in criteria]:
            return None
    try:
        with transaction.atomic():
            rubric = Rubric(agent=agent, version=current + 1, created_by=actor)
            rubric.save(force_insert=True)
    except IntegrityError:
        raise RubricChanged(
            f"Someone saved version {current + 1} of this rubric at the same time: "
            "check it and save again."
        ) from None
    Criterion.objects.bulk_create(
        Criterion(
            rubric=rubric,
            key=c.key,
            name=c.name.strip(),
            help_text=c.help_text.strip(),
            kind=c.kind,
            required=c.required,
            position=i,
        )
        for i, c in enumerate(criteria)
    )
    audit_record(
        actor=actor,
        action="rubric.created",
        target_type="agent",
        target_id=agent.pk,
        before={"version": current},
        after={"version": rubric.version, "criteria": [c.key for c in criteria]},
    )
    return rubric
