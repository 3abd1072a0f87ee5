"""Forms of the comparison pages. The reviewer picks a side (left / right, as shown); the
form turns it into a choice about the stored answers (A / B) with the comparison's
`a_on_left`, so nothing on the page needs to know which answer is which."""

from django import forms

from evals.models import Comparison
from evals.services import MAX_REASON

Choice = Comparison.Choice
MAX_SECONDS = 86_400

# The buttons: (side, label, shortcut key). "left" / "right" are positions on the screen.
SIDES = (
    ("left", "Answer 1 is better", "1"),
    ("right", "Answer 2 is better", "2"),
    ("tie", "Tie", "t"),
    ("both_bad", "Both bad", "b"),
)


def choice_for(side: str, a_on_left: bool) -> str:
    """The stored choice (a / b / tie / both_bad) of a side clicked on the screen."""
    if side == "left":
        return Choice.A if a_on_left else Choice.B
    if side == "right":
        return Choice.B if a_on_left else Choice.A
    return side


def side_for(choice: str, a_on_left: bool) -> str:
    """The screen side (left / right / tie / both_bad) of a stored choice."""
    if choice == Choice.A:
        return "left" if a_on_left else "right"
    if choice == Choice.B:
        return "right" if a_on_left else "left"
    return choice


class VoteForm(forms.Form):
    side = forms.ChoiceField(
        choices=[(s, label) for s, label, _ in SIDES],
        error_messages={"required": "Choose with one of the buttons."},
    )
    reason = forms.CharField(
        required=False,
        max_length=MAX_REASON,
        widget=forms.Textarea(attrs={"rows": 3, "dir": "auto", "maxlength": MAX_REASON}),
    )
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    # Filled by compare.js from the time the comparison was on screen: a measurement, never
    # a reason to refuse a vote (dropped or clamped).
    seconds_spent = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_seconds_spent(self) -> int | None:
        try:
            seconds = int(float(self.cleaned_data.get("seconds_spent") or ""))
        except (ValueError, OverflowError):
            return None
        return min(max(seconds, 0), MAX_SECONDS)


class AdjudicationForm(forms.Form):
    side = forms.ChoiceField(choices=[(s, label) for s, label, _ in SIDES])
    reason = forms.CharField(
        required=False, max_length=MAX_REASON, widget=forms.Textarea(attrs={"rows": 3})
    )
