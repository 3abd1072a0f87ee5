"""Stored KPI values per agent, agent version and day, and the alerts raised on them."""

from django.db import models


class KpiSnapshot(models.Model):
    agent = models.ForeignKey(
        "reviews.Agent", on_delete=models.CASCADE, related_name="kpi_snapshots"
    )
    # "" is the row over all versions of the agent (null in the API).
    agent_version = models.CharField(max_length=100, blank=True, default="")
    date = models.DateField()
    values = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "agent_version", "date"], name="kpi_agent_version_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}/{self.agent_version or '*'}/{self.date}"


class Alert(models.Model):
    agent = models.ForeignKey("reviews.Agent", on_delete=models.CASCADE, related_name="alerts")
    kpi = models.CharField(max_length=64)
    threshold = models.JSONField(default=dict)
    value = models.FloatField(null=True)
    raised_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            # At most one open alert per agent and KPI: raised once, resolved on recovery.
            models.UniqueConstraint(
                fields=["agent", "kpi"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kpi} alert on agent {self.agent_id}"
