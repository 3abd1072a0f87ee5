"""The review domain: agents and their policy, interactions, feedback, the queue, decisions.

State changes of `ReviewItem` happen only in `reviews/services.py` (a test enforces it).
"""

import hashlib

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    """Django group names; a user may hold several."""

    REVIEWER = "reviewer"
    ADMIN = "admin"
    ML = "ml"
    AGENT = "agent"


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

    class Meta:
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


class ReviewerProfile(models.Model):
    """A reviewer's pool membership: the domains they may review and their capacity."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    domains = models.JSONField(
        default=list, blank=True, help_text="Domains this reviewer may review."
    )
    daily_capacity = models.PositiveIntegerField(default=200)
    active = models.BooleanField(default=True, help_text="Away reviewers get no new assignments.")

    def __str__(self) -> str:
        return f"{self.user} ({', '.join(self.domains) or 'no domains'})"


class ErrorCategory(models.Model):
    """The managed taxonomy of what was wrong with a response."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "slug"]
        verbose_name_plural = "error categories"

    def __str__(self) -> str:
        return self.name


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

    class Meta:
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
        indexes = [models.Index(fields=["agent", "created_at"], name="feedback_agent_day")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.interaction_id}"

    @staticmethod
    def make_dedupe_key(
        agent: str, external_id: str, kind: str, item_ref: str, value: float | None, created_at: str
    ) -> str:
        raw = "\x1f".join([agent, external_id, kind, item_ref, repr(value), created_at])
        return hashlib.sha256(raw.encode()).hexdigest()


class ReviewItem(models.Model):
    """An interaction in a review queue. Its `status` moves only through reviews/services.py."""

    class Reason(models.TextChoices):
        LOW_CONFIDENCE = "low_confidence"
        AUDIT_SAMPLE = "audit_sample"
        RULE = "rule"
        FEEDBACK = "feedback"
        MANUAL = "manual"

    class Status(models.TextChoices):
        PENDING = "pending"
        CLAIMED = "claimed"
        NEEDS_SECOND_REVIEW = "needs_second_review"
        DISPUTED = "disputed"
        DONE = "done"

    OPEN_STATUSES = (Status.PENDING, Status.NEEDS_SECOND_REVIEW)

    interaction = models.OneToOneField(
        Interaction, on_delete=models.CASCADE, related_name="review_item"
    )
    # Denormalised from the interaction so the claim query is one index scan.
    # Denormalised from the interaction, like `domain` and `confidence` below: no index of its
    # own and no per-row constraint check on the ingest path (the interaction's FK holds).
    agent = models.ForeignKey(
        Agent,
        on_delete=models.PROTECT,
        related_name="review_items",
        db_index=False,
        db_constraint=False,
    )
    domain = models.CharField(max_length=100, blank=True, default="")
    confidence = models.FloatField()
    source_created_at = models.DateTimeField()

    reason = models.CharField(max_length=20, choices=Reason)
    reason_detail = models.CharField(max_length=255, blank=True, default="")
    # Higher first; within a priority, lower confidence first, then older first.
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(max_length=24, choices=Status, default=Status.PENDING)
    required_reviews = models.PositiveSmallIntegerField(default=1)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_items",
        db_index=False,  # reviewitem_assigned_open covers every non-null value
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_items",
        db_index=False,  # looked up only with status=claimed: reviewitem_claimed below
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    final_verdict = models.CharField(max_length=20, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every transition: a page rendered at version N cannot decide version N+1.
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The claim: open items of some domains in priority order. Partial, so decided
            # items (the vast majority over time) cost nothing.
            models.Index(
                "domain",
                models.F("priority").desc(),
                "confidence",
                "source_created_at",
                name="reviewitem_claim_order",
                condition=Q(status__in=["pending", "needs_second_review"]),
            ),
            # The admin's queue browser: open and claimed items in queue order, any domain.
            models.Index(
                models.F("priority").desc(),
                "confidence",
                "source_created_at",
                name="reviewitem_browse_order",
                condition=Q(status__in=["pending", "needs_second_review", "claimed"]),
            ),
            models.Index(
                fields=["assigned_to", "status"],
                name="reviewitem_assigned_open",
                condition=Q(assigned_to__isnull=False),
            ),
            models.Index(
                fields=["claimed_by"], name="reviewitem_claimed", condition=Q(status="claimed")
            ),
            # Expired-lease sweep.
            models.Index(
                fields=["lease_expires_at"],
                name="reviewitem_lease",
                condition=Q(status="claimed"),
            ),
            models.Index(fields=["agent", "status", "created_at"], name="reviewitem_agent_status"),
            models.Index(
                fields=["agent", "decided_at"],
                name="reviewitem_agent_decided",
                condition=Q(decided_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.status})"


class Review(models.Model):
    class Verdict(models.TextChoices):
        APPROVE = "approve"
        CORRECT = "correct"
        REJECT = "reject"
        ESCALATE = "escalate"
        SKIP = "skip"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    verdict = models.CharField(max_length=20, choices=Verdict)
    corrected_output = models.TextField(blank=True, default="")
    error_category = models.ForeignKey(
        ErrorCategory, null=True, blank=True, on_delete=models.PROTECT
    )
    notes = models.TextField(blank=True, default="")
    seconds_spent = models.PositiveIntegerField(null=True, blank=True)
    is_adjudication = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["reviewer", "created_at"], name="review_reviewer_time"),
            models.Index(fields=["created_at"], name="review_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(verdict="correct") | ~Q(corrected_output=""),
                name="review_correct_has_output",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} by {self.reviewer_id} on item {self.item_id}"


class ApiToken(models.Model):
    """A named API credential. Only the sha256 of the token is stored; the token itself is
    shown once. Tokens are 256-bit random, so a fast hash is enough (no brute force)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


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
        indexes = [models.Index(fields=["next_attempt_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
