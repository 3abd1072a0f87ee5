"""Forms of the review pages. They translate HTTP fields to service arguments and service
errors back to field errors; the rules themselves live in `services.decision_validate`."""

from django import forms
from django.conf import settings

from reviews import selectors
from reviews.models import Review
from reviews.rubrics import ActiveRubric
from reviews.services import MAX_NOTES

Verdict = Review.Verdict

# How long a review may be recorded as taking (the service refuses more).
MAX_SECONDS = 86_400


class QueueFilterForm(forms.Form):
    """The GET filters of "My queue", carried on to the claim and to every next item."""

    agent = forms.ChoiceField(required=False)
    domain = forms.ChoiceField(required=False)

    def __init__(self, *args, agents: list[tuple[str, str]], domains: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].choices = [("", "All agents"), *agents]
        self.fields["domain"].choices = [("", "All my domains"), *((d, d) for d in domains)]

    def filters(self) -> dict[str, str]:
        """The valid filters as query parameters (empty ones left out)."""
        if not self.is_valid():
            return {}
        return {k: self.cleaned_data[k] for k in ("agent", "domain") if self.cleaned_data[k]}


class ClaimForm(QueueFilterForm):
    """The "Start reviewing" filters, or "Claim again" after a lost hold, which also names
    the item to take back if it is still free (`services.item_claim(item_id=…)`)."""

    item = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class UndoForm(forms.Form):
    """The Undo button: the queue filters to carry on, and the page to go back to if the
    undo is refused (checked against this host by the view)."""

    agent = forms.CharField(required=False, widget=forms.HiddenInput)
    domain = forms.CharField(required=False, widget=forms.HiddenInput)
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def filters(self) -> dict[str, str]:
        data = self.cleaned_data if self.is_valid() else {}
        return {k: data[k] for k in ("agent", "domain") if data.get(k)}


def _within(text: str, subject: str, limit: int) -> str:
    """`text` if at most `limit` characters once line ends are normalised, else a field error
    with both figures (`subject` with its verb, as in `selectors.text_too_long`)."""
    length = len(text.replace("\r\n", "\n"))
    if length > limit:
        raise forms.ValidationError(
            selectors.text_too_long(subject, length, limit), code="max_length"
        )
    return text


