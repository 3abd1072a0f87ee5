"""Forms of the KPI pages: they turn query strings into selector arguments."""

from datetime import date, timedelta

from django import forms
from django.conf import settings

from agents.models import Agent
from kpis.selectors import DEFAULT_RANGE, RANGE_CHOICES, Filters


class KpiFilterForm(forms.Form):
    """agent / version / range (a number of days ending today, or an explicit start and end).
    Every field is optional: an empty form shows the first agent, all versions, 30 days."""

    agent = forms.ChoiceField(required=False)
    version = forms.CharField(required=False, max_length=100)
    days = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=DEFAULT_RANGE,
        choices=[(d, f"Last {d} days") for d in RANGE_CHOICES],
        label="Range",
    )
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, agents: list[Agent], today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.agents = {a.slug: a for a in agents}
        self.today = today
        self.fields["agent"].choices = [(a.slug, a.name or a.slug) for a in agents]

    def clean(self):
        data = super().clean()
        days = data.get("days") or DEFAULT_RANGE
        start, end = data.get("start"), data.get("end")
        end = end or self.today
        if end > date.max - timedelta(days=2):  # queries run to the day after `end`
            raise forms.ValidationError("The range ends too late.")
        if start is None and (end - date.min).days < days - 1:
            raise forms.ValidationError("The range starts too early.")
        start = start or end - timedelta(days=days - 1)
        if start > end:
            raise forms.ValidationError("The start of the range is after its end.")
        if (start - date.min).days < (end - start).days + 1:  # the period before it is shown too
            raise forms.ValidationError("The range starts too early.")
        if (end - start).days + 1 > settings.KPI_MAX_RANGE_DAYS:
            raise forms.ValidationError(
                f"The range is longer than {settings.KPI_MAX_RANGE_DAYS} days."
            )
        data["range"] = (start, end)
        return data

    def filters(self, *, versions: list[str] | None = None) -> Filters | None:
        """The valid selection (None without agents or when invalid). A version the agent
        does not have falls back to all versions (it happens when the agent changes)."""
        if not self.agents or not self.is_valid():
            return None
        agent = self.agents.get(self.cleaned_data.get("agent") or "") or next(
            iter(self.agents.values())
        )
        version = self.cleaned_data.get("version") or ""
        if versions is not None and version not in versions:
            version = ""
        start, end = self.cleaned_data["range"]
        return Filters(agent=agent, version=version, start=start, end=end)

    def selected_agent(self) -> Agent | None:
        if not self.agents:
            return None
        slug = self.cleaned_data.get("agent") if self.is_valid() else self.data.get("agent")
        return self.agents.get(slug or "") or next(iter(self.agents.values()))


class CalibrationForm(KpiFilterForm):
    target = forms.FloatField(
        required=False,
        min_value=0.5,
        max_value=0.999,
        label="Target approval rate",
        widget=forms.NumberInput(attrs={"step": "0.005"}),
    )

    def target_value(self) -> float:
        value = self.cleaned_data.get("target") if self.is_valid() else None
        return value or 0.95
