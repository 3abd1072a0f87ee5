"""The project-wide records: the audit log and the task outbox.

Both tables were created by the reviews app and keep their names (`reviews_*`).
"""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Append-only record of every state change: who, when, what, before, after."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.BigIntegerField(null=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "reviews_auditevent"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor", "created_at"], name="audit_actor_time"),
            models.Index(fields=["created_at"], name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"


class OutboxMessage(models.Model):
    """A task to send to the broker, written in the transaction of the change that needs it.

    After the commit the message is published and its row deleted; when the broker cannot
    be reached the row stays and `outbox_sweep` publishes it later. So work is never lost
    between a commit and a Redis outage, and the tasks it names are idempotent (a message
    may arrive twice: published, then the delete failed).
    """

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        db_table = "reviews_outboxmessage"
        indexes = [models.Index(fields=["next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
