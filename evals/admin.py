"""Django's admin (superusers only, see config/urls.py): comparisons and their votes, read
only. State changes go through evals/services.py (and are audited)."""

from django.contrib import admin

from evals.models import Comparison, ComparisonVote


class VoteInline(admin.TabularInline):
    model = ComparisonVote
    extra = 0
    can_delete = False
    fields = ("reviewer", "choice", "a_on_left", "is_adjudication", "reason", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("pk", "agent", "kind", "status", "outcome", "priority", "assigned_to")
    list_filter = ("status", "kind", "outcome", "agent")
    raw_id_fields = ("interaction", "assigned_to", "claimed_by")
    show_full_result_count = False
    inlines = [VoteInline]

    def has_add_permission(self, request):
        return False  # made by the evals services (the side order is drawn there)

    def has_change_permission(self, request, obj=None):
        return False  # state changes go through the services (and are audited)


@admin.register(ComparisonVote)
class ComparisonVoteAdmin(admin.ModelAdmin):
    list_display = ("pk", "comparison", "reviewer", "choice", "a_on_left", "is_adjudication")
    list_filter = ("choice", "is_adjudication")
    raw_id_fields = ("comparison", "reviewer")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
