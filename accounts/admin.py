"""Django's admin (superusers only, see config/urls.py): profiles, API tokens and SSO
identities."""

from django.contrib import admin

from accounts.models import ApiToken, Identity, ReviewerProfile


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "domains", "daily_capacity", "active")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("key_hash", "prefix")


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    """A user's account at the identity provider; deleting it unlinks the user, whose next
    SSO login then makes a new user (users are keyed by issuer and subject)."""

    list_display = ("user", "issuer", "subject", "created_at", "last_login_at")
    search_fields = ("user__username", "subject")
    readonly_fields = ("issuer", "subject", "created_at", "last_login_at")
