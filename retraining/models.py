"""Training pairs (made when review items are decided) and immutable export batches.

`ExportBatch.status` changes only in `retraining/services.py` (a test enforces it): the
allowed transitions are a table there, applied with compare-and-swap UPDATEs.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class TrainingPair(models.Model):
    """One decided item as a training example. Written once at decision time (the
    `item_decided` receiver) and never changed afterwards, which is what makes a batch
    reproducible: the same pairs always give the same rows. Deleted only when its decision
    is undone before any batch took it (the `decision_undone` receiver)."""

    class Source(models.TextChoices):
        APPROVE = "approve"
        CORRECT = "correct"

    item = models.OneToOneField(
        "reviews.ReviewItem", on_delete=models.PROTECT, related_name="training_pair"
    )
    interaction = models.ForeignKey(
        "agents.Interaction", on_delete=models.PROTECT, related_name="training_pairs"
    )
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.PROTECT, related_name="training_pairs"
    )
    agent_version = models.CharField(max_length=100, blank=True, default="")
    source = models.CharField(max_length=10, choices=Source)
    input = models.TextField()
    context = models.JSONField(default=list, blank=True)
    output = models.TextField(help_text="The approved or corrected output (the chosen side).")
    rejected_output = models.TextField(
        blank=True, default="", help_text="The original output of a correction."
    )
    error_category = models.ForeignKey(
        "reviews.ErrorCategory", null=True, blank=True, on_delete=models.PROTECT
    )
    reviews = models.ManyToManyField("reviews.Review", related_name="training_pairs")
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="training_pairs")
    # sha256 of (input, output): exact duplicates are dropped at export time.
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    # The interaction's tool calls and results between input and output, copied like
    # `context` (so a batch reads one table). Declared last, where the column is (it came
    # later); the database default is for raw SQL writers (bench/export.py).
    steps = models.JSONField(default=list, blank=True, db_default=[])
    # The deciding review's rubric scores, `{criterion key: value, "_rubric_version": N}`
    # ({} when the agent had no rubric or nothing was scored), copied at decision time like
    # the rest (reviews.rubrics.Scored.as_dict).
    scores = models.JSONField(default=dict, blank=True, db_default={})

    class Meta:
        indexes = [
            models.Index(fields=["agent", "created_at"], name="pair_agent_time"),
            models.Index(fields=["content_hash"], name="pair_content_hash"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.source})"


class ExportBatch(models.Model):
    """An immutable, versioned retraining batch: what was asked (agent, dataset, format,
    filters, the data cutoff), how the build went, and what came out (file, sha256, manifest,
    the pairs it holds)."""

    class Dataset(models.TextChoices):
        PAIRS = "pairs", "Training pairs"
        FEEDBACK = "feedback", "Feedback log"
        # Registered by the evals app (retraining/sources.py; evals/exports.py).
        COMPARISONS = "comparisons", "Pairwise comparisons"

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSONL"
        OPENAI = "openai", "OpenAI chat JSONL"
        PREFERENCE = "preference", "Preference (DPO) JSONL"
        CSV = "csv", "CSV"
        PARQUET = "parquet", "Parquet"

    class Status(models.TextChoices):
        QUEUED = "queued"
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"

    FEEDBACK_FORMATS = (Format.CSV, Format.PARQUET)
    COMPARISON_FORMATS = (Format.PREFERENCE, Format.CSV, Format.PARQUET)

    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.PROTECT, related_name="export_batches"
    )
    dataset = models.CharField(max_length=12, choices=Dataset, default=Dataset.PAIRS)
    format = models.CharField(max_length=20, choices=Format)
    # Normalised by `services.filters_clean`; also copied into the manifest.
    filters = models.JSONField(default=dict, blank=True)
    validation_share = models.FloatField(
        default=0.1, help_text="Share of inputs in the validation split, fixed at request time."
    )
    # The highest source row id (pair or feedback event) when the batch was requested: rows
    # arriving later never change a batch, so a retry rebuilds the same file.
    cutoff_id = models.BigIntegerField(default=0)

    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent built.")
    failure_reason = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # The build lease: the builder holding `lease_token` renews `heartbeat_at` while it works;
    # a `building` batch whose heartbeat is older than EXPORT_BUILD_LEASE_SECONDS has lost
    # its worker (killed, OOM, machine gone) and is taken over or failed by the sweep.
    lease_token = models.CharField(max_length=32, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    row_count = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="exports/", max_length=255, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    manifest_file = models.FileField(upload_to="exports/", max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    manifest = models.JSONField(default=dict, blank=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # "This batch was used to train agent version X": the KPI dashboard links a version's
    # KPIs to the batch(es) it was trained on through this field.
    trained_agent_version = models.CharField(max_length=100, blank=True, default="")
    pairs = models.ManyToManyField(
        TrainingPair, through="BatchPair", related_name="batches", blank=True
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "export batches"
        indexes = [
            models.Index(fields=["agent", "-created_at"], name="batch_agent_time"),
            # The sweep: building / queued batches by last sign of life.
            models.Index(
                fields=["status", "heartbeat_at"],
                name="batch_unfinished",
                condition=Q(status__in=["queued", "building"]),
            ),
            models.Index(
                fields=["agent", "trained_agent_version"],
                name="batch_trained_version",
                condition=~Q(trained_agent_version=""),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "building", "ready", "failed"]),
                name="batch_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(dataset="pairs")
                | Q(format__in=["csv", "parquet"])
                | Q(dataset="comparisons", format="preference"),
                name="batch_feedback_csv_or_parquet",
            ),
            # A ready batch always has its file and checksum.
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(sha256="") & ~Q(file="")),
                name="batch_ready_has_file",
            ),
            models.CheckConstraint(
                condition=Q(validation_share__gte=0) & Q(validation_share__lt=1),
                name="batch_validation_share_range",
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} {self.dataset}/{self.format} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)

    @property
    def filters_summary(self) -> list[str]:
        """The filters that narrow the batch, in a few words each (for the batch list)."""
        f = self.filters
        parts = []
        if f.get("new_only"):
            parts.append("new only")
        if f.get("sources") and len(f["sources"]) == 1:
            parts.append("approvals only" if f["sources"] == ["approve"] else "corrections only")
        if f.get("date_from") or f.get("date_to"):
            parts.append(f"{f.get('date_from') or '…'} → {f.get('date_to') or '…'}")
        if f.get("error_categories"):
            parts.append(", ".join(c or "no category" for c in f["error_categories"]))
        if f.get("agent_versions"):
            parts.append("versions " + ", ".join(f["agent_versions"]))
        if (f.get("min_reviews") or 1) > 1:
            parts.append(f"≥ {f['min_reviews']} reviews")
        for key, one, many in (("intents", "intent", "intents"), ("domains", "domain", "domains")):
            if f.get(key):
                parts.append(f"{one if len(f[key]) == 1 else many} {', '.join(f[key])}")
        if self.dataset != self.Dataset.PAIRS and f.get("kinds"):
            parts.append(", ".join(f["kinds"]))
        return parts


class BatchPair(models.Model):
    """Which pairs a batch holds: its selection, frozen when its build starts (duplicates
    dropped from the file included, flagged: their content is in it). "Only new pairs"
    means: held by no other batch. A failed batch holds nothing."""

    # (batch, pair) is the key: no surrogate id, so freezing a million-pair selection writes
    # two index entries per pair (this key and the pair index) instead of three.
    pk = models.CompositePrimaryKey("batch_id", "pair_id")
    # No database foreign keys: a constraint check per row (and the row lock it takes on every
    # pair) would triple the cost of freezing a large selection. Rows are only ever written
    # by `build.select`, from pairs it has just read, for the batch it holds the lease
    # of; a pair held by a batch is never deleted (PROTECT; an undo removing a pair waits for
    # running selections, build.pair_removal_lock) and deleting a batch deletes its rows
    # (Django's CASCADE).
    batch = models.ForeignKey(
        ExportBatch,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the primary key starts with it
        db_constraint=False,
    )
    pair = models.ForeignKey(
        TrainingPair, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    # An exact (input, output) repeat of a lower pair id of the same batch: held, not written.
    duplicate = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"batch {self.batch_id} holds pair {self.pair_id}"
