"""The admins' comparison list: filter the pairwise queue, select, assign to a reviewer.

`manage` lists comparisons (open ones by default) 50 a page; `assign` hands the selected
ones to an active reviewer through `services.comparison_assign` and comes back to the same
filters with a message (how many were assigned, why the others were skipped).

The list names the two versions compared (admins may know them) but never which answer the
reviewers see on which side. Query count is flat: the agents, the reviewers, the count, the
page (agent, assignee, claimer joined; the votes counted in a subquery).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role
from accounts.permissions import role_required
from agents.models import Agent
from evals import services
from evals.models import Comparison, ComparisonVote

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PAGE_SIZE = 50
OPEN = "open"
ANY = "any"
UNASSIGNED = "-"
OPEN_STATUSES = (
    Comparison.Status.PENDING,
    Comparison.Status.NEEDS_SECOND_REVIEW,
    Comparison.Status.CLAIMED,
)
FILTERS = ("agent", "status", "kind", "domain", "assigned_to")


def _reviewers() -> list[User]:
    """Active users with the reviewer role, by username (one query)."""
    return list(
        get_user_model()
        .objects.filter(groups__name=Role.REVIEWER, is_active=True)
        .order_by("username")
        .distinct()
        .only("pk", "username")
    )


class ManageFilterForm(forms.Form):
    agent = forms.ChoiceField(required=False)
    status = forms.ChoiceField(
        required=False,
        choices=[
            (OPEN, "Open (pending, second review, claimed)"),
            (ANY, "Any status"),
            *Comparison.Status.choices,
        ],
    )
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *Comparison.Kind.choices])
    domain = forms.CharField(required=False, max_length=100)
    assigned_to = forms.ChoiceField(required=False, label="Assigned to")

    def __init__(self, data, *, agents: list[Agent], reviewers: list[User]) -> None:
        super().__init__(data)
        cast(forms.ChoiceField, self.fields["agent"]).choices = [("", "Any agent")] + [
            (a.slug, a.name) for a in agents
        ]
        cast(forms.ChoiceField, self.fields["assigned_to"]).choices = [
            ("", "Anyone or no one"),
            (UNASSIGNED, "Unassigned"),
        ] + [(u.username, u.username) for u in reviewers]

    def queryset(self) -> QuerySet[Comparison] | None:
        """The comparisons matching the filters, or None when a filter cannot be read."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        qs = Comparison.objects.all()
        status = data["status"] or OPEN
        if status == OPEN:
            qs = qs.filter(status__in=OPEN_STATUSES)
        elif status != ANY:
            qs = qs.filter(status=status)
        if data["agent"]:
            qs = qs.filter(agent__slug=data["agent"])
        if data["kind"]:
            qs = qs.filter(kind=data["kind"])
        if data["domain"].strip():
            qs = qs.filter(domain=data["domain"].strip())
        if data["assigned_to"] == UNASSIGNED:
            qs = qs.filter(assigned_to__isnull=True)
        elif data["assigned_to"]:
            qs = qs.filter(assigned_to__username=data["assigned_to"])
        return qs


def _rows(qs: QuerySet[Comparison]) -> QuerySet[Comparison]:
    votes = (
        ComparisonVote.objects.filter(comparison=OuterRef("pk"), is_adjudication=False)
        .order_by()
        .values("comparison")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        qs.select_related("agent", "assigned_to", "claimed_by")
        .only(
            "pk",
            "kind",
            "domain",
            "status",
            "version_a",
            "version_b",
            "required_reviews",
            "created_at",
            "agent__slug",
            "agent__name",
            "assigned_to__username",
            "claimed_by__username",
        )
        .annotate(
            vote_count=Coalesce(Subquery(votes, output_field=IntegerField()), Value(0)),
        )
        .order_by("-priority", "created_at", "pk")
    )


@role_required(Role.ADMIN)
@require_GET
def manage(request: HttpRequest) -> HttpResponse:
    """Comparisons by filter, 50 a page, with the "assign selected" form."""
    agents = list(Agent.objects.order_by("slug").only("pk", "slug", "name"))
    reviewers = _reviewers()
    form = ManageFilterForm(request.GET, agents=agents, reviewers=reviewers)
    qs = form.queryset()
    paginator = Paginator(_rows(qs) if qs is not None else Comparison.objects.none(), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    filters = {name: request.GET[name] for name in FILTERS if request.GET.get(name)}
    return render(
        request,
        "evals/manage.html",
        {
            "form": form,
            "filter_errors": qs is None,
            "page": page,
            "paginator": paginator,
            "reviewers": reviewers,
            "filters": filters,
        },
    )


def _back(request: HttpRequest) -> HttpResponse:
    """To the list with the filters (and page) the assign form carried; only known keys."""
    keys = [*FILTERS, "page"]
    query = urlencode({k: request.POST[k] for k in keys if request.POST.get(k)})
    return redirect(f"/compare/manage/?{query}" if query else "/compare/manage/")


def _message(result: services.AssignResult, username: str) -> str:
    n = result.changed
    text = f"Assigned {n} comparison{'s' if n != 1 else ''} to {username}."
    if result.skipped:
        reasons = ", ".join(f"{count} {reason}" for reason, count in result.skipped.items())
        text += f" Skipped: {reasons}."
    return text


@role_required(Role.ADMIN)
@require_POST
def assign(request: HttpRequest) -> HttpResponse:
    """Assigns the selected comparisons to the chosen reviewer."""
    back = _back(request)
    try:
        ids = sorted({int(v) for v in request.POST.getlist("ids")})
    except ValueError:
        messages.error(request, "The selection could not be read; nothing was assigned.")
        return back
    if not ids:
        messages.error(request, "Select at least one comparison to assign.")
        return back
    username = request.POST.get("reviewer", "")
    reviewer = (
        get_user_model()
        .objects.filter(username=username, groups__name=Role.REVIEWER, is_active=True)
        .select_related("reviewer_profile")
        .first()
    )
    if reviewer is None:
        messages.error(request, "Choose an active reviewer; nothing was assigned.")
        return back
    # The view's role check let only a signed-in admin through.
    admin = cast("User", request.user)
    result = services.comparison_assign(admin=admin, comparison_ids=ids, reviewer=reviewer)
    level = messages.SUCCESS if result.changed and not result.skipped else messages.WARNING
    messages.add_message(request, level, _message(result, reviewer.username))
    return back
