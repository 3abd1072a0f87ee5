"""Redaction counts (issue 16): how many values of each kind redaction replaced in an
agent's interactions, per UTC day (`Interaction.redactions`, written at ingest)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from agents.models import Agent, Interaction
from agents.redaction import label

# The (agent, created_at) index narrows the scan to the agent's days; rows without any
# redaction are skipped before the jsonb is expanded.
_COUNTS_SQL = """
SELECT (i.created_at AT TIME ZONE 'UTC')::date AS day, e.key, sum(e.value::bigint)
FROM reviews_interaction i, jsonb_each_text(i.redactions) e
WHERE i.agent_id = %s AND i.created_at >= %s AND i.created_at < %s
  AND i.redactions <> '{}'::jsonb
GROUP BY 1, 2
"""


@dataclass
class PrivacyKpis:
    kinds: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    days: list[tuple[date, list[int], int]] = field(default_factory=list)  # counts by `kinds`

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def columns(self) -> list[tuple[str, str, int]]:
        """(kind, its placeholder name, its total), in `kinds` order."""
        return [(k, label(k), self.totals[k]) for k in self.kinds]


def redaction_counts(*, agent: Agent, start: date, end: date) -> PrivacyKpis:
    """Occurrences redacted per kind and day from `start` to `end` (UTC days, both
    included); days without any are left out. One query."""
    first = datetime.combine(start, time.min, tzinfo=UTC)
    after = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    by_day: dict[date, dict[str, int]] = defaultdict(dict)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_COUNTS_SQL, [agent.pk, first, after])
            for day, kind, n in cursor.fetchall():
                by_day[day][kind] = int(n)
    else:  # the portable path: summed here
        rows = Interaction.objects.filter(
            agent=agent, created_at__gte=first, created_at__lt=after
        ).values_list("created_at", "redactions")
        for created, counts in rows:
            day = created.astimezone(UTC).date()
            for kind, n in (counts or {}).items():
                by_day[day][kind] = by_day[day].get(kind, 0) + int(n)
    out = PrivacyKpis()
    for counts in by_day.values():
        for kind, n in counts.items():
            out.totals[kind] = out.totals.get(kind, 0) + n
    out.kinds = sorted(out.totals)
    for day in sorted(by_day):
        counts = by_day[day]
        out.days.append((day, [counts.get(k, 0) for k in out.kinds], sum(counts.values())))
    return out


def api_rows(kpis: PrivacyKpis) -> list[dict]:
    """One row per day and kind: {day, kind, count}."""
    return [
        {"day": day.isoformat(), "kind": kind, "count": n}
        for day, counts, _ in kpis.days
        for kind, n in zip(kpis.kinds, counts, strict=True)
        if n
    ]
