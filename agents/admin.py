"""Django's admin (superusers only, see config/urls.py): agents and interactions."""

from django.contrib import admin

from agents.models import Agent, Interaction


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
