"""API of the evals (ML engineers and admins): the regression set, regression runs and their
summaries, version-against-version comparisons and their win rates."""

from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Schema, Status

from accounts.models import Role
from accounts.permissions import RoleBearer
from core.limits import JsonRejected, error_responses, load_json
from evals import regression, routing, runs, selectors

router = Router(tags=["evals"])
evals_auth = RoleBearer(Role.ML, Role.ADMIN)
# Answers per request; more go in further requests to the same run (version + label). The
# body limit (MAX_BODY_BYTES) usually binds first: the Python client sends 1,000 at a time.
MAX_ANSWERS_PER_REQUEST = 10_000
MAX_COMPARISONS_PER_REQUEST = 5_000
UNKNOWN_AGENT = {"detail": "unknown agent"}


class ItemError(Schema):
    index: int
    field: str
    message: str


class CaseOut(Schema):
    id: int
    external_id: str
    input: str
    context: list[Any]
    old_answer: str
    reference: str
    verdict: str
    error_category: str
    intent: str
    domain: str
    agent_version: str
    decided_at: datetime


class CasesOut(Schema):
    cases: list[CaseOut]
    next_cursor: str | None
    filters: dict[str, str]
    holdout_share: float


class Share(Schema):
    value: float | None
    low: float | None
    high: float | None
    n: int
    successes: int


class RunSummary(Schema):
    id: int
    agent: str
    agent_version: str
    label: str
    filters: dict[str, Any]
    created_at: datetime
    fixed: int
    still_wrong: int
    worse: int
    pending: int
    total: int
    share_fixed: Share
    case_versions: list[str]
    trained_on_batches: list[int]
    sentence: str


class RunIn(Schema):
    version: str
    label: str = ""
    filters: dict[str, Any] | None = None
    answers: list[Any]


class RunPosted(Schema):
    run: int
    created: int
    duplicates: int
    matched: int
    unchanged: int
    routed: int
    errors: list[ItemError]
    summary: RunSummary


class ComparisonsPosted(Schema):
    created: int
    duplicates: int
    errors: list[ItemError]


class Bias(Share):
    flagged: bool


class PairOut(Schema):
    version_a: str
    version_b: str
    a_wins: int
    b_wins: int
    ties: int
    both_bad: int
    total: int
    win_rate_a: Share
    position_bias: Bias


class WinRatesOut(Schema):
    pairs: list[PairOut]
    overall_position_bias: Bias


def _errors(errors: list[routing.ItemError]) -> list[dict[str, Any]]:
    return [{"index": e.index, "field": e.field, "message": e.message} for e in errors]


@router.get(
    "/agents/{slug}/regression-set",
    auth=evals_auth,
    response={200: CasesOut, **error_responses(400, 401, 403, 404)},
    summary="The agent's regression set (held-out corrected and rejected items), paginated",
)
def get_regression_set(
    request: HttpRequest,
    slug: str,
    intent: str | None = None,
    domain: str | None = None,
    error_category: str | None = None,
    agent_version: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    cursor: str | None = None,
    limit: int = Query(regression.PAGE_SIZE, ge=1, le=regression.MAX_PAGE_SIZE),  # noqa: B008
):
    """Decided items whose final verdict is `correct` or `reject`, whose input is in the
    held-out split (REGRESSION_HOLDOUT_SHARE) and in no batch's train split, oldest decision
    first. `reference` is the reviewer's correction (empty for a rejected item); `id` is the
    case id to answer. Pass `next_cursor` back as `cursor` for the next page (null: the
    end). Filters: intent, domain, error category (slug), agent version, decision days."""
    agent = selectors.agent_by_slug(slug)
    if agent is None:
        return Status(404, UNKNOWN_AGENT)
    raw = {
        "intent": intent,
        "domain": domain,
        "error_category": error_category,
        "agent_version": agent_version,
        "date_from": date_from,
        "date_to": date_to,
    }
    try:
        filters = regression.filters_clean(raw)
        cases, next_cursor = regression.cases_page(agent, filters, cursor=cursor, limit=limit)
    except regression.InvalidRequest as exc:
        return Status(400, {"detail": "invalid request", "errors": exc.errors})
    return {
        "cases": [case.as_json() for case in cases],
        "next_cursor": next_cursor,
        "filters": filters.as_dict(),
        "holdout_share": settings.REGRESSION_HOLDOUT_SHARE,
    }


