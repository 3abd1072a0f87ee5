"""Closing the loop: did a new agent version fix what reviewers corrected?

- `Comparison`: the same input with two answers, judged side by side and blind (pairwise
  review). Its queue works like the single-item one: claims with leases, assignment,
  four-eyes (two agreeing votes), adjudication of a dispute. `Comparison.status` changes only
  through `core.transitions` (evals/services.py declares the state machine).
- `RegressionRun`: an agent team's answers of a new version to the regression set (the
  held-out corrected and rejected items of the agent); each `RegressionAnswer` is matched
  against the reference or routed to a comparison, and ends fixed / still wrong / worse.

Sides: `answer_a` / `answer_b` are the stored answers; which one the reviewer saw on the
left is drawn by the server when the comparison is created (`a_on_left`) and copied into
each vote. Outcomes and choices are always stored in terms of A and B, never left/right.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Comparison(models.Model):
    class Kind(models.TextChoices):
        VERSIONS = "versions", "Two agent versions"
        REGRESSION = "regression", "New answer against the reference"

    class Status(models.TextChoices):
        PENDING = "pending"
        CLAIMED = "claimed"
        NEEDS_SECOND_REVIEW = "needs_second_review"
        DISPUTED = "disputed"
        DONE = "done"

    OPEN_STATUSES = (Status.PENDING, Status.NEEDS_SECOND_REVIEW)

    class Choice(models.TextChoices):
        A = "a", "A is better"
        B = "b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "both_bad", "Both bad"

    agent = models.ForeignKey("agents.Agent", on_delete=models.PROTECT, related_name="comparisons")
    kind = models.CharField(max_length=12, choices=Kind)
    # Idempotency key of comparisons posted over the API (unique per agent when set).
    external_id = models.CharField(max_length=255, blank=True, default="")
    domain = models.CharField(max_length=100, blank=True, default="")
    intent = models.CharField(max_length=100, blank=True, default="")
    # Where the input comes from, when it is a stored interaction (regression: the corrected
    # item's interaction).
    interaction = models.ForeignKey(
        "agents.Interaction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="comparisons",
    )
    input = models.TextField()
    context = models.JSONField(default=list, blank=True)
    answer_a = models.TextField()
    version_a = models.CharField(max_length=100, blank=True, default="")
    answer_b = models.TextField()
    # For a regression comparison: "reference" (the reviewer's correction) or "previous"
    # (the old answer of a rejected item).
    version_b = models.CharField(max_length=100, blank=True, default="")
    # Drawn by the server at creation (secrets.randbits), recorded, never shown.
    a_on_left = models.BooleanField()

    priority = models.SmallIntegerField(default=0)
    status = models.CharField(max_length=24, choices=Status, default=Status.PENDING)
    required_reviews = models.PositiveSmallIntegerField(default=1)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_comparisons",
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_comparisons",
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The final choice (A / B / tie / both bad), set when the comparison is done.
    outcome = models.CharField(max_length=10, choices=Choice, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    # Bumped on every transition: a page rendered at version N cannot decide version N+1.
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                "domain",
                models.F("priority").desc(),
                "created_at",
                "id",
                name="comparison_claim_queue",
                condition=Q(status__in=["pending", "needs_second_review"]),
            ),
            models.Index(
                fields=["claimed_by"], name="comparison_claimed", condition=Q(status="claimed")
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="comparison_lease",
                condition=Q(status="claimed"),
            ),
            models.Index(fields=["agent", "version_a", "version_b"], name="comparison_versions"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "external_id"],
                name="comparison_external_id",
                condition=~Q(external_id=""),
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=["", "a", "b", "tie", "both_bad"]),
                name="comparison_outcome_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk} ({self.status})"


class ComparisonVote(models.Model):
    """One reviewer's choice on a comparison, with the side order they were shown."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="votes")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="comparison_votes"
    )
    choice = models.CharField(max_length=10, choices=Comparison.Choice)
    # Copied from the comparison: the order this reviewer saw (for the position-bias check).
    a_on_left = models.BooleanField()
    reason = models.TextField(blank=True, default="")
    seconds_spent = models.PositiveIntegerField(null=True, blank=True)
    is_adjudication = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["comparison", "reviewer"], name="vote_comparison_reviewer"),
            models.Index(fields=["reviewer", "created_at"], name="vote_reviewer_time"),
        ]

    def __str__(self) -> str:
        return f"{self.choice} by {self.reviewer_id} on comparison {self.comparison_id}"


class RegressionRun(models.Model):
    """A new agent version's answers to the agent's regression set. One run per
    (agent, version, label): posting the same run again adds nothing that is stored."""

    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.PROTECT, related_name="regression_runs"
    )
    agent_version = models.CharField(max_length=100)
    label = models.CharField(max_length=100, blank=True, default="")
    # The set's filters as fetched (intent, domain, error category, version, dates).
    filters = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "agent_version", "label"], name="regression_run_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"regression run {self.pk} ({self.agent_id} {self.agent_version})"


class RegressionAnswer(models.Model):
    """The new version's answer to one regression case (a corrected or rejected item)."""

    class Outcome(models.TextChoices):
        FIXED = "fixed"
        STILL_WRONG = "still_wrong", "Still wrong"
        WORSE = "worse"
        PENDING = "pending", "Pending review"

    run = models.ForeignKey(RegressionRun, on_delete=models.CASCADE, related_name="answers")
    # The case: the decided review item (final verdict correct or reject).
    item = models.ForeignKey(
        "reviews.ReviewItem", on_delete=models.PROTECT, related_name="regression_answers"
    )
    answer = models.TextField()
    # How the outcome was reached: "match" (equal to the reference after normalising),
    # "unchanged" (equal to the old answer), "review" (a comparison's outcome).
    matched_by = models.CharField(max_length=10, blank=True, default="")
    outcome = models.CharField(max_length=12, choices=Outcome, default=Outcome.PENDING)
    comparison = models.OneToOneField(
        Comparison,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="regression_answer",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="regression_answer_unique"),
        ]
        indexes = [models.Index(fields=["run", "outcome"], name="regression_answer_outcome")]

    def __str__(self) -> str:
        return f"answer to item {self.item_id} in run {self.run_id} ({self.outcome})"
