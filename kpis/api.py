"""API of the KPI app: `GET /api/v1/kpis` (DESIGN.md), for admins and ML engineers."""

from datetime import date
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.errors import HttpError

from accounts.models import Role
from accounts.permissions import RoleBearer
from agents.models import Agent
from core.db import replica_view
from core.limits import error_responses
from kpis import selectors
from kpis.definitions import KPIS

router = Router(tags=["kpis"])


class KpiRows(Schema):
    rows: list[dict[str, Any]]
    versions: list[str]


_DESCRIPTION = (
    "Daily KPI rows of one agent, one per day from `from` to `to` (inclusive, UTC days; "
    "empty days included). Without `version` the rows are over all versions "
    '(`"agent_version": null`); `versions` lists the versions that have data. Rates are '
    "`{value, low, high, n}` (95% Wilson interval), means `{value, n}`, counts `{value}`; "
    "a KPI without data has `value` null. KPIs: " + ", ".join(f"`{k.key}`" for k in KPIS) + "."
)


@router.get(
    "/kpis",
    auth=RoleBearer(Role.ADMIN, Role.ML),
    response={200: KpiRows, **error_responses(400, 401, 403, 404)},
    summary="Daily KPIs of an agent",
    description=_DESCRIPTION,
)
@replica_view
def kpis(
    request: HttpRequest,
    agent: str,
    to: date,
    from_: date = Query(..., alias="from"),  # noqa: B008 (ninja's parameter declaration)
    version: str | None = None,
):
    target = Agent.objects.filter(slug=agent).first()
    if target is None:
        raise HttpError(404, f"unknown agent {agent!r}")
    if from_ > to:
        raise HttpError(400, "`from` is after `to`")
    if (to - from_).days + 1 > settings.KPI_MAX_RANGE_DAYS:
        raise HttpError(400, f"the range is longer than {settings.KPI_MAX_RANGE_DAYS} days")
    filters = selectors.Filters(agent=target, version=version or "", start=from_, end=to)
    return selectors.api_rows(filters)
