"""Account pages: login (throttled by django-axes), password reset, the user's API tokens."""

from axes.helpers import get_failure_limit
from axes.utils import reset as axes_reset
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import ApiToken
from accounts.permissions import user_roles
from accounts.services import token_create, token_revoke


class LoginView(auth_views.LoginView):
    """Django's login view; after a failed attempt it says how many tries are left.

    django-axes counts the failures (per username and address, on every login form, the
    admin's included; see accounts/throttle.py) and answers the attempt that reaches the
    limit, and every one after it until the cool-off ends, with registration/lockout.html.
    """

    redirect_authenticated_user = True

    def form_invalid(self, form):
        # Set by axes' failure handler while authenticate() ran inside form validation.
        failures = getattr(self.request, "axes_failures_since_start", None)
        tries_left = None
        if failures is not None:
            credentials = {"username": form.data.get("username", "")}
            tries_left = max(0, get_failure_limit(self.request, credentials) - failures)
        return self.render_to_response(self.get_context_data(form=form, tries_left=tries_left))


def admin_login(request):
    """The Django admin's login page is the site's: one form, one throttle, and the tries
    left shown (the admin's own form would need a second copy of all three).

    A signed-in user who reaches it is not a superuser (the admin sends them here for
    that): they get the 403 page, not a login form that would send them round in a loop.
    """
    if request.user.is_authenticated:
        raise PermissionDenied("Django's admin is for superusers; review leads use the console.")
    return redirect_to_login(request.GET.get("next") or "/admin/")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's view; a reset also lifts a lockout of that account: the emailed link proved
    who is asking, so they need not wait out the cool-off."""

    def form_valid(self, form):
        response = super().form_valid(form)
        axes_reset(username=form.user.get_username())
        return response


@login_required
def tokens(request):
    """The user's API tokens; a new token's secret is shown once, right after creation."""
    if request.method == "POST":
        name = (request.POST.get("name") or "").strip()[:100]
        if not name:
            messages.error(request, "Give the token a name, e.g. the tool that will use it.")
            return redirect("tokens")
        agents = (request.POST.get("agents") or "").replace(",", " ").split()
        try:
            _, secret = token_create(user=request.user, name=name, agent_slugs=agents)
        except ValueError as exc:
            messages.error(request, f"Agents: {exc}.")
            return redirect("tokens")
        return render(
            request,
            "accounts/tokens.html",
            {
                "tokens": _tokens(request.user),
                "secret": secret,
                "new_name": name,
                "roles": sorted(user_roles(request.user)),
            },
        )
    return render(
        request,
        "accounts/tokens.html",
        {"tokens": _tokens(request.user), "roles": sorted(user_roles(request.user))},
    )


def _tokens(user):
    return ApiToken.objects.filter(user=user).order_by("revoked_at", "-created_at")


@login_required
@require_POST
def token_revoke_view(request, token_id: int):
    # Scoped to the user's own tokens: another user's token id is a 404, not a hint.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked; it no longer works.")
    return redirect("tokens")
