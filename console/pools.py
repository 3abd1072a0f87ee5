"""The reviewer pools pages: every pool, one pool with its members (add and remove a
reviewer), and one reviewer's pool settings.

A pool is a review domain and the reviewers whose profile lists it (`console.selectors`).
Adding and removing are plain POSTs that redirect back to the pool with a message (the
page works without JavaScript); a refused change renders the pool again with the error
next to its field.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import ReviewerProfile, Role
from accounts.permissions import role_required
from console import selectors, services
from console.forms import PoolAddForm, PoolNameForm, PoolRemoveForm, ReviewerProfileForm


@role_required(Role.ADMIN)
@require_GET
def pools(request):
    """Every pool with its members, and every reviewer. "Open a pool" (a GET with the domain)
    goes to that pool's page, where a new pool gets its first reviewer. Four queries."""
    form = PoolNameForm(request.GET if "domain" in request.GET else None)
    if form.is_valid():
        return redirect(_pool_url(form.cleaned_data["domain"]))
    people = selectors.reviewers()
    context = {"form": form, "pools": selectors.pools(people=people), "reviewers": people}
    return render(request, "console/pools.html", context, status=400 if form.errors else 200)


@role_required(Role.ADMIN)
@require_GET
def pool(request, domain: str):
    """A pool: its members (each with a "Remove" button) and the form that adds a reviewer."""
    found, candidates = selectors.pool_detail(domain)
    return _render_pool(request, found, candidates)


@role_required(Role.ADMIN)
@require_POST
def pool_add(request):
    """Adds the chosen reviewer to the pool named by `domain` (`services.pool_member_add`)."""
    name = PoolNameForm(request.POST)
    if not name.is_valid():
        return _bad_pool_name(request, name)
    found, candidates = selectors.pool_detail(name.cleaned_data["domain"])
    form = PoolAddForm(request.POST, pool=found, candidates=candidates)
    if form.is_valid():
        user = form.cleaned_data["reviewer"]
        try:
            services.pool_member_add(domain=found.domain, reviewer=user, actor=request.user)
        except services.PoolChangeRefused as exc:
            form.add_error("reviewer", str(exc))
        else:
            messages.success(request, f"Added {user.get_username()} to the {found.domain} pool.")
            return redirect(_pool_url(found.domain))
    return _render_pool(request, found, candidates, add_form=form, status=400)


@role_required(Role.ADMIN)
@require_POST
def pool_remove(request):
    """Takes the named member out of the pool (`services.pool_member_remove`)."""
    name = PoolNameForm(request.POST)
    if not name.is_valid():
        return _bad_pool_name(request, name)
    found, candidates = selectors.pool_detail(name.cleaned_data["domain"])
    form = PoolRemoveForm(request.POST, pool=found)
    if not form.is_valid():
        for error in form.errors.get("reviewer", []):
            messages.error(request, error)
        return _render_pool(request, found, candidates, status=400)
    user = form.cleaned_data["reviewer"]
    services.pool_member_remove(domain=found.domain, reviewer=user, actor=request.user)
    text = f"Removed {user.get_username()} from the {found.domain} pool."
    kept = selectors.pool_assigned_open(domain=found.domain, reviewer=user)
    if kept:
        text += (
            f" {kept} open {found.domain} item{'s' if kept != 1 else ''} stay assigned to "
            f"them; unassign {'them' if kept != 1 else 'it'} in the queue browser if needed."
        )
    messages.success(request, text)
    return redirect(_pool_url(found.domain))


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def reviewer_edit(request, user_id: int):
    """One reviewer's pools (a box per known pool), daily capacity and availability."""
    user = get_object_or_404(get_user_model(), pk=user_id, groups__name=Role.REVIEWER)
    profile = ReviewerProfile.objects.filter(user=user).first() or ReviewerProfile(user=user)
    form = ReviewerProfileForm(
        request.POST or None, instance=profile, domains=selectors.known_domains()
    )
    if request.method == "POST":
        if form.is_valid():
            services.reviewer_profile_update(user=user, changes=form.changes(), actor=request.user)
            messages.success(request, f"Saved {user.get_username()}'s pool settings.")
            return redirect("console:pools")
        status = 400
    else:
        status = 200
    return render(
        request, "console/reviewer_edit.html", {"form": form, "reviewer": user}, status=status
    )


def _pool_url(domain: str) -> str:
    return reverse("console:pool", kwargs={"domain": domain})


def _render_pool(request, found, candidates, *, add_form=None, status: int = 200):
    context = {
        "pool": found,
        "add_form": add_form or PoolAddForm(pool=found, candidates=candidates),
        "candidates": candidates,
    }
    return render(request, "console/pool_edit.html", context, status=status)


def _bad_pool_name(request, form: PoolNameForm):
    """A POST whose pool cannot be read (a tampered or stale form): back to the pools."""
    errors = " ".join(str(e) for e in form.errors.get("domain", []))
    messages.error(request, f"That pool cannot be changed: {errors}")
    return redirect("console:pools")
