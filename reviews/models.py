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
    # Review deadline (reviews.deadlines), set when the item is routed: NULL when no deadline
    # applies. `sla_near_at` is when only SLA_NEAR_SHARE of it is left. `sla_level` records
    # the escalation steps done (0 none, 1 near, 2 breached), so the sweep (reviews.sla)
    # raises the priority once per step; a database default, so the ingest COPY can leave it.
    # (In the order their migration added them: a column added later is the table's last.)
    due_at = models.DateTimeField(null=True, blank=True)
    sla_level = models.PositiveSmallIntegerField(db_default=0, default=0)
    sla_near_at = models.DateTimeField(null=True, blank=True)

    class SlaLevel(models.IntegerChoices):
        NONE = 0
        NEAR = 1
        BREACHED = 2

    # The statuses in which an item is still waiting for its decision (the deadline runs).
    SLA_OPEN_STATUSES = (
        Status.PENDING,
        Status.CLAIMED,
        Status.NEEDS_SECOND_REVIEW,
        Status.DISPUTED,
    )

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
            # Deadlines: the sweep's "past due and not yet breached", the queue's next due
            # and overdue count, the console's "Due" order. Partial: items without a
            # deadline or decided cost nothing.
            models.Index(
                fields=["due_at", "id"],
                name="reviewitem_due_open",
                condition=Q(
                    due_at__isnull=False,
                    status__in=["pending", "claimed", "needs_second_review", "disputed"],
                ),
            ),
            # The sweep's "near due, not yet raised": shrinks to nothing as items are raised.
            models.Index(
                fields=["sla_near_at"],
                name="reviewitem_sla_near",
                condition=Q(
                    sla_near_at__isnull=False,
                    sla_level=0,
                    status__in=["pending", "claimed", "needs_second_review", "disputed"],
                ),
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


# --- deadlines (SLA) --------------------------------------------------------------------------


class Deadline(models.Model):
    """A review deadline: per agent, per domain (any agent), or per agent and domain. The
    most specific applies (agent + domain > agent > domain; reviews.deadlines.DeadlineRules).
    Set by admins in the console (console/deadlines.py, audited)."""

    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="deadlines"
    )
    domain = models.CharField(max_length=100, blank=True, default="")
    # A float, not a Decimal: the backup archive stores rows as plain JSON.
    hours = models.FloatField()
    # Counted in working hours (SLA_WORKDAY_* settings) rather than on the wall clock.
    working_hours = models.BooleanField(default=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent__slug", "domain"]
        constraints = [
            # One rule per scope: per agent (and domain), and per domain for any agent (two
            # partial constraints, as NULL agents are never equal; SQLite lacks NULLS NOT
            # DISTINCT).
            models.UniqueConstraint(
                fields=["agent", "domain"],
                name="deadline_one_per_scope",
                condition=Q(agent__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["domain"], name="deadline_one_per_domain", condition=Q(agent__isnull=True)
            ),
            models.CheckConstraint(condition=Q(hours__gt=0), name="deadline_hours_positive"),
            models.CheckConstraint(
                condition=Q(agent__isnull=False) | ~Q(domain=""), name="deadline_has_scope"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hours} h for {self.agent_id or 'any agent'}/{self.domain or 'any domain'}"


class SlaBreach(models.Model):
    """An item that passed its due time undecided: one row per item, ever (inserted by the
    sweep ON CONFLICT DO NOTHING, so two sweeps make one). Its alert is delivered from this
    row (an outbox row: kpis.sla): a webhook POST with retries and one e-mail to the leads.
    An item decided after its breach keeps the row: it still counts as a breach."""

    class WebhookState(models.TextChoices):
        NONE = "none"  # no webhook configured when it was raised
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    item = models.OneToOneField(ReviewItem, on_delete=models.CASCADE, related_name="sla_breach")
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    domain = models.CharField(max_length=100, blank=True, default="")
    due_at = models.DateTimeField()
    breached_at = models.DateTimeField()
    webhook_state = models.CharField(
        max_length=10, choices=WebhookState, db_default=WebhookState.NONE, default="none"
    )
    webhook_attempts = models.PositiveSmallIntegerField(db_default=0, default=0)
    webhook_next_at = models.DateTimeField(null=True, blank=True)
    webhook_last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    webhook_last_error = models.TextField(blank=True, db_default="", default="")
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    # Claimed (set) before the e-mail is sent, cleared again if sending failed.
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-breached_at", "-pk"]
        indexes = [
            models.Index(fields=["breached_at"], name="slabreach_time"),
            models.Index(
                fields=["webhook_next_at"],
                name="slabreach_webhook_due",
                condition=Q(webhook_state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"breach of item {self.item_id}"


class SlaDigest(models.Model):
    """A daily digest e-mail sent to a lead: one row per lead and SLA-local day, inserted
    before sending (so two senders send once) and removed again if the sending failed."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="sladigest_once_a_day"),
        ]

    def __str__(self) -> str:
        return f"digest of {self.day} to user {self.user_id}"
