"""The privacy KPI page (`/kpis/privacy/`): values redacted per kind and day for an agent
(`kpis.privacy`). Thin: the role check, the KPI filter form, one query."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.permissions import role_required
from agents.models import Agent
from core.db import replica_view
from kpis import privacy, selectors
from kpis.forms import KpiFilterForm
from kpis.views import READERS


@require_GET
@role_required(*READERS)
@replica_view
def privacy_kpis(request):
    # Always bound: every field is optional, so an empty query string means the defaults.
    # Agents with a policy first: the page opens on one whose counts mean something.
    with_policy = set(Agent.objects.exclude(redaction={}).values_list("pk", flat=True))
    agents = sorted(selectors.agent_list(), key=lambda agent: agent.pk not in with_policy)
    form = KpiFilterForm(request.GET, agents=agents, today=timezone.now().date())
    filters = form.filters()
    context: dict = {"form": form, "filters": filters}
    if filters:
        context["kpis"] = privacy.redaction_counts(
            agent=filters.agent, start=filters.start, end=filters.end
        )
        context["policy_on"] = filters.agent.pk in with_policy
    template = "kpis/privacy.html"
    if request.htmx and not request.htmx.boosted:
        template += "#body"
    return render(request, template, context)
