"""The regression set page: an agent's held-out corrected and rejected items (see
evals.regression), filtered, counted (bounded), one page at a time with the API's cursor,
as a JSONL download, and the agent's regression runs with their summaries.

Thin, as the other pages: a role check, `regression.filters_clean` for the query string (its
errors shown per field), reads from `evals.regression` and `evals.selectors`, a template (its
`#body` fragment when htmx asks). Query count is flat: the agents, the error categories, one
scan to count (up to COUNT_CAP cases, in one query for sets of up to COUNT_CHUNK candidate
rows), one for the page, the runs and their summaries (four).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from accounts.models import Role
from accounts.permissions import role_required
from agents.models import Agent
from core.db import replica_view
from evals import regression, selectors
from evals.models import RegressionRun
from reviews.models import ErrorCategory

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class Request(HttpRequest):
    htmx: HtmxDetails


PAGE = "evals/regression.html"
ROLES = (Role.ML, Role.ADMIN)
FILTERS = ("intent", "domain", "error_category", "agent_version", "date_from", "date_to")
PAGE_SIZE = 50
# The set has no cheap count (the hold-out is a hash computed per row in Python): the page
# counts by reading the set up to COUNT_CAP cases and shows "COUNT_CAP+" beyond.
COUNT_CAP = 1000
# About one candidate row in ten is held out: rows read per query while counting.
COUNT_CHUNK = 12 * COUNT_CAP
RUNS_SHOWN = 20


def _raw_filters(request: HttpRequest) -> dict[str, str]:
    return {name: request.GET.get(name, "").strip() for name in FILTERS}


def _agent(request: HttpRequest, agents: list[Agent]) -> tuple[Agent | None, str | None]:
    """The agent asked for (else the first one), or an error for the agent field."""
    slug = request.GET.get("agent", "").strip()
    if not slug:
        return (agents[0] if agents else None), None
    for agent in agents:
        if agent.slug == slug:
            return agent, None
    return None, f"unknown agent {slug!r}"


def _count(agent: Agent, filters: regression.SetFilters) -> tuple[int, bool]:
    """(cases, whether there are more than that): reads the set up to COUNT_CAP + 1 cases."""
    n = sum(
        1 for _ in islice(regression.cases_iter(agent, filters, chunk=COUNT_CHUNK), COUNT_CAP + 1)
    )
    return min(n, COUNT_CAP), n > COUNT_CAP


def _runs(agent: Agent) -> list[dict[str, Any]]:
    runs = list(
        RegressionRun.objects.filter(agent=agent)
        .select_related("agent")
        .order_by("-created_at", "-pk")[:RUNS_SHOWN]
    )
    return selectors.runs_summaries(runs)


@require_GET
@role_required(*ROLES)
@replica_view
def regression_set(request: Request) -> HttpResponse:
    agents = list(Agent.objects.order_by("name", "slug").only("pk", "slug", "name"))
    agent, agent_error = _agent(request, agents)
    raw = _raw_filters(request)
    errors: dict[str, str] = {"agent": agent_error} if agent_error else {}
    filters: regression.SetFilters | None = None
    try:
        filters = regression.filters_clean(raw)
    except regression.InvalidRequest as exc:
        errors.update(exc.errors)
    context: dict[str, Any] = {
        "agents": agents,
        "agent": agent,
        "raw": raw,
        "errors": errors,
        "categories": list(ErrorCategory.objects.values_list("slug", "name")),
        "cursor": request.GET.get("cursor", ""),
        "page_size": PAGE_SIZE,
        "count_cap": COUNT_CAP,
    }
    if agent is not None and filters is not None:
        query = {"agent": agent.slug, **{k: v for k, v in raw.items() if v}}
        context["query"] = urlencode(query)
        try:
            cases, next_cursor = regression.cases_page(
                agent, filters, cursor=context["cursor"] or None, limit=PAGE_SIZE
            )
        except regression.InvalidRequest as exc:  # a cursor this page did not make
            errors.update(exc.errors)
        else:
            count, more = _count(agent, filters)
            context.update(
                listed=True,
                cases=cases,
                count=count,
                more=more,
                next_query=urlencode({**query, "cursor": next_cursor}) if next_cursor else "",
                filtered=bool(filters.as_dict()),
            )
    if agent is not None:
        context["runs"] = _runs(agent)
    # 200 with the errors on the page: htmx swaps only 2xx answers into it.
    template = f"{PAGE}#body" if request.htmx and not request.htmx.boosted else PAGE
    return render(request, template, context)


def _jsonl(agent: Agent, filters: regression.SetFilters) -> Iterator[bytes]:
    for case in regression.cases_iter(agent, filters):
        yield orjson.dumps(case.as_json(), option=orjson.OPT_APPEND_NEWLINE)


@require_GET
@role_required(*ROLES)
def regression_download(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The whole set the filters select, streamed as JSONL (one case a line, the API's case
    objects); 404 for an unknown agent, 400 with the field errors for bad filters."""
    agent = selectors.agent_by_slug(request.GET.get("agent", "").strip())
    if agent is None:
        raise Http404("No such agent.")
    try:
        filters = regression.filters_clean(_raw_filters(request))
    except regression.InvalidRequest as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    name = f"regression-{agent.slug}-{timezone.now():%Y%m%d-%H%M}.jsonl"
    response = StreamingHttpResponse(_jsonl(agent, filters), content_type="application/jsonl")
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "no-store"
    return response
