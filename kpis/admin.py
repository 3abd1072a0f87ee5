"""Django admin (superusers only): KPI records, read-only; they are written by services."""

from django.contrib import admin

from kpis.models import Alert, AlertDelivery, KpiRun


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(KpiRun)
class KpiRunAdmin(ReadOnly):
    list_display = ("pk", "trigger", "mode", "state", "days", "rows", "created_at", "finished_at")
    list_filter = ("state", "trigger", "mode")


@admin.register(Alert)
class AlertAdmin(ReadOnly):
    list_display = ("agent", "kpi", "value", "n", "raised_at", "resolved_at")
    list_filter = ("kpi", "agent")


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnly):
    list_display = ("alert", "event", "state", "attempts", "last_status", "delivered_at")
    list_filter = ("state", "event")
