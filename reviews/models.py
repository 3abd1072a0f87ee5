"""The review domain: the error taxonomy, the queue and the decisions.

State changes of `ReviewItem` happen only in `reviews/services.py` (a test enforces it).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.models import Agent, Interaction


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
            # items (the vast majority over time) cost nothing. It ends with the id, the
            # claim's last sort key, so a claim reads its first rows in order and stops,
            # with no sort of the domain's whole queue whatever the statistics say.
            models.Index(
                "domain",
                models.F("priority").desc(),
                "confidence",
                "source_created_at",
                "id",
                name="reviewitem_claim_queue",
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
            # The queue browser's other orders (console.selectors.SORTS): "oldest" and
            # "newest" (read backwards), and "confidence". Without them a page top-N sorted
            # every open item.
            models.Index(
                fields=["source_created_at", "id"],
                name="reviewitem_console_oldest",
                condition=Q(status__in=["pending", "needs_second_review", "claimed"]),
            ),
            models.Index(
                fields=["confidence", "id"],
                name="reviewitem_console_confidence",
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

    # Indexed with the reviewer (`review_item_reviewer`), for the claim's "not reviewed by me".
    item = models.ForeignKey(
        ReviewItem, on_delete=models.CASCADE, related_name="reviews", db_index=False
    )
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
            # The claim asks, for each candidate it visits, "did I review it?": one probe.
            models.Index(fields=["item", "reviewer"], name="review_item_reviewer"),
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


# --- rubrics ----------------------------------------------------------------------------------


class Immutable(Exception):
    """A rubric version or a criterion was about to change: a new version is made instead."""


class Rubric(models.Model):
    """One version of what reviewers score on an agent's answers. The highest version of an
    agent is its active rubric. A version never changes once created (`reviews.rubrics`
    makes a new one, copying), so a score always means what it meant when it was given."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="rubrics")
    version = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agent", "-version"]
        constraints = [
            # Also the index of "the agent's latest version" (read backwards).
            models.UniqueConstraint(fields=["agent", "version"], name="rubric_agent_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="rubric_version_positive"),
        ]

    def __str__(self) -> str:
        return f"rubric v{self.version} of agent {self.agent_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise Immutable("A rubric version never changes: create the next version instead.")
        super().save(*args, **kwargs)


class Criterion(models.Model):
    """One thing a reviewer scores: pass / fail (0 or 1) or a 1–5 scale."""

    class Kind(models.TextChoices):
        PASS_FAIL = "pass_fail", "Pass / fail"
        SCALE = "scale", "Scale 1–5"

    # The values each kind takes (also the Score check below and the API's contract).
    RANGES = {Kind.PASS_FAIL: (0, 1), Kind.SCALE: (1, 5)}

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="criteria")
    key = models.SlugField(max_length=50, help_text="Stable name in exports and the API.")
    name = models.CharField(max_length=100)
    help_text = models.CharField(max_length=500, blank=True, default="")
    kind = models.CharField(max_length=10, choices=Kind)
    required = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["rubric", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["rubric", "key"], name="criterion_rubric_key"),
            models.CheckConstraint(
                condition=Q(kind__in=["pass_fail", "scale"]), name="criterion_kind_valid"
            ),
        ]
        verbose_name_plural = "criteria"

    def __str__(self) -> str:
        return f"{self.key} ({self.kind})"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise Immutable("A criterion never changes: create the next rubric version instead.")
        super().save(*args, **kwargs)


class Score(models.Model):
    """A reviewer's score of one criterion in one review. The criterion belongs to one
    rubric version, so the score records the version it was given under."""

    # Indexed by the unique (review, criterion) below.
    review = models.ForeignKey(
        Review, on_delete=models.CASCADE, related_name="scores", db_index=False
    )
    # PROTECT: a criterion that was scored is history (versions are never deleted anyway).
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="scores")
    value = models.SmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["review", "criterion"], name="score_review_criterion"),
            # The union of the kinds' ranges (pass / fail 0–1, scale 1–5); the kind's own range
            # is checked by `reviews.rubrics.scores_check` (a check cannot read the criterion).
            models.CheckConstraint(
                condition=Q(value__gte=0) & Q(value__lte=5), name="score_value_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.criterion_id}={self.value} in review {self.review_id}"
