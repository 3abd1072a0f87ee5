"""Forms of the exports page. They only translate HTML fields into the service's request
shape; `services.filters_clean` is the one place that validates filters."""

from typing import Any

from django import forms

from agents.models import Agent, FeedbackEvent
from retraining import services
from retraining.models import ExportBatch, TrainingPair
from reviews.models import ErrorCategory

NO_CATEGORY = "__none__"


class _AgentForm(forms.Form):
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.order_by("slug"), to_field_name="slug", empty_label=None
    )
    date_from = forms.DateField(
        required=False, label="Decided from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="Decided to", widget=forms.DateInput(attrs={"type": "date"})
    )

    def add_service_errors(self, errors: dict[str, str]) -> None:
        for name, message in errors.items():
            self.add_error(name if name in self.fields else None, message)

    def _dates(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "date_from": data["date_from"].isoformat() if data.get("date_from") else None,
            "date_to": data["date_to"].isoformat() if data.get("date_to") else None,
        }


class BuildForm(_AgentForm):
    """A training-pairs batch."""

    dataset = forms.CharField(widget=forms.HiddenInput, initial=ExportBatch.Dataset.PAIRS)
    format = forms.ChoiceField(choices=ExportBatch.Format.choices)
    sources = forms.MultipleChoiceField(
        choices=[
            (TrainingPair.Source.APPROVE, "Approved"),
            (TrainingPair.Source.CORRECT, "Corrected"),
        ],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: both.",
    )
    error_categories = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every pair, with or without a category.",
    )
    # Lengths and ranges are checked by `services.filters_clean`, as for the API; the
    # widgets only carry the same limits as hints for the browser.
    agent_versions = forms.CharField(
        required=False, help_text="Comma-separated; empty: every version."
    )
    min_reviews = forms.IntegerField(
        initial=1,
        required=False,
        label="Minimum number of reviews",
        widget=forms.NumberInput(attrs={"min": 1, "max": services.MIN_REVIEWS_MAX}),
    )
    new_only = forms.BooleanField(required=False, label="Only new pairs (in no earlier batch)")
    system_prompt = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": services.SYSTEM_PROMPT_MAX_CHARS}),
        help_text="openai format only: opens every conversation.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        categories = self.fields["error_categories"]
        assert isinstance(categories, forms.MultipleChoiceField)
        categories.choices = [
            *ErrorCategory.objects.order_by("position", "slug").values_list("slug", "name"),
            (NO_CATEGORY, "(no category)"),
        ]

    def request(self) -> dict[str, Any]:
        """The keyword arguments of `services.batch_request` (after `is_valid()`)."""
        data = self.cleaned_data
        filters = {
            **self._dates(),
            "sources": data["sources"],
            "error_categories": [
                None if slug == NO_CATEGORY else slug for slug in data["error_categories"]
            ],
            "agent_versions": [v for v in data["agent_versions"].split(",") if v.strip()],
            "min_reviews": data.get("min_reviews"),  # None: 1
        }
        if data["system_prompt"]:
            filters["system_prompt"] = data["system_prompt"]
        return {
            "agent": data["agent"],
            "dataset": ExportBatch.Dataset.PAIRS,
            "format": data["format"],
            "filters": filters,
            "new_only": data["new_only"],
        }


class FeedbackForm(_AgentForm):
    """The feedback log (clicked / skipped per item ref) of a recommender."""

    dataset = forms.CharField(widget=forms.HiddenInput, initial=ExportBatch.Dataset.FEEDBACK)
    format = forms.ChoiceField(
        choices=[(f, ExportBatch.Format(f).label) for f in ExportBatch.FEEDBACK_FORMATS]
    )
    kinds = forms.MultipleChoiceField(
        choices=FeedbackEvent.Kind.choices,
        required=False,
        initial=[FeedbackEvent.Kind.CLICKED, FeedbackEvent.Kind.SKIPPED],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: clicked and skipped.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "fb_%s")  # the build form on the same page uses id_*
        super().__init__(*args, **kwargs)
        self.fields["date_from"].label, self.fields["date_to"].label = "From", "To"

    def request(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "agent": data["agent"],
            "dataset": ExportBatch.Dataset.FEEDBACK,
            "format": data["format"],
            "filters": {**self._dates(), "kinds": data["kinds"]},
        }


class TrainedForm(forms.Form):
    agent_version = forms.CharField(
        max_length=100, required=False, label="Used to train agent version"
    )
