"""Django's admin (superusers only, see config/urls.py): raw access to every model."""

from django.contrib import admin

from reviews.models import (
    Agent,
    ApiToken,
    AuditEvent,
    ErrorCategory,
    Interaction,
    ReviewerProfile,
    ReviewItem,
)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "kind",
        "domain",
        "confidence_threshold",
        "audit_rate",
        "required_reviews",
    )
    search_fields = ("slug", "name")


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("external_id", "agent", "agent_version", "confidence", "created_at")
    list_filter = ("agent",)
    search_fields = ("external_id", "conversation_id")
    show_full_result_count = False  # millions of rows


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "agent",
        "status",
        "reason",
        "priority",
        "confidence",
        "assigned_to",
        "claimed_by",
    )
    list_filter = ("status", "reason", "agent")
    raw_id_fields = ("interaction", "assigned_to", "claimed_by")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False  # state changes go through the services (and are audited)


@admin.register(ErrorCategory)
class ErrorCategoryAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "active", "position")


@admin.register(ReviewerProfile)
class ReviewerProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "domains", "daily_capacity", "active")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("key_hash", "prefix")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor", "action", "target_type", "target_id")
    list_filter = ("action",)
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False  # append-only

    def has_delete_permission(self, request, obj=None):
        return False
