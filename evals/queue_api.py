"""Comparison queue API: claim the next comparison and vote on it, for reviewers working
from other tools. Same services as the pages: `comparison_claim`, `comparison_decide`.

Choices are in terms of the stored answers (`a`, `b`, `tie`, `both_bad`). The payload never
names the versions; `a_on_left` is the order the comparison was drawn with, which the vote
records as the order the reviewer saw: a client should show `answer_a` on the left when it
is true.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema, Status

from accounts.models import Role
from accounts.permissions import RoleBearer
from core.limits import error_responses
from evals import claims, services
from evals.models import Comparison
from reviews.selectors import transcript

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ApiRequest(HttpRequest):
    auth: User  # set by RoleBearer: the token's user


router = Router(tags=["comparisons"])
reviewer_auth = RoleBearer(Role.REVIEWER)
admin_auth = RoleBearer(Role.ADMIN)


class AssignIn(Schema):
    ids: list[int] = Field(..., min_length=1, max_length=1000)
    username: str = Field(..., min_length=1, max_length=150)


class AssignOut(Schema):
    assigned: int
    assigned_to: str
    skipped: dict[str, int]


class ComparisonOut(Schema):
    id: int
    agent: str
    domain: str
    input: str
    context: list
    answer_a: str
    answer_b: str
    a_on_left: bool = Field(description="Show answer_a on the left when true (recorded).")
    required_reviews: int
    status: str
    version: int = Field(description="Send it back with the vote; a stale one answers 409.")


class ClaimOut(Schema):
    comparison: ComparisonOut
    lease_expires_at: str


class VoteIn(Schema):
    choice: Comparison.Choice
    reason: str | None = Field(None, max_length=services.MAX_REASON)
    seconds_spent: int | None = Field(None, ge=0, le=86_400)
    version: int = Field(..., ge=0, le=2**31 - 1, description="The version claimed.")


class VoteOut(Schema):
    id: int
    status: str
    outcome: str


def _payload(comparison: Comparison) -> dict:
    return {
        "id": comparison.pk,
        "agent": comparison.agent.slug,
        "domain": comparison.domain,
        "input": comparison.input,
        "context": transcript(comparison.context),
        "answer_a": comparison.answer_a,
        "answer_b": comparison.answer_b,
        "a_on_left": comparison.a_on_left,
        "required_reviews": comparison.required_reviews,
        "status": comparison.status,
        "version": comparison.version,
    }


@router.post(
    "/comparisons/claim",
    auth=reviewer_auth,
    response={200: ClaimOut, 204: None, **error_responses(401, 403)},
    summary="Claim the next comparison of my queue",
)
def claim(request: ApiRequest):
    """The comparison the caller holds, else the next one they may vote on, held with a
    lease. Answers 204 when nothing is claimable."""
    comparison = claims.comparison_claim(reviewer=request.auth)
    if comparison is None:
        return HttpResponse(status=204)
    full = claims.comparison_for_screen(comparison.pk)
    assert full is not None and full.lease_expires_at is not None
    return Status(
        200,
        {"comparison": _payload(full), "lease_expires_at": full.lease_expires_at.isoformat()},
    )


@router.post(
    "/comparisons/{comparison_id}/decide",
    auth=reviewer_auth,
    response={200: VoteOut, **error_responses(400, 401, 403, 404, 409, 413)},
    summary="Vote on a comparison I hold",
)
def decide(request: ApiRequest, comparison_id: int, body: VoteIn):
    """`a` / `b` / `tie` / `both_bad` on a comparison whose lease the caller holds. 409 when
    they do not hold it (or `version` is stale, or they already voted on it)."""
    try:
        outcome = services.comparison_decide(
            reviewer=request.auth,
            comparison_id=comparison_id,
            choice=body.choice,
            reason=body.reason or "",
            version=body.version,
            seconds_spent=body.seconds_spent,
        )
    except services.ComparisonNotFound:
        return Status(404, {"detail": "no such comparison"})
    except services.InvalidVote as exc:
        return Status(400, {"detail": "invalid vote", "errors": exc.errors})
    except services.Conflict as exc:
        return Status(409, {"detail": str(exc)})
    c = outcome.comparison
    return Status(200, {"id": c.pk, "status": c.status, "outcome": c.outcome})


@router.post(
    "/comparisons/assign",
    auth=admin_auth,
    response={200: AssignOut, **error_responses(400, 401, 403, 413)},
    summary="Assign open comparisons to a reviewer",
)
def assign(request: ApiRequest, body: AssignIn):
    """Assigns the open comparisons among `ids` to the reviewer (their next claim takes
    them first); the rest are skipped with the reason counted: not found, not open,
    outside the reviewer's domains, already voted on or assigned to them."""
    from django.contrib.auth import get_user_model

    reviewer = get_user_model().objects.filter(username=body.username, is_active=True).first()
    if reviewer is None:
        return Status(400, {"detail": f"no active user {body.username!r}"})
    result = services.comparison_assign(
        admin=request.auth, comparison_ids=body.ids, reviewer=reviewer
    )
    return {"assigned": result.changed, "assigned_to": reviewer.username, "skipped": result.skipped}
