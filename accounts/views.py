"""Account pages: a throttled login, and the user's own API tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import ApiToken
from accounts.permissions import user_roles
from accounts.services import token_create, token_revoke


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _failure_keys(request) -> list[str]:
    username = (request.POST.get("username") or "").strip().lower()[:150]
    # Per account (a slow attack from many addresses) and per address (spraying accounts).
    return [f"login-fail:user:{username}", f"login-fail:ip:{_client_ip(request)}"]


class ThrottledLoginView(auth_views.LoginView):
    """Django's login view, refusing further attempts after LOGIN_MAX_FAILURES failures for
    an account or from an address within LOGIN_LOCKOUT_SECONDS (answered 429)."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        keys = _failure_keys(request)
        if any((cache.get(key) or 0) >= settings.LOGIN_MAX_FAILURES for key in keys):
            form = self.get_form()
            form.errors.clear()
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            return self.render_to_response(
                self.get_context_data(
                    form=form,
                    throttled=f"Too many failed attempts. Try again in {minutes} minutes.",
                ),
                status=429,
            )
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        for key in _failure_keys(self.request):
            cache.add(key, 0, settings.LOGIN_LOCKOUT_SECONDS)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, settings.LOGIN_LOCKOUT_SECONDS)
        return super().form_invalid(form)

    def form_valid(self, form):
        cache.delete(f"login-fail:user:{form.get_user().get_username().lower()}")
        return super().form_valid(form)


@login_required
def tokens(request):
    """The user's API tokens; a new token's secret is shown once, right after creation."""
    if request.method == "POST":
        name = (request.POST.get("name") or "").strip()[:100]
        if not name:
            messages.error(request, "Give the token a name, e.g. the tool that will use it.")
            return redirect("tokens")
        _, secret = token_create(user=request.user, name=name)
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
