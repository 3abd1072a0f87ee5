"""Stored KPI statistics per agent, agent version and day; the recompute's bookkeeping; the
alerts raised on KPIs and the record of their webhook deliveries.

A snapshot stores *sufficient statistics* (counts and sums), not finished KPI values: a rate
over a week is the sum of the daily numerators over the sum of the daily denominators, which
averaging daily rates would get wrong. `kpis/definitions.py` turns statistics into values.
"""

from django.conf import settings
from django.db import models


class KpiSnapshot(models.Model):
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.CASCADE, related_name="kpi_snapshots"
    )
    # "" is the row over all versions of the agent (null in the API); interactions sent
    # without a version are kept under definitions.UNVERSIONED.
    agent_version = models.CharField(max_length=100, blank=True, default="")
    date = models.DateField()
    # Sufficient statistics of the day: see definitions.STAT_KEYS.
    stats = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # The upsert key of the recompute (also the index of every dashboard read:
            # one agent, one version or all, a date range).
            models.UniqueConstraint(
                fields=["agent", "agent_version", "date"], name="kpi_agent_version_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}/{self.agent_version or '*'}/{self.date}"


class KpiCursor(models.Model):
    """Where the incremental recompute stopped reading one source table.

    `history` holds recent runs as `[iso time, highest id seen]`. A run reads rows above the
    highest id seen by the newest run that is at least KPI_CURSOR_OVERLAP_SECONDS old: ids
    are handed out when a row is inserted but become visible when its transaction commits,
    so a row with a lower id can appear after a higher one was seen. Reading again over the
    overlap catches it (recomputing a day twice is harmless: recompute is idempotent).
    """

    source = models.CharField(max_length=32, unique=True)
    last_id = models.BigIntegerField(default=0)
    history = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.source} ≤ {self.last_id}"


class KpiRun(models.Model):
    """One recompute: requested (beat, the button, the command), its progress and outcome.
    The "recompute now" button polls this row; it is also the history of recomputes."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        BUTTON = "button"
        COMMAND = "command"

    class Mode(models.TextChoices):
        INCREMENTAL = "incremental", "days touched since the last run"
        RANGE = "range", "every day of a range"
        FULL = "full", "every day of every agent"

    state = models.CharField(max_length=10, choices=State, default=State.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger)
    mode = models.CharField(max_length=12, choices=Mode, default=Mode.INCREMENTAL)
    agent = models.ForeignKey("agents.Agent", null=True, blank=True, on_delete=models.CASCADE)
    since = models.DateField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    total_steps = models.PositiveIntegerField(default=0)
    done_steps = models.PositiveIntegerField(default=0)
    days = models.PositiveIntegerField(default=0, help_text="(agent, day) pairs recomputed.")
    rows = models.PositiveIntegerField(default=0, help_text="Snapshot rows written.")
    alerts_raised = models.PositiveIntegerField(default=0)
    alerts_resolved = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "created_at"], name="kpirun_state_time")]

    def __str__(self) -> str:
        return f"recompute {self.pk} ({self.state})"

    @property
    def active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.total_steps:
            return 0
        return min(99, round(100 * self.done_steps / self.total_steps))


class Alert(models.Model):
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="alerts")
    kpi = models.CharField(max_length=64)
    # The threshold as configured when raised, e.g. {"below": 0.7, "days": 7, "min_n": 50}.
    threshold = models.JSONField(default=dict)
    value = models.FloatField(null=True)
    n = models.PositiveIntegerField(null=True, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_value = models.FloatField(null=True, blank=True)

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


class AlertDelivery(models.Model):
    """A webhook POST of an alert event (an outbox row): made in the transaction that raises
    or resolves the alert, sent after commit, retried with backoff until delivered or out of
    attempts. Every attempt's outcome is kept on the row."""

    class Event(models.TextChoices):
        RAISED = "raised"
        RESOLVED = "resolved"

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=10, choices=Event)
    url = models.URLField(max_length=500)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "event"], name="alertdelivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="alertdelivery_due",
                condition=models.Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} of alert {self.alert_id} ({self.state})"
