"""Pages of the KPI app. Thin: role checks, a form for the query string, a selector or a
service, a template (its htmx fragment when htmx asks)."""

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from accounts.models import Role
from accounts.permissions import role_required
from core.db import replica_view
from evals import selectors as evals_selectors
from kpis import selectors, services
from kpis.forms import CalibrationForm, KpiFilterForm
from kpis.models import KpiRun

READERS = (Role.ADMIN, Role.ML)


def _selection(request, form_class=KpiFilterForm):
    """The filter form bound to the query string, the agent's versions and the filters."""
    # Always bound: every field is optional, so an empty query string means the defaults.
    form = form_class(request.GET, agents=selectors.agent_list(), today=timezone.now().date())
    agent = form.selected_agent()
    versions = selectors.agent_versions(agent) if agent else []
    return form, versions, form.filters(versions=versions) if agent else None


def _partial(request, template: str, name: str) -> str:
    return f"{template}#{name}" if request.htmx and not request.htmx.boosted else template


@require_GET
@role_required(*READERS)
@replica_view
def dashboard(request):
    form, versions, filters = _selection(request)
    context = {"form": form, "versions": versions, "filters": filters}
    if filters:
        context.update(selectors.dashboard(filters))
        context["loop"] = evals_selectors.loop_by_version(filters.agent)
    context["alerts"] = selectors.alerts_for(filters.agent if filters else None)
    context["runs"] = selectors.last_runs()
    return render(request, _partial(request, "kpis/dashboard.html", "body"), context)


@require_GET
@role_required(*READERS)
@replica_view
def export_csv(request):
    form, _, filters = _selection(request)
    if filters is None:
        raise Http404("No agent to export.")
    name = f"kpis-{filters.agent.slug}-{filters.start}-{filters.end}.csv"
    response = HttpResponse(selectors.csv_text(filters), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@role_required(*READERS)
@replica_view
def calibration(request):
    form, versions, filters = _selection(request, CalibrationForm)
    context = {"form": form, "versions": versions, "filters": filters}
    if filters:
        context.update(selectors.calibration(filters, target=form.target_value()))
    return render(request, _partial(request, "kpis/calibration.html", "body"), context)


@require_GET
@role_required(*READERS)
@replica_view
def agreement(request):
    form, _, filters = _selection(request)
    context = {"form": form, "filters": filters}
    if filters:
        context.update(selectors.agreement(filters.start, filters.end, filters.agent))
    return render(request, _partial(request, "kpis/agreement.html", "body"), context)


@require_POST
@role_required(Role.ADMIN)
def recompute(request):
    """The "recompute now" button: queues a run (or shows the one already running)."""
    run, _ = services.run_request(trigger=KpiRun.Trigger.BUTTON, user=request.user)
    run = selectors.run_get(run.pk)  # run already, when tasks execute eagerly
    if request.htmx:
        response = render(request, "kpis/_run.html", {"run": run})
        if not run.active:
            trigger_client_event(response, "kpisRecomputed")
        return response
    return redirect("kpis:run", pk=run.pk)


@require_GET
@role_required(*READERS)
def run_status(request, pk: int):
    """A run's progress: the polled fragment for htmx, a page otherwise. When the fragment
    sees the run finish it stops polling (the new fragment has no trigger) and tells the
    dashboard to reload its data."""
    run = selectors.run_get(pk)
    if run is None:
        raise Http404("No such recompute.")
    if not request.htmx:
        return render(request, "kpis/run.html", {"run": run})
    response = render(request, "kpis/_run.html", {"run": run})
    if not run.active:
        trigger_client_event(response, "kpisRecomputed")
    return response
