"""Single sign-on's addresses (mounted at /oidc/ by config/urls.py); the names are the ones
mozilla-django-oidc reverses."""

from django.urls import path

from accounts import sso_views

urlpatterns = [
    path("authenticate/", sso_views.AuthenticateView.as_view(), name="oidc_authentication_init"),
    path("callback/", sso_views.CallbackView.as_view(), name="oidc_authentication_callback"),
]
