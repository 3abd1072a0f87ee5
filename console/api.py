"""Admin API: browse review items and assign them. Same functions as the console pages."""

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from accounts.models import Role
from accounts.permissions import RoleBearer
from agents.models import Agent
from console import selectors, services
from core.limits import error_responses
from reviews.models import ReviewItem
from reviews.selectors import item_payload

router = Router(tags=["admin"])
admin_auth = RoleBearer(Role.ADMIN)
MAX_LIMIT = 500
# The interaction fields a list leaves out (JSON of unbounded size); the item's own endpoint
# answers them.
LIST_OMITS = ("context", "steps", "metadata")
MAX_OFFSET = 2**31 - 1  # PostgreSQL takes a bigint OFFSET; past this there is nothing to see


class ItemsQuery(Schema):
    status: ReviewItem.Status | None = None
    agent: str | None = Field(None, description="the agent's slug, e.g. support-bot")
    assigned_to: str | None = None
    domain: str | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class AssignIn(Schema):
    username: str


@router.get(
    "/items",
    auth=admin_auth,
    response={200: dict, **error_responses(400, 401, 403)},
    summary="Browse review items",
)
def list_items(request: HttpRequest, filters: Query[ItemsQuery]):
    """Review items by status, agent (its slug), assignee and domain (default: open items), in
    queue order. Paginated with `limit` (at most 500) and `offset`; `count` is capped at 10,000.

    A listed item's `interaction` leaves out the bulky fields `context`, `steps` and
    `metadata` (LIST_OMITS: each may hold megabytes of JSON, so a page of 500 could reach
    gigabytes); GET /api/v1/items/{item_id} answers one item with every field."""
    agent_id = None
    if filters.agent:
        agent_id = Agent.objects.filter(slug=filters.agent).values_list("pk", flat=True).first()
        if agent_id is None:
            # A filter that names nothing is refused: dropping it would list every agent.
            detail = f"unknown agent {filters.agent!r}"
            return Status(400, {"detail": detail, "errors": {"agent": detail}})
    qs = selectors.queue_browse(
        selectors.QueueFilter(
            agent_id=agent_id,
            status=filters.status or "",
            domain=filters.domain or "",
            assigned=filters.assigned_to or "",
        )
    )
    count, exact = selectors.capped_count(qs)
    page = list(
        qs.select_related("interaction")
        .prefetch_related("reviews__reviewer", "reviews__error_category")
        .defer(None)
        .defer(*(f"interaction__{name}" for name in LIST_OMITS))[
            filters.offset : filters.offset + filters.limit
        ]
    )
    return {
        "count": count,
        "count_exact": exact,
        "items": [_list_payload(item) for item in page],
        "next_offset": filters.offset + filters.limit if len(page) == filters.limit else None,
    }


def _list_payload(item: ReviewItem) -> dict:
    """`item_payload` without the interaction's LIST_OMITS fields, which the list query
    deferred: they are blanked on the instance (so nothing loads them) and left out."""
    for name in LIST_OMITS:
        setattr(item.interaction, name, None)
    payload = item_payload(item)
    for name in LIST_OMITS:
        del payload["interaction"][name]
    return payload


@router.get(
    "/items/{item_id}",
    auth=admin_auth,
    response={200: dict, **error_responses(400, 401, 403, 404)},
    summary="Show a review item",
)
def get_item(request: HttpRequest, item_id: int):
    """One review item with every field, its interaction's `context`, `steps` and `metadata`
    included (GET /api/v1/items leaves those out)."""
    item = (
        ReviewItem.objects.select_related("agent", "assigned_to", "interaction")
        .prefetch_related("reviews__reviewer", "reviews__error_category")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        return Status(404, {"detail": "no such item"})
    return item_payload(item)


@router.post(
    "/items/{item_id}/assign",
    auth=admin_auth,
    response={200: dict, **error_responses(400, 401, 403, 404, 409, 413)},
    summary="Assign an item to a reviewer",
)
def assign_item(request: HttpRequest, item_id: int, body: AssignIn):
    """Assigns the item to the reviewer; 409 when it cannot be (decided, outside their
    domains, or they already reviewed it)."""
    if not ReviewItem.objects.filter(pk=item_id).exists():
        return Status(404, {"detail": "no such item"})
    reviewer = get_user_model().objects.filter(username=body.username, is_active=True).first()
    if reviewer is None:
        return Status(400, {"detail": f"no active user {body.username!r}"})
    result = services.items_assign(
        items=ReviewItem.objects.filter(pk=item_id), reviewer=reviewer, actor=request.auth
    )
    if not result.changed and "already assigned to them" not in result.skipped:
        return Status(409, {"detail": result.message("Assigned")})
    return {"id": item_id, "assigned_to": reviewer.username}
