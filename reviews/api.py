"""Review API: claim the next item and decide it, for reviewers working from other tools.

Same services as the pages: `item_claim`, `decision_validate`, `review_submit`.
"""

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from accounts.models import Role
from accounts.permissions import RoleBearer
from agents.models import Agent
from core.limits import error_responses
from reviews import rubrics, selectors, services
from reviews.models import Review

router = Router(tags=["review"])
reviewer_auth = RoleBearer(Role.REVIEWER)


class ClaimIn(Schema):
    agent: str | None = None
    domain: str | None = None


class DecisionIn(Schema):
    verdict: Review.Verdict
    corrected_output: str | None = None
    error_category: str | None = None
    notes: str | None = None
    seconds_spent: int | None = Field(None, ge=0, le=86_400)
    scores: dict[str, int] | None = Field(
        None,
        description="Rubric scores, `{criterion key: value}`: pass / fail 1 or 0, scales 1–5. "
        "approve / correct / reject must score every required criterion of the agent's "
        "active rubric (`GET /agents/{slug}/rubric`); skip stores none.",
    )
    rubric_version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="The rubric version scored; another one answers 400."
    )
    version: int | None = Field(
        None, ge=0, le=2**31 - 1, description="The item version read; stale answers 409."
    )


class DecisionOut(Schema):
    id: int
    status: str


@router.post(
    "/queue/claim",
    auth=reviewer_auth,
    response={200: dict, 204: None, **error_responses(400, 401, 403, 413)},
    summary="Claim the next item of my queue",
)
def claim(request: HttpRequest, body: ClaimIn | None = None):
    """Claims the highest-priority item the caller may review and holds it with a lease.
    Answers 204 when nothing is claimable."""
    agent_id = None
    if body and body.agent:
        agent_id = Agent.objects.filter(slug=body.agent).values_list("pk", flat=True).first()
        if agent_id is None:
            raise HttpError(400, f"unknown agent {body.agent!r}")
    item = services.item_claim(
        reviewer=request.auth, agent_id=agent_id, domain=body.domain if body else None
    )
    if item is None:
        return HttpResponse(status=204)
    item = selectors.item_for_review(item.pk)
    return Status(
        200,
        {
            "item": selectors.item_payload(item),
            "lease_expires_at": item.lease_expires_at.isoformat(),
        },
    )


@router.post(
    "/items/{item_id}/decision",
    auth=reviewer_auth,
    response={200: DecisionOut, **error_responses(400, 401, 403, 404, 409, 413)},
    summary="Decide an item I hold",
)
def decision(request: HttpRequest, item_id: int, body: DecisionIn):
    """approve / correct / reject / escalate / skip an item whose lease the caller holds.
    409 when the caller does not hold the lease (or `version` is stale); 400 with field
    errors when the decision is invalid (e.g. `correct` without `corrected_output`, or a
    required rubric criterion not scored: `errors["scores.<key>"]` names it)."""
    try:
        outcome = services.decision_submit(
            item_id=item_id,
            reviewer=request.auth,
            expected_version=body.version,
            verdict=body.verdict,
            corrected_output=body.corrected_output or "",
            error_category=body.error_category,
            notes=body.notes or "",
            seconds_spent=body.seconds_spent,
            scores=body.scores,
            rubric_version=body.rubric_version,
        )
    except services.ItemNotFound:
        return Status(404, {"detail": "no such item"})
    except services.InvalidDecision as exc:
        return Status(400, {"detail": "invalid decision", "errors": exc.errors})
    except services.Conflict as exc:
        return Status(409, {"detail": str(exc)})
    return Status(200, {"id": outcome.item.pk, "status": outcome.status})


@router.post(
    "/items/{item_id}/lease",
    auth=reviewer_auth,
    response={200: dict, **error_responses(400, 401, 403, 409, 413)},
    summary="Renew my lease on an item",
)
def renew(request: HttpRequest, item_id: int):
    item = selectors.item_for_review(item_id)
    if item is None or item.claimed_by_id != request.auth.pk:
        return Status(409, {"detail": "you do not hold this item's lease"})
    try:
        services.item_renew_lease(item=item, reviewer=request.auth)
    except services.LeaseLost as exc:
        return Status(409, {"detail": str(exc)})
    return Status(
        200,
        {
            "id": item.pk,
            "lease_expires_at": item.lease_expires_at.isoformat(),
            "now": timezone.now().isoformat(),
        },
    )


class CriterionOut(Schema):
    key: str
    name: str
    help_text: str
    kind: str
    required: bool
    values: list[int]


class RubricOut(Schema):
    agent: str
    version: int | None
    criteria: list[CriterionOut]


@router.get(
    "/agents/{slug}/rubric",
    auth=reviewer_auth,
    response={200: RubricOut, **error_responses(401, 403, 404)},
    summary="The active rubric of an agent",
)
def rubric(request: HttpRequest, slug: str):
    """What a decision on this agent's items scores (`scores` of the decision): the active
    rubric's criteria in order, each with the values it takes. `version` null and no
    criteria when the agent has no rubric."""
    agent_id = Agent.objects.filter(slug=slug).values_list("pk", flat=True).first()
    if agent_id is None:
        return Status(404, {"detail": f"unknown agent {slug!r}"})
    active = rubrics.active_rubric(agent_id)
    criteria = active.criteria if active else ()
    return Status(
        200,
        {
            "agent": slug,
            "version": active.version if active else None,
            "criteria": [
                {
                    "key": c.key,
                    "name": c.name,
                    "help_text": c.help_text,
                    "kind": c.kind,
                    "required": c.required,
                    "values": sorted(v for v, _ in c.choices),
                }
                for c in criteria
            ],
        },
    )