class DecisionFields(forms.Form):
    """What a reviewer writes about an item, whatever the verdict."""

    corrected_output = forms.CharField(
        required=False,
        strip=False,  # whitespace is part of the answer the agent should have given
        label="Corrected output",
        widget=forms.Textarea(attrs={"rows": 8, "dir": "auto", "spellcheck": "true"}),
    )
    error_category = forms.ChoiceField(required=False, label="Error category")
    # No max_length on either text: the limits are checked below with the length and the
    # limit in the message, after \r\n → \n as the service counts (browsers post CRLF).
    notes = forms.CharField(
        required=False,
        label="Notes",
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto"}),
    )
    # Filled by review.js from the time the item was on screen. Measurement, not input: a
    # missing or odd value never blocks a decision, it is dropped or clamped.
    seconds_spent = forms.CharField(required=False, widget=forms.HiddenInput)

    verdicts: tuple[str, ...] = tuple(Verdict.values)

    def __init__(self, *args, categories: list[tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if categories is None:
            categories = selectors.category_choices()
        self.fields["error_category"].choices = [("", "— none —"), *categories]
        self.fields["verdict"] = forms.ChoiceField(
            choices=[(v, Verdict(v).label) for v in self.verdicts],
            error_messages={"required": "Choose a verdict with one of the buttons."},
        )

    def clean_corrected_output(self) -> str:
        # The same limit as the agent's output at ingest: over it the correction is refused
        # here (and never reaches the word diff or the service).
        return _within(
            self.cleaned_data.get("corrected_output") or "",
            "Your corrected answer is",
            settings.INGEST_MAX_TEXT_CHARS,
        )

    def clean_notes(self) -> str:
        # Notes have their own, lower limit (services.MAX_NOTES).
        return _within(self.cleaned_data.get("notes") or "", "Your notes are", MAX_NOTES)

    def clean_seconds_spent(self) -> int | None:
        try:
            seconds = int(float(self.cleaned_data.get("seconds_spent") or ""))
        except (ValueError, OverflowError):  # OverflowError: "inf", "1e309"
            return None
        return min(max(seconds, 0), MAX_SECONDS)

    def decision_fields(self) -> dict:
        """Keyword arguments of `services.decision_validate` (besides the item)."""
        data = self.cleaned_data
        return {
            "verdict": data["verdict"],
            "corrected_output": data.get("corrected_output") or "",
            "error_category": data.get("error_category") or None,
            "notes": data.get("notes") or "",
            "seconds_spent": data.get("seconds_spent"),
        }

    def add_service_errors(self, errors: dict[str, str]) -> None:
        """Shows `InvalidDecision.errors` ("field": "is required…") under their fields."""
        for name, message in errors.items():
            if name in self.fields and name not in ("verdict", "seconds_spent"):
                self.add_error(name, f"{self.fields[name].label} {message}.")
            else:
                self.add_error(None, f"{name.replace('_', ' ').capitalize()} {message}.")

    @property
    def editing(self) -> bool:
        """Whether the page opens in "correct" mode (the reviewer was writing a correction)."""
        verdict = self.data.get("verdict") if self.is_bound else self.initial.get("verdict")
        return verdict == Verdict.CORRECT


class ScoredDecisionFields(DecisionFields):
    """A decision with the scores of the agent's active rubric (`rubric`): one optional
    field `score_<key>` per criterion (whether a score is required depends on the verdict
    and the caller: `rubrics.scores_check` says so, naming the criterion) and the rubric
    version the page showed."""

    rubric_version = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, rubric: ActiveRubric | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rubric = rubric
        if rubric is not None:
            self.fields["rubric_version"].initial = rubric.version
            for c in rubric.criteria:
                self.fields[f"score_{c.key}"] = forms.TypedChoiceField(
                    required=False,
                    label=c.name,
                    coerce=int,
                    empty_value=None,
                    choices=[("", "Not scored"), *((str(v), label) for v, label in c.choices)],
                    widget=forms.RadioSelect,
                )

    def decision_fields(self) -> dict:
        fields = super().decision_fields()
        if self.rubric is None:
            return fields
        data = self.cleaned_data
        fields["scores"] = {
            c.key: data[f"score_{c.key}"]
            for c in self.rubric.criteria
            if data.get(f"score_{c.key}") is not None
        }
        fields["rubric_version"] = data.get("rubric_version")
        return fields

    def add_service_errors(self, errors: dict[str, str]) -> None:
        """Score errors under their criterion (their messages name it); the rest as usual."""
        rest = {}
        for name, message in errors.items():
            field = f"score_{name.removeprefix('scores.')}"
            if name.startswith("scores.") and field in self.fields:
                self.add_error(field, f"{message[:1].upper()}{message[1:]}.")
            elif name == "rubric_version":
                self.add_error(None, f"The rubric version you scored {message}.")
            else:
                rest[name] = message
        super().add_service_errors(rest)

    def criteria_rows(self) -> list[dict]:
        """What the screen shows per criterion: its number (the key that selects it), the
        criterion and its bound field."""
        if self.rubric is None:
            return []
        rows = []
        for n, c in enumerate(self.rubric.criteria, start=1):
            field = self[f"score_{c.key}"]
            current = "" if field.value() is None else str(field.value())
            choices = [("", "Not scored"), *((str(v), label) for v, label in c.choices)]
            rows.append(
                {
                    "number": n,
                    "criterion": c,
                    "field": field,
                    "choices": [
                        {"value": v, "label": label, "checked": v == current}
                        for v, label in choices
                    ],
                }
            )
        return rows


class DecisionForm(ScoredDecisionFields):
    """The reviewer's decision on an item they hold (scored as `ScoredDecisionFields`)."""

    # The item's version when the page was rendered: a page of an earlier claim cannot
    # decide a newer one (`services.StalePage`).
    version = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    # The queue filters, so the next item comes from the same agent / domain.
    agent = forms.CharField(required=False, widget=forms.HiddenInput)
    domain = forms.CharField(required=False, widget=forms.HiddenInput)

    def filters(self) -> dict[str, str]:
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return {k: data[k] for k in ("agent", "domain") if data.get(k)}
