"""An agent's KPI alert thresholds as form fields: one row per KPI that can alert
(`kpis.definitions.ALERTABLE`) with its bounds, period and minimum data, each a number
input validated on its own, instead of a JSON text.

The stored value keeps the shape `kpis.alerts` reads and the JSON contract of
`Agent.alert_thresholds`: `{kpi: {"below" | "above": number, "days": 1-366, "min_n": ≥ 0}}`,
with only the KPIs that have a bound. `days` and `min_n` are stored only when given (the
alerts default them to 7 and 0), so saving an untouched form changes nothing.
"""

from dataclasses import dataclass
from typing import Any

from django import forms

from kpis.definitions import ALERTABLE, BY_KEY, Kpi, thresholds_validate

BOUNDS = ("below", "above")

# (smallest, largest) value of a bound by unit, and what the unit means to the admin.
RANGES: dict[str, tuple[float | None, float | None]] = {"share": (0, 1), "score": (-1, 1)}
UNITS = {
    "share": "share, 0 to 1",
    "score": "from −1 to 1",
    "seconds": "seconds",
    "turns": "turns",
}


@dataclass(frozen=True)
class ThresholdRow:
    """A KPI's row of the form: its bound fields by part (below, above, days, min_n)."""

    kpi: Kpi
    fields: dict[str, forms.BoundField]

    @property
    def unit(self) -> str:
        return UNITS.get(self.kpi.unit, self.kpi.unit)

    @property
    def errors(self) -> bool:
        return any(f.errors for f in self.fields.values())


def field_name(kpi_key: str, part: str) -> str:
    return f"alert_{kpi_key}_{part}"


def _bound_field(kpi: Kpi, part: str) -> forms.Field:
    low, high = RANGES.get(kpi.unit, (0, None))
    return forms.FloatField(
        label=f"{kpi.label}: alert {part}",
        required=False,
        min_value=low,
        max_value=high,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )


def _number(kpi: Kpi, value: float) -> float | int:
    """Counts and durations are stored as whole numbers when they are whole (200, not 200.0)."""
    whole = kpi.kind in ("count", "duration") and float(value).is_integer()
    return int(value) if whole else value


class AlertThresholdFields:
    """Mixin of a Form: `add_threshold_fields(current)` in `__init__`; after validation,
    `cleaned_data["alert_thresholds"]` is the value to store. `threshold_rows` is what the
    template lays out as a table, `threshold_dropped` the stored KPIs the form cannot show
    (unknown to the alerts, which ignore them), which saving removes."""

    fields: dict[str, forms.Field]
    cleaned_data: dict[str, Any]

    def add_threshold_fields(self, current: Any) -> None:
        current = current if isinstance(current, dict) else {}
        for key in ALERTABLE:
            kpi = BY_KEY[key]
            spec = current.get(key) if isinstance(current.get(key), dict) else {}
            for part in BOUNDS:
                self.fields[field_name(key, part)] = _bound_field(kpi, part)
            self.fields[field_name(key, "days")] = forms.IntegerField(
                label=f"{kpi.label}: over days",
                required=False,
                min_value=1,
                max_value=366,
                widget=forms.NumberInput(attrs={"placeholder": "7"}),
            )
            self.fields[field_name(key, "min_n")] = forms.IntegerField(
                label=f"{kpi.label}: minimum observations",
                required=False,
                min_value=0,
                widget=forms.NumberInput(attrs={"placeholder": "0"}),
            )
            for part in (*BOUNDS, "days", "min_n"):
                self.fields[field_name(key, part)].initial = spec.get(part)
        self.threshold_dropped = sorted(str(k) for k in current if k not in ALERTABLE)

    @property
    def threshold_rows(self) -> list[ThresholdRow]:
        return [
            ThresholdRow(
                kpi=BY_KEY[key],
                fields={
                    part: self[field_name(key, part)]  # type: ignore[index]
                    for part in (*BOUNDS, "days", "min_n")
                },
            )
            for key in ALERTABLE
        ]

    def clean_thresholds(self) -> None:
        """Builds `cleaned_data["alert_thresholds"]` from the rows whose fields are valid; a
        row with a period or a minimum but no bound is an error on its "below" field."""
        data = self.cleaned_data
        thresholds: dict[str, dict[str, float | int]] = {}
        for key in ALERTABLE:
            names = {p: field_name(key, p) for p in (*BOUNDS, "days", "min_n")}
            if any(name not in data for name in names.values()):
                continue  # one of its fields is invalid and already has its error
            spec = {p: data[names[p]] for p in names if data[names[p]] is not None}
            if not any(b in spec for b in BOUNDS):
                if spec:
                    self.add_error(  # type: ignore[attr-defined]
                        names["below"],
                        "Give a bound (below or above), or clear the days and the minimum.",
                    )
                continue
            kpi = BY_KEY[key]
            thresholds[key] = {p: _number(kpi, v) if p in BOUNDS else v for p, v in spec.items()}
        # The fields cannot make a shape the alerts refuse; checked all the same, as the
        # service does, so a change here never stores what `kpis.alerts` would ignore.
        for problem in thresholds_validate(thresholds):
            self.add_error(None, problem)  # type: ignore[attr-defined]
        data["alert_thresholds"] = thresholds
