"""The rubric KPI page (`/kpis/rubrics/`): per criterion, agent version and day, from the
scores (`kpis.rubrics`). Thin: the role check, the KPI filter form, one computation."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.permissions import role_required
from core.db import replica_view
from kpis import rubrics, selectors
from kpis.forms import KpiFilterForm
from kpis.views import READERS


@require_GET
@role_required(*READERS)
@replica_view
def rubric_kpis(request):
    # Always bound: every field is optional, so an empty query string means the defaults.
    form = KpiFilterForm(request.GET, agents=selectors.agent_list(), today=timezone.now().date())
    filters = form.filters()
    context: dict = {"form": form, "filters": filters}
    if filters:
        context["criteria"] = rubrics.rubric_kpis(
            agent=filters.agent, start=filters.start, end=filters.end
        )
        context["dates"] = filters.dates()
    template = "kpis/rubrics.html"
    if request.htmx and not request.htmx.boosted:
        template += "#body"
    return render(request, template, context)
