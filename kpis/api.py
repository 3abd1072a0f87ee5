"""API of the KPI app: `GET /api/v1/kpis` (DESIGN.md), for admins and ML engineers."""

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.errors import HttpError

from accounts.models import Role
from accounts.permissions import RoleBearer
from agents.models import Agent
from core.db import replica_view
from core.limits import error_responses
from kpis import privacy, rubrics, selectors, sla_selectors
from kpis.definitions import KPIS

router = Router(tags=["kpis"])


def _agent_and_days(agent: str, to: date | None, from_: date | None) -> tuple[Agent, date, date]:
    """The agent named by `agent` (404 if unknown) and the inclusive UTC days from `from_`
    to `to` (default: the last 30 days to today); 400 for a range that cannot be read."""
    target = Agent.objects.filter(slug=agent).first()
    if target is None:
        raise HttpError(404, f"unknown agent {agent!r}")
    end = to or timezone.now().date()
    if end > date.max - timedelta(days=2):  # the query runs to the day after `end`
        raise HttpError(400, "`to` is too late")
    if from_ is None and end < date.min + timedelta(days=29):
        raise HttpError(400, "`to` is too early for the default range; give `from`")
    start = from_ or end - timedelta(days=29)
    if start > end:
        raise HttpError(400, "`from` is after `to`")
    if (end - start).days + 1 > settings.KPI_MAX_RANGE_DAYS:
        raise HttpError(400, f"the range is longer than {settings.KPI_MAX_RANGE_DAYS} days")
    return target, start, end


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


class RubricKpiRows(Schema):
    rows: list[dict[str, Any]]


@router.get(
    "/kpis/rubrics",
    auth=RoleBearer(Role.ADMIN, Role.ML),
    response={200: RubricKpiRows, **error_responses(400, 401, 403, 404)},
    summary="Rubric scores of an agent per criterion, agent version and day",
    description=(
        "One row per criterion (of a rubric version) and agent version scored in reviews "
        "made from `from` to `to` (inclusive, UTC days; default the last 30 days): "
        "`{criterion, name, kind, rubric_version, agent_version, period, days}`, `period` "
        "and each of `days` being `{value, low, high, n}`: the pass rate with its 95% "
        "Wilson interval for `pass_fail`, the mean with its 95% normal interval for "
        "`scale` (null without scores; the interval from two scores on)."
    ),
)
@replica_view
def rubric_kpis(
    request: HttpRequest,
    agent: str,
    to: date | None = None,
    from_: date | None = Query(None, alias="from"),  # noqa: B008 (ninja's parameter declaration)
):
    target, start, end = _agent_and_days(agent, to, from_)
    kpis = rubrics.rubric_kpis(agent=target, start=start, end=end)
    dates = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return {"rows": rubrics.api_rows(kpis, dates)}


class PrivacyRows(Schema):
    rows: list[dict[str, Any]]


@router.get(
    "/kpis/privacy",
    auth=RoleBearer(Role.ADMIN, Role.ML),
    response={200: PrivacyRows, **error_responses(400, 401, 403, 404)},
    summary="Redacted personal data of an agent per kind and day",
    description=(
        "How many values redaction replaced by placeholders at ingest, one row per UTC day "
        "and kind with any from `from` to `to` (inclusive; default the last 30 days): "
        "`{day, kind, count}`; kinds are `email`, `phone`, `iban`, `card` and the names of "
        "the agent's own patterns. Counts only: never a value."
    ),
)
@replica_view
def privacy_kpis(
    request: HttpRequest,
    agent: str,
    to: date | None = None,
    from_: date | None = Query(None, alias="from"),  # noqa: B008 (ninja's parameter declaration)
):
    target, start, end = _agent_and_days(agent, to, from_)
    return {"rows": privacy.api_rows(privacy.redaction_counts(agent=target, start=start, end=end))}


class DeadlineKpis(Schema):
    rows: list[dict[str, Any]]
    backlog: list[dict[str, Any]]


@router.get(
    "/kpis/deadlines",
    auth=RoleBearer(Role.ADMIN, Role.ML),
    response={200: DeadlineKpis, **error_responses(400, 401, 403, 404)},
    summary="Review deadlines of an agent: reviewed within the deadline, open backlog by age",
    description=(
        "`rows`: one per UTC day of decision from `from` to `to` (inclusive; default the last "
        "30 days) with decided items that had a deadline: `{day, decided, within, share, low, "
        "high}` (share reviewed by the due time without a breach, 95% Wilson interval). "
        "`backlog`: the agent's open items now, per domain: `{domain, lt_1h, 1h_4h, 4h_24h, "
        "1d_3d, gt_3d, overdue, total}` (ages since routed)."
    ),
)
@replica_view
def deadline_kpis(
    request: HttpRequest,
    agent: str,
    to: date | None = None,
    from_: date | None = Query(None, alias="from"),  # noqa: B008 (ninja's parameter declaration)
):
    target, start, end = _agent_and_days(agent, to, from_)
    rows = sla_selectors.within_deadline(start, end, agent_id=target.pk)
    backlog = sla_selectors.backlog(timezone.now(), agent_id=target.pk)
    return {
        "rows": [
            {
                "day": r.day.isoformat(),
                "decided": r.decided,
                "within": r.within,
                "share": r.share,
                "low": r.interval[0] if r.interval else None,
                "high": r.interval[1] if r.interval else None,
            }
            for r in sorted(rows, key=lambda r: r.day)
        ],
        "backlog": [
            {"domain": b.domain, **b.buckets, "overdue": b.overdue, "total": b.total}
            for b in backlog
        ],
    }
