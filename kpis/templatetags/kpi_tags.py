from django import template

from kpis.definitions import Kpi, KpiValue, format_duration, format_value

register = template.Library()


@register.filter
def kpi_format(value: KpiValue | None, kpi: Kpi) -> str:
    """A KPI value as text ("61.2%", "3.4 h", "1,204", "—")."""
    return format_value(kpi, value.value if value is not None else None)


@register.filter
def kpi_interval(value: KpiValue | None, kpi: Kpi) -> str:
    """The 95% interval of a rate or mean as text, with n ("52.1–70.3%, n = 40")."""
    if value is None or value.low is None:
        return f"n = {value.n:,}" if value is not None and value.n else ""
    if kpi.unit == "share":
        return f"{value.low * 100:.1f}–{value.high * 100:.1f}%, n = {value.n:,}"
    return f"{value.low:.2f} to {value.high:.2f}, n = {value.n:,}"


@register.filter
def duration(seconds) -> str:
    return format_duration(seconds)


@register.filter
def percent(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


@register.filter
def lookup(mapping, key):
    return mapping.get(key) if mapping else None
