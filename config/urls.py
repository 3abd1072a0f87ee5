from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import sso_views
from accounts import views as accounts
from accounts.sso_views import password_login_only
from config.api import api
from core import health
from core import views as core_views
from reviews import views

# Django's admin is for superusers only (DESIGN.md): review leads work in the console.
admin.site.has_permission = lambda request: request.user.is_active and request.user.is_superuser
admin.site.site_header = "Coachdesk administration"

urlpatterns = [
    path("", views.home, name="home"),
    path("", include("reviews.urls")),
    path("console/", include("console.urls")),
    path("compare/", include("evals.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("accounts/login/", sso_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", sso_views.logout, name="logout"),
    path("oidc/", include("accounts.sso_urls")),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path(
        "accounts/password_reset/",
        password_login_only(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path(
        "accounts/password_reset/done/",
        password_login_only(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        password_login_only(accounts.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        password_login_only(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("accounts/tokens/", accounts.tokens, name="tokens"),
    path("accounts/tokens/<int:token_id>/revoke", accounts.token_revoke_view, name="token-revoke"),
    path("exports/", include("retraining.urls")),
    path("kpis/", include("kpis.urls")),
    path("api/v1/", api.urls),
    path("admin/login/", accounts.admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"
