"""What agents are and what they send: an agent with its review policy, its interactions
and the feedback signals on them.

The tables were created by the reviews app and keep their names (`reviews_*`).
"""

import hashlib

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Agent(models.Model):
    class Kind(models.TextChoices):
        CHAT = "chat"
        RECOMMENDER = "recommender"
        OTHER = "other"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind, default=Kind.OTHER)
    domain = models.SlugField(
        max_length=100,
        default="general",
        help_text="Review domain of this agent's items when an interaction names none.",
    )
    # Review policy.
    confidence_threshold = models.FloatField(
        default=0.7,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Responses below this confidence are queued for review.",
    )
    audit_rate = models.FloatField(
        default=0.02,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of confident responses sampled for review.",
    )
    required_reviews = models.PositiveSmallIntegerField(
        default=1,
        choices=[(1, "One reviewer"), (2, "Two agreeing reviewers (four-eyes)")],
    )
    review_intents = models.JSONField(
        default=list, blank=True, help_text="Intents that are always reviewed."
    )
    review_domains = models.JSONField(
        default=list, blank=True, help_text="Domains that are always reviewed."
    )
    guidelines = models.TextField(blank=True, help_text="Markdown shown to reviewers.")
    auto_assign = models.BooleanField(
        default=False,
        db_default=False,  # raw SQL writers (bench scripts) need not know the column
        help_text=(
            "Routed items are spread over the active reviewers of their domain as they arrive "
            "(up to each reviewer's daily capacity); the rest wait in the shared queue."
        ),
    )
    alert_thresholds = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            'KPI alert thresholds, e.g. {"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}}'
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Personal data redaction at ingest (agents/redaction.py; {} is off). Declared last, where
    # the column is; the database default is for raw SQL writers that do not know it.
    redaction = models.JSONField(
        default=dict,
        blank=True,
        db_default={},
        help_text=(
            'e.g. {"types": ["email", "phone", "iban", "card"], "patterns": [{"name": '
            '"CASE_ID", "regex": "CASE-[0-9]{6}"}], "keep_originals": true, "regions": ["GB"]}'
        ),
    )

    class Meta:
        db_table = "reviews_agent"
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(confidence_threshold__gte=0) & Q(confidence_threshold__lte=1),
                name="agent_threshold_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(audit_rate__gte=0) & Q(audit_rate__lte=1),
                name="agent_audit_rate_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(required_reviews__in=[1, 2]), name="agent_required_reviews_1_or_2"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Interaction(models.Model):
    """One agent response, as sent by the agent pipeline. Immutable after ingest except for
    the outcome signals (`resolved`, `escalated`) that feedback may set later."""

    # No index of its own: (agent, external_id) and (agent, created_at) lead with it.
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="interactions", db_index=False
    )
    external_id = models.CharField(max_length=255)
    agent_version = models.CharField(max_length=100, blank=True, default="")
    conversation_id = models.CharField(max_length=255, blank=True, default="")
    input = models.TextField()
    context = models.JSONField(default=list, blank=True)
    output = models.TextField()
    confidence = models.FloatField()
    intent = models.CharField(max_length=100, blank=True, default="")
    domain = models.CharField(max_length=100, blank=True, default="")
    resolved = models.BooleanField(null=True)
    escalated = models.BooleanField(null=True)
    sentiment = models.FloatField(null=True)
    turns = models.PositiveIntegerField(null=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=False)
    ingested_at = models.DateTimeField(auto_now_add=True)
    # The turn's tool calls and their results, between `input` and `output` (messages as in
    # `context`: ingest/messages.py). Declared last, where the column is (it came later);
    # the database default is for raw SQL writers (bench scripts) that do not know it.
    steps = models.JSONField(default=list, blank=True, db_default=[])
    # How many values of each kind redaction replaced in this interaction ({"email": 2}; {}
    # when nothing was, or its agent has no policy): the KPI page's privacy counts.
    redactions = models.JSONField(default=dict, blank=True, db_default={})

    class Meta:
        db_table = "reviews_interaction"
        constraints = [
            # The idempotency key of ingest.
            models.UniqueConstraint(
                fields=["agent", "external_id"], name="interaction_agent_external_id"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="interaction_confidence_in_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(sentiment__isnull=True) | (Q(sentiment__gte=-1) & Q(sentiment__lte=1)),
                name="interaction_sentiment_in_range",
            ),
        ]
        indexes = [
            # KPI aggregation scans one agent's days and groups the versions within them, so
            # no (agent, version, day) index: every one costs each ingested row a write.
            models.Index(fields=["agent", "created_at"], name="interaction_agent_day"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id}:{self.external_id}"


class FeedbackEvent(models.Model):
    class Kind(models.TextChoices):
        CLICKED = "clicked"
        SKIPPED = "skipped"
        THUMBS_UP = "thumbs_up"
        THUMBS_DOWN = "thumbs_down"
        RESOLVED = "resolved"
        ESCALATED = "escalated"

    NEGATIVE = frozenset({Kind.THUMBS_DOWN, Kind.ESCALATED})

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="feedback")
    # Denormalised so KPI queries group feedback by agent / day without a join.
    # Denormalised from the interaction (which has the constraint): no index of its own
    # ((agent, created_at) leads with it) and no per-row constraint check on the ingest path.
    agent = models.ForeignKey(
        Agent,
        on_delete=models.PROTECT,
        related_name="feedback",
        db_index=False,
        db_constraint=False,
    )
    kind = models.CharField(max_length=20, choices=Kind)
    item_ref = models.CharField(max_length=255, blank=True, default="")
    value = models.FloatField(null=True)
    created_at = models.DateTimeField()
    # sha256 of the event as sent (agent, external_id, kind, item_ref, value, created_at as
    # given): re-sending the same event is a duplicate, not a second signal.
    dedupe_key = models.CharField(max_length=64, unique=True)

    class Meta:
        db_table = "reviews_feedbackevent"
        indexes = [models.Index(fields=["agent", "created_at"], name="feedback_agent_day")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.interaction_id}"

    @staticmethod
    def make_dedupe_key(
        agent: str, external_id: str, kind: str, item_ref: str, value: float | None, created_at: str
    ) -> str:
        raw = "\x1f".join([agent, external_id, kind, item_ref, repr(value), created_at])
        return hashlib.sha256(raw.encode()).hexdigest()


class RedactedValue(models.Model):
    """One placeholder of a conversation: `[EMAIL_3]` is (kind email, number 3) in the
    conversation `conversation_key` (agents.redaction.conversation_key) of `agent`.

    `digest` is the HMAC of the normalised value (agents.redaction.value_digest): equal
    values meet on it, so the same address gets the same placeholder in later interactions
    and imports whether or not the original is kept. `original` is the text first replaced,
    kept only when the agent's policy says so, and shown only to admins (audited)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, db_index=False)
    conversation_key = models.CharField(max_length=260)
    kind = models.CharField(max_length=40)
    number = models.PositiveIntegerField()
    digest = models.CharField(max_length=64)
    original = models.TextField(null=True, blank=True)  # noqa: DJ001 (NULL: not kept)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # The ingest's ON CONFLICT DO NOTHING key; its index is also the per-conversation
            # lookup (agent, conversation_key) that loads a conversation's map.
            models.UniqueConstraint(
                fields=["agent", "conversation_key", "digest"], name="redactedvalue_digest"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_key}:{self.kind}_{self.number}"
