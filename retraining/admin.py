"""Read-only admin views (superusers): batches change only through retraining.services."""

from django.contrib import admin

from retraining.models import ExportBatch, TrainingPair


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExportBatch)
class ExportBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "agent", "dataset", "format", "status", "row_count", "created_at")
    list_filter = ("status", "dataset", "format", "agent")
    exclude = ("pairs",)  # up to millions of rows: see the manifest's counts instead


@admin.register(TrainingPair)
class TrainingPairAdmin(ReadOnlyAdmin):
    list_display = ("id", "agent", "source", "agent_version", "error_category", "created_at")
    list_filter = ("source", "agent")
    raw_id_fields = ("item", "interaction")
    exclude = ("reviews", "reviewers")
