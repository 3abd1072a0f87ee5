"""Django's admin (superusers only, see config/urls.py): the queue and the taxonomy."""

from django.contrib import admin

from reviews.models import ErrorCategory, ReviewItem


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
