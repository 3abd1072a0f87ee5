"""The "Deadlines" KPI page (`/kpis/deadlines/`): the share of items reviewed within their
deadline per agent and day, and the open backlog by age bucket. Thin: the role check, the
KPI filter form, two aggregate queries (kpis.sla_selectors)."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.permissions import role_required
from core.db import replica_view
from kpis import selectors, sla_selectors
from kpis.forms import KpiFilterForm
from kpis.views import READERS


@require_GET
@role_required(*READERS)
@replica_view
def deadlines(request):
    # Always bound: every field is optional, so an empty query string means the defaults.
    now = timezone.now()
    form = KpiFilterForm(request.GET, agents=selectors.agent_list(), today=now.date())
    filters = form.filters()
    context: dict = {"form": form, "filters": filters, "buckets": sla_selectors.BUCKET_LABELS}
    if filters:
        backlog = sla_selectors.backlog(now, agent_id=filters.agent.pk)
        context.update(
            backlog=backlog,
            totals=sla_selectors.backlog_totals(backlog),
            within=sla_selectors.within_deadline(
                filters.start, filters.end, agent_id=filters.agent.pk
            ),
        )
    template = "kpis/deadlines.html"
    if request.htmx and not request.htmx.boosted:
        template += "#body"
    return render(request, template, context)
