"""Training pairs (made when review items are decided) and immutable export batches."""

from django.conf import settings
from django.db import models


class TrainingPair(models.Model):
    class Source(models.TextChoices):
        APPROVE = "approve"
        CORRECT = "correct"

    item = models.OneToOneField(
        "reviews.ReviewItem", on_delete=models.PROTECT, related_name="training_pair"
    )
    interaction = models.ForeignKey(
        "reviews.Interaction", on_delete=models.PROTECT, related_name="training_pairs"
    )
    agent = models.ForeignKey(
        "reviews.Agent", on_delete=models.PROTECT, related_name="training_pairs"
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

    class Meta:
        indexes = [
            models.Index(fields=["agent", "created_at"], name="pair_agent_time"),
            models.Index(fields=["content_hash"], name="pair_content_hash"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.source})"


class ExportBatch(models.Model):
    class Format(models.TextChoices):
        JSONL = "jsonl"
        OPENAI = "openai"
        PREFERENCE = "preference"
        CSV = "csv"
        PARQUET = "parquet"

    class Status(models.TextChoices):
        QUEUED = "queued"
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"

    agent = models.ForeignKey(
        "reviews.Agent", on_delete=models.PROTECT, related_name="export_batches"
    )
    format = models.CharField(max_length=20, choices=Format)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent built.")
    failure_reason = models.TextField(blank=True, default="")
    row_count = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="exports/", blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    manifest = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    trained_agent_version = models.CharField(max_length=100, blank=True, default="")
    pairs = models.ManyToManyField(TrainingPair, related_name="batches", blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "export batches"

    def __str__(self) -> str:
        return f"batch {self.pk} {self.format} ({self.status})"
