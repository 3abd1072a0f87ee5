"""The admin console: queue browser with bulk actions, an item's page, workload, policies,
audit log (pools are in `console.pools`, adjudication in `console.adjudication`).

Thin views: role check, a form, a read from `console.selectors` or a write in
`console.services`, a template. Every page is a fixed number of queries.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts.models import Role
from accounts.permissions import role_required
from agents.models import Agent
from console import selectors, services
from console.forms import (
    AgentPolicyForm,
    AuditFilterForm,
    BulkActionForm,
    QueueFilterForm,
    reviewer_choices,
)
from console.rubric_forms import CriterionFormSet, RubricVersionForm, initial_rows
from console.templatetags.console_tags import compact_json
from core.db import chunked, replica_view
from core.spreadsheet import csv_lines
from kpis import selectors as kpi_selectors
from reviews import rubrics, screen
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.models import ReviewItem

PAGE_SIZE = 50
CONFIRM_ABOVE = 10  # bulk actions on more items than this are confirmed once


class CappedPaginator(Paginator):
    """A paginator whose count stops at selectors.COUNT_CAP (a million-row filter stays fast)."""

    @property
    def count(self) -> int:
        if not hasattr(self, "_capped"):
            self._capped = selectors.capped_count(self.object_list)
        return self._capped[0]

    @property
    def exact(self) -> bool:
        self.count  # noqa: B018 (fills the cache)
        return self._capped[1]


def _agents() -> list[Agent]:
    return list(Agent.objects.order_by("slug").only("pk", "slug", "name"))


@role_required(Role.ADMIN)
@require_GET
def browser(request):
    """The queue browser: filter, select, act."""
    reviewers = reviewer_choices()  # one query for both forms
    form = QueueFilterForm(request.GET or None, agents=_agents(), reviewers=reviewers)
    paginator = CappedPaginator(selectors.browser_rows(form.queue_filter()), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "rows": selectors.browser_page(page.object_list),
        "paginator": paginator,
        "bulk": BulkActionForm(reviewers=reviewers),
        "filter_errors": form.error_list() if form.is_bound else [],
        # No backlog strip here: it aggregates every open item (the workload page has it).
        "alerts": kpi_selectors.alerts_for(None),  # the admin's home shows the KPI alerts
    }
    template = "console/browser.html#results" if request.htmx else "console/browser.html"
    return render(request, template, context)


@role_required(Role.ADMIN)
@require_POST
def bulk(request):
    """Applies a bulk action to the selected items or to everything matching the filters.

    Over CONFIRM_ABOVE items, the first POST answers with a confirmation form carrying the
    count and a token of the exact selection; the action runs only when a POST with
    `confirm=yes` brings a token that matches the selection found then (so it never acts on
    items other than those confirmed). Filters that cannot be read change nothing.
    """
    reviewers = reviewer_choices()
    form = BulkActionForm(request.POST, reviewers=reviewers)
    filters = QueueFilterForm(request.POST, agents=_agents(), reviewers=reviewers)
    back = redirect_back(request)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(
                request, f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
            )
        return back
    data = form.cleaned_data
    queue_filter = filters.queue_filter()
    if data["scope"] == "matching" and queue_filter is None:
        errors = "; ".join(filters.error_list(by_name=True))
        messages.error(request, f"The filters are invalid ({errors}), so nothing was changed.")
        return back
    ids = selectors.bulk_selection(
        ids=data["ids"] if data["scope"] == "selected" else None, f=queue_filter
    )
    token = form.selection_token(ids=ids, user_id=request.user.pk)
    if len(ids) > CONFIRM_ABOVE and not form.confirmed(token):
        return _bulk_confirm(request, form=form, count=len(ids), token=token)
    # The ids just checked, not the filters again: what was confirmed is what changes.
    items = ReviewItem.objects.filter(pk__in=ids)
    action = data["action"]
    try:
        if action == "assign":
            reviewer = get_object_or_404(
                get_user_model(), username=data["reviewer"], is_active=True
            )
            result = services.items_assign(items=items, reviewer=reviewer, actor=request.user)
            verb = f"Assigned to {reviewer.username}:"
        elif action == "spread":
            pool = list(
                get_user_model()
                .objects.filter(groups__name="reviewer", is_active=True)
                .select_related("reviewer_profile")
            )
            result = services.items_spread(items=items, reviewers=pool, actor=request.user)
            verb = "Spread across the pool:"
        elif action == "unassign":
            result, verb = services.items_unassign(items=items, actor=request.user), "Unassigned"
        elif action == "release":
            result, verb = services.items_release(items=items, actor=request.user), "Released"
        else:
            result = services.items_set_priority(
                items=items, priority=data["priority"], actor=request.user
            )
            verb = f"Priority {data['priority']} set on"
    except review_services.InvalidDecision as exc:
        messages.error(request, str(exc))
        return back
    messages.success(request, result.message(verb))
    if request.htmx:
        return HttpResponseClientRedirect(back["Location"])
    return back


def _bulk_confirm(request, *, form: BulkActionForm, count: int, token: str):
    """The confirmation step: the same POST again (every field but the token and the
    button), the count, and the token of the selection it was counted on."""
    carried = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in ("csrfmiddlewaretoken", "confirm", "selection")
        for value in values
    ]
    context = {
        "what": form.describe(),
        "count": count,
        "token": token,
        "carried": carried,
        # A confirmation that came back with another token: the items (or the action)
        # changed since the lead saw the count.
        "stale": form.cleaned_data["confirm"] == "yes",
        "back": redirect_back(request)["Location"],
    }
    template = "console/bulk_confirm.html#confirm" if request.htmx else "console/bulk_confirm.html"
    return render(request, template, context)


def redirect_back(request):
    """Back to the browser with the filters the bulk form carried."""
    keys = [f for f in QueueFilterForm.base_fields if request.POST.get(f)]
    query = urlencode({k: request.POST[k] for k in keys})
    return redirect(f"/console/?{query}" if query else "/console/")


@role_required(Role.ADMIN)
@require_GET
@replica_view
def workload_page(request):
    sort = request.GET.get("sort", "username")
    rows = selectors.reviewer_workload(sort=sort)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/workload.html",
        {
            "page": page,
            "sort": sort,
            "backlog": selectors.backlog_by_agent(),
            "columns": [
                ("username", "Reviewer"),
                ("open", "Open assigned"),
                ("today", "Reviewed today"),
                ("week", "Decided (7 days)"),
                ("median_seconds", "Median s / decision"),
                ("agreement", "Four-eyes agreement"),
            ],
        },
    )


@role_required(Role.ADMIN)
@require_GET
def agents(request):
    return render(request, "console/agents.html", {"agents": Agent.objects.order_by("slug")})


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def agent_edit(request, slug: str):
    """An agent's review policy and KPI alert thresholds, one field each; a value that is
    not valid is shown next to its field and nothing is saved."""
    agent = get_object_or_404(Agent, slug=slug)
    form = AgentPolicyForm(request.POST or None, instance=agent)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.agent_policy_update(
                    agent=Agent.objects.get(pk=agent.pk), changes=form.changes(), actor=request.user
                )
            except ValidationError as exc:
                form.add_service_errors(exc)
            else:
                messages.success(request, f"Saved the review policy of {agent.slug}.")
                return redirect("console:agents")
        status = 400
    return render(request, "console/agent_edit.html", {"form": form, "agent": agent}, status=status)


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def rubric_edit(request, slug: str):
    """An agent's rubric: its criteria, one row each, and its earlier versions. Saving makes
    the next version (`reviews.rubrics.rubric_create`); earlier scores keep theirs. Errors
    are shown under their field and nothing is saved."""
    agent = get_object_or_404(Agent, slug=slug)
    history = rubrics.rubric_history(agent)
    current = history[0] if history else None
    version = current.version if current else 0
    initial = initial_rows(current.criteria.all()) if current else []
    if request.method == "GET":
        formset = CriterionFormSet(initial=initial, prefix="criteria")
        base = RubricVersionForm(initial={"base_version": version})
        context = {"agent": agent, "formset": formset, "base": base, "history": history}
        return render(request, "console/rubric_edit.html", context)
    formset = CriterionFormSet(request.POST, initial=initial, prefix="criteria")
    base = RubricVersionForm(request.POST)
    if formset.is_valid() and base.is_valid():
        criteria, rows = formset.criteria()
        try:
            saved = rubrics.rubric_create(
                agent=agent,
                criteria=criteria,
                actor=request.user,
                base_version=base.cleaned_data["base_version"],
            )
        except rubrics.InvalidCriteria as exc:
            for index, problems in exc.problems.items():
                for name, message in problems.items():
                    if index < len(rows):
                        rows[index].add_error(name, message)
                    else:
                        formset.non_form_errors().append(message)
        except rubrics.RubricChanged as exc:
            base.add_error(None, str(exc))
        else:
            if saved is None:
                messages.info(
                    request, f"Nothing changed: the rubric of {agent.slug} stays v{version}."
                )
            else:
                messages.success(
                    request, f"Saved version {saved.version} of the rubric of {agent.slug}."
                )
            return redirect("console:rubric_edit", slug=agent.slug)
    context = {"agent": agent, "formset": formset, "base": base, "history": history}
    return render(request, "console/rubric_edit.html", context, status=400)


@role_required(Role.ADMIN)
@require_GET
def item(request, item_id: int):
    """An item as the lead sees it: the conversation, the agent's answer, every review and
    the item's audit trail, read-only, with its place in the queue. Three queries of its own
    (the item with its interaction and agent, its reviews, its latest events)."""
    found = review_selectors.item_for_review(item_id)
    if found is None:
        raise Http404("No such item.")
    events, older = selectors.item_audit_trail(found.pk)
    context = {
        **screen.item_context(found),
        "reviews": list(found.reviews.all()),  # skips too: the lead sees every pass
        "events": events,
        "older_events": older,
        "editable": False,
    }
    return render(request, "console/item.html", context)


@role_required(Role.ADMIN)
@require_GET
def audit(request):
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = selectors.audit_log(
        actor=filters.get("user") or "",
        item_id=filters.get("item"),
        action=filters.get("action") or "",
        since=filters.get("since"),
        until=filters.get("until"),
    )
    if request.GET.get("format") == "csv":
        rows = (
            (
                e.created_at.isoformat(),
                e.actor.username if e.actor else "",
                e.action,
                e.target_type,
                e.target_id,
                compact_json(e.before),
                compact_json(e.after),
            )
            for e in chunked(events, 2000)
        )
        response = StreamingHttpResponse(
            csv_lines(
                ["time", "user", "action", "target_type", "target_id", "before", "after"], rows
            ),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="coachdesk-audit.csv"'
        return response
    page = CappedPaginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/audit.html", {"form": form, "page": page})