@router.post(
    "/agents/{slug}/regression-runs",
    auth=evals_auth,
    response={200: RunPosted, **error_responses(400, 401, 403, 404, 413)},
    summary="Post a version's answers to the regression set (idempotent)",
)
def post_regression_run(request: HttpRequest, slug: str, body: RunIn):
    """Adds `answers` (`[{"case_id", "answer"}]`) to the run of (`version`, `label`),
    made on first post with `filters` (those of the set fetched; posting the run again
    with other filters is a 400). An answer equal to the reference (whitespace and case
    aside) is fixed, one equal to the old answer still wrong; the rest go to reviewers as
    blind comparisons. Each bad answer is an error with its index and field; the good ones
    are stored. Re-posting stores nothing twice (`duplicates`); a large run may be posted
    in several requests."""
    agent = selectors.agent_by_slug(slug)
    if agent is None:
        return Status(404, UNKNOWN_AGENT)
    if len(body.answers) > MAX_ANSWERS_PER_REQUEST:
        return Status(
            413,
            {
                "detail": f"{len(body.answers):,} answers in one request; the limit is "
                f"{MAX_ANSWERS_PER_REQUEST:,} (post the rest to the same version and label)"
            },
        )
    try:
        result = runs.regression_run_post(
            agent=agent,
            agent_version=body.version,
            label=body.label,
            filters=body.filters,
            answers=body.answers,
            actor=request.user,
        )
    except regression.InvalidRequest as exc:
        return Status(400, {"detail": "invalid request", "errors": exc.errors})
    return {
        "run": result.run.pk,
        "created": result.created,
        "duplicates": result.duplicates,
        "matched": result.matched,
        "unchanged": result.unchanged,
        "routed": result.routed,
        "errors": _errors(result.errors),
        "summary": selectors.run_summary(result.run),
    }


@router.get(
    "/regression-runs/{run_id}",
    auth=evals_auth,
    response={200: RunSummary, **error_responses(400, 401, 403, 404)},
    summary="A regression run's summary: fixed, still wrong, worse, pending, share fixed",
)
def get_regression_run(request: HttpRequest, run_id: int):
    """`share_fixed` = fixed / (fixed + still wrong + worse), with its 95% Wilson interval;
    answers still waiting for a reviewer's comparison are `pending` and not counted in it."""
    run = selectors.run_get(run_id)
    if run is None:
        return Status(404, {"detail": "no such run"})
    return selectors.run_summary(run)


_COMPARISON_SCHEMA = {
    "type": "object",
    "required": ["agent", "external_id", "input", "answer_a", "version_a", "answer_b", "version_b"],
    "properties": {
        "agent": {"type": "string", "minLength": 1, "description": "Agent slug (a known agent)."},
        "external_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": routing.MAX_EXTERNAL_ID_CHARS,
            "description": "Unique per agent: the idempotency key.",
        },
        "input": {"type": "string", "minLength": 1},
        "context": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
            },
        },
        "answer_a": {"type": "string", "minLength": 1},
        "version_a": {"type": "string", "minLength": 1, "maxLength": routing.MAX_LABEL_CHARS},
        "answer_b": {"type": "string", "minLength": 1},
        "version_b": {"type": "string", "minLength": 1, "maxLength": routing.MAX_LABEL_CHARS},
        "domain": {"type": "string", "maxLength": routing.MAX_LABEL_CHARS},
        "intent": {"type": "string", "maxLength": routing.MAX_LABEL_CHARS},
    },
}


@router.post(
    "/comparisons",
    auth=evals_auth,
    response={200: ComparisonsPosted, **error_responses(400, 401, 403, 413)},
    summary="Post version-against-version comparisons for blind pairwise review (bulk)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "maxItems": MAX_COMPARISONS_PER_REQUEST,
                        "items": _COMPARISON_SCHEMA,
                    }
                }
            },
        }
    },
)
def post_comparisons(request: HttpRequest):
    """A JSON array of `{agent, external_id, input, context?, answer_a, version_a,
    answer_b, version_b, domain?, intent?}`. Idempotent by (agent, external_id): a
    comparison sent again is a duplicate. Each error names the item's index and field;
    valid items are stored even when others fail. Which answer a reviewer sees on the left
    is drawn by the server."""
    # An array body: read here, as the bulk ingest endpoints do (the API's parser takes
    # objects only), with the same strict decoding and shape limits.
    try:
        items = load_json(request.body, root="items")
    except JsonRejected as exc:
        return Status(400, {"detail": str(exc)})
    if not isinstance(items, list):
        return Status(400, {"detail": "body must be a JSON array of objects"})
    if len(items) > MAX_COMPARISONS_PER_REQUEST:
        return Status(
            413,
            {"detail": f"{len(items):,} items; the limit is {MAX_COMPARISONS_PER_REQUEST:,}"},
        )
    result = routing.comparisons_post(items)
    return {
        "created": result.created,
        "duplicates": result.duplicates,
        "errors": _errors(result.errors),
    }


@router.get(
    "/agents/{slug}/win-rates",
    auth=evals_auth,
    response={200: WinRatesOut, **error_responses(400, 401, 403, 404)},
    summary="Win rates of version pairs, with the position-bias check",
)
def get_win_rates(request: HttpRequest, slug: str):
    """Per (version A, version B) of the agent's decided version comparisons: wins of A and
    B, ties, both bad, and the win rate of A = A wins / (A wins + B wins) with its 95%
    Wilson interval. `position_bias`: the share of decisive votes won by the answer shown
    on the left, flagged when its interval excludes 0.5."""
    agent = selectors.agent_by_slug(slug)
    if agent is None:
        return Status(404, UNKNOWN_AGENT)
    return selectors.win_rates(agent)
