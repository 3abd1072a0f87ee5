"""Forms of the exports page. They only translate HTML fields into the service's request
shape; `services.filters_clean` is the one place that validates filters."""

from typing import Any

from django import forms

from agents.models import Agent, FeedbackEvent
from retraining import selectors, services
from retraining.models import ExportBatch, TrainingPair
from reviews.models import ErrorCategory

NO_CATEGORY = "__none__"


def _comma_list(text: str) -> list[str]:
    return [v for v in text.split(",") if v.strip()]


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
    # The options are the tags of the chosen agent's recent pairs (selectors.pair_tags).
    intents = forms.MultipleChoiceField(
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text="The interaction's intent. None selected: every intent.",
    )
    domains = forms.MultipleChoiceField(
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 5}),
        help_text="The interaction's domain. None selected: every domain.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        categories = self.fields["error_categories"]
        assert isinstance(categories, forms.MultipleChoiceField)
        categories.choices = [
            *ErrorCategory.objects.order_by("position", "slug").values_list("slug", "name"),
            (NO_CATEGORY, "(no category)"),
        ]
        # The agent posted (a bound form), else the page's: its options are the ones shown.
        slug = self.data.get("agent") if self.is_bound else self.initial.get("agent")
        tags = selectors.pair_tags(selectors.agent_by_slug(str(slug or "")))
        for name in ("intents", "domains"):
            field = self.fields[name]
            assert isinstance(field, forms.MultipleChoiceField)
            field.choices = [(tag, tag) for tag in tags[name]]

    def request(self) -> dict[str, Any]:
        """The keyword arguments of `services.batch_request` (after `is_valid()`)."""
        data = self.cleaned_data
        filters = {
            **self._dates(),
            "sources": data["sources"],
            "error_categories": [
                None if slug == NO_CATEGORY else slug for slug in data["error_categories"]
            ],
            "agent_versions": _comma_list(data["agent_versions"]),
            "min_reviews": data.get("min_reviews"),  # None: 1
            "intents": data["intents"],
            "domains": data["domains"],
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
    intents = forms.CharField(
        required=False, help_text="The interaction's intent, comma-separated; empty: every one."
    )
    domains = forms.CharField(
        required=False, help_text="The interaction's domain, comma-separated; empty: every one."
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
            "filters": {
                **self._dates(),
                "kinds": data["kinds"],
                "intents": _comma_list(data["intents"]),
                "domains": _comma_list(data["domains"]),
            },
        }


class ComparisonsForm(_AgentForm):
    """Decided pairwise comparisons (A or B better) as preference data."""

    # The kinds of comparison (evals.models.Comparison.Kind: retraining may not import evals).
    KINDS = [("versions", "Two agent versions"), ("regression", "New answer against the reference")]

    dataset = forms.CharField(widget=forms.HiddenInput, initial=ExportBatch.Dataset.COMPARISONS)
    format = forms.ChoiceField(
        choices=[(f, ExportBatch.Format(f).label) for f in ExportBatch.COMPARISON_FORMATS]
    )
    kinds = forms.MultipleChoiceField(
        choices=KINDS,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: both.",
    )
    agent_versions = forms.CharField(
        required=False,
        label="Agent versions",
        help_text="Comma-separated; a comparison matches when either side is one of them.",
    )
    intents = forms.CharField(
        required=False, help_text="The comparison's intent, comma-separated; empty: every one."
    )
    domains = forms.CharField(
        required=False, help_text="The comparison's domain, comma-separated; empty: every one."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "cmp_%s")  # the other forms on the page use id_*, fb_*
        super().__init__(*args, **kwargs)

    def request(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "agent": data["agent"],
            "dataset": ExportBatch.Dataset.COMPARISONS,
            "format": data["format"],
            "filters": {
                **self._dates(),
                "kinds": data["kinds"],
                "agent_versions": _comma_list(data["agent_versions"]),
                "intents": _comma_list(data["intents"]),
                "domains": _comma_list(data["domains"]),
            },
        }


class TrainedForm(forms.Form):
    agent_version = forms.CharField(
        max_length=100, required=False, label="Used to train agent version"
    )
