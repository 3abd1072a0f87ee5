"""The pages of single sign-on (accounts/sso.py) and of password login being switchable off:
the login page with its "Sign in with …" button, the SSO start and callback, logout (also at
the provider), and the password-only pages' switch (PASSWORD_LOGIN)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST
from mozilla_django_oidc import views as oidc_views

from accounts import views as accounts_views
from accounts.sso import SsoUnavailable, provider_logout_url, sso_enabled, sso_setting

log = logging.getLogger(__name__)


def _refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(
        request,
        "registration/sso_refused.html",
        {"message": message, "provider_name": settings.OIDC_PROVIDER_NAME},
        status=status,
    )


def _unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.warning("SSO unavailable: %s", exc)
    message = f"{settings.OIDC_PROVIDER_NAME} does not answer right now. Please try again soon."
    return _refused(request, message, 503)


class LoginView(accounts_views.LoginView):
    """The login page: the SSO button when SSO is configured, the password form unless
    PASSWORD_LOGIN is off (then a password POST is refused before any credential is read,
    so it neither signs in nor counts towards a lockout)."""

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            sso_enabled=sso_enabled(),
            sso_provider_name=settings.OIDC_PROVIDER_NAME,
            password_login=settings.PASSWORD_LOGIN,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not settings.PASSWORD_LOGIN:
            context = self.get_context_data(password_refused=True)
            return self.render_to_response(context, status=403)
        return super().post(request, *args, **kwargs)


def password_login_only(view: Callable) -> Callable:
    """The password reset pages exist only while PASSWORD_LOGIN is on (404 otherwise): with
    SSO only, a reset would mail a way around the provider."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.PASSWORD_LOGIN:
            raise Http404("Password sign-in is turned off.")
        return view(request, *args, **kwargs)

    return wrapped


class AuthenticateView(oidc_views.OIDCAuthenticationRequestView):
    """Starts the code flow (state, nonce, PKCE: the library) at the provider's
    authorization endpoint from discovery."""

    get_settings = staticmethod(sso_setting)

    def __init__(self, *args, **kwargs):
        # Not the library's __init__, which reads the endpoint before a request arrives.
        oidc_views.View.__init__(self, *args, **kwargs)

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = sso_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except SsoUnavailable as exc:
            return _unavailable(request, exc)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class CallbackView(oidc_views.OIDCAuthenticationCallbackView):
    """The provider's redirect back. A failed or refused sign-in gets a page that says why
    (never a 500); a token that fails its checks is a 400 (SuspiciousOperation)."""

    get_settings = staticmethod(sso_setting)

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            log.warning("SSO callback refused: %s", exc)
            auth.logout(request)
            return _refused(request, "The sign-in could not be verified. Please start again.", 400)

    def login_failure(self):
        request = self.request
        reason = getattr(request, "sso_refusal", None)
        if reason:
            return _refused(request, reason, 403)
        if request.GET.get("error"):
            message = f"The sign-in was cancelled at {settings.OIDC_PROVIDER_NAME}."
        else:
            message = "The sign-in took too long or was started elsewhere. Please start again."
        return _refused(request, message, 403)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """Logs out here and, for an SSO session whose provider offers RP-initiated logout,
    sends the browser on to end the provider's session too (back to the login page)."""
    target = provider_logout_url(request) if request.user.is_authenticated else None
    if target is None:
        return auth_views.LogoutView.as_view()(request)
    auth.logout(request)
    return HttpResponseRedirect(target)
