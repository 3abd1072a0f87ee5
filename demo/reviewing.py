"""How the demo's reviewers work: who reviews which domains on which days, how fast and how
carefully, and what each of them decides about one answer. Pure: no database; `demo.history`
replays the weeks and applies these decisions through the review services.

Determinism: a reviewer's decision on an item depends only on (seed, external id, reviewer),
and their working day only on (seed, day, reviewer), so the same seed and moment of
seeding give the same history, whatever order the queue hands the items out in. Two
reviewers of a four-eyes item decide independently, so they disagree now and then (more
often the careless with the strict), which is what the agreement page measures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from demo.content_reviews import (
    ADJUDICATION_NOTES,
    APPROVE_NOTES,
    CATEGORIES_BY_INTENT,
    DEFAULT_CATEGORIES,
    ESCALATE_NOTES,
    NOTES,
    SKIP_NOTES,
    TONE_OPENERS,
)

# Share of the open reviews of each domain the pool works off on a weekday (Monday first):
# the queue is cleared on Wednesdays and Fridays, nobody works at the weekend.
WORK_SHARE = (0.7, 0.8, 1.0, 0.8, 1.0, 0.0, 0.0)
# The last REVIEW_LAG_DAYS days (today included) have no reviews yet: the backlog the demo
# reviewers find on the first run.
REVIEW_LAG_DAYS = 2
# Typical seconds a review takes, per domain (a correction takes longer, a skip less).
BASE_SECONDS = {"legal": 240.0, "support": 95.0, "product": 45.0}
SKIP_RATE = 0.02
TONE_RATE = 0.05  # sound support answers a reviewer still corrects for tone


@dataclass(frozen=True)
class Persona:
    """A demo reviewer. Rates are chances per item."""

    username: str
    first_name: str
    domains: tuple[str, ...]
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # 0 is Monday
    start_hour: float = 9.0  # UTC
    hours: float = 7.5
    pace: float = 1.0  # × the typical time of a review
    care: float = 0.9  # spots a weak answer
    strict: float = 0.15  # a spotted weak answer is rejected rather than corrected
    escalates: float = 0.05  # ... or sent to a lead
    doubts: float = 0.04  # a sound answer is rejected or escalated all the same
    capacity: int = 80  # ReviewerProfile.daily_capacity


PERSONAS = (
    Persona("lena", "Lena", ("legal",), start_hour=8.5, pace=1.2, care=0.95, escalates=0.08),
    Persona("omar", "Omar", ("legal",), start_hour=9.5, pace=0.8, care=0.8, strict=0.25),
    Persona(
        "priya",
        "Priya",
        ("legal",),
        workdays=(0, 1, 2, 3),
        start_hour=10.0,
        care=0.9,
        strict=0.3,
        escalates=0.1,
        doubts=0.08,
    ),
    Persona("sam", "Sam", ("support", "product"), start_hour=8.5, pace=0.9, capacity=120),
    Persona("jonas", "Jonas", ("support",), pace=1.1, care=0.85, strict=0.1),
    Persona("ines", "Ines", ("support",), workdays=(0, 2, 4), pace=0.8, care=0.93, hours=5.0),
    Persona("kai", "Kai", ("product",), workdays=(1, 2, 3), start_hour=9.0, pace=0.7, care=0.88),
)
LEAD = "admin"  # adjudicates disputed and escalated items


@dataclass(frozen=True)
class PlannedReview:
    """One decision, in the shape `reviews.services.decision_validate` takes."""

    verdict: str
    corrected_output: str = ""
    error_category: str = ""
    notes: str = ""
    seconds_spent: int = 60


def _weighted(rng: random.Random, options: Sequence[tuple[str, int]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _seconds(rng: random.Random, persona: Persona, domain: str, factor: float = 1.0) -> int:
    typical = BASE_SECONDS.get(domain, 90.0) * persona.pace * factor
    return int(min(3600, max(8, typical * rng.lognormvariate(0, 0.45))))


def review_of(
    persona: Persona,
    *,
    seed: int,
    external_id: str,
    intent: str,
    domain: str,
    output: str,
    fix: str | None,
) -> PlannedReview:
    """What `persona` decides about one answer. `fix` is the plan's better output when the
    answer is weak (None when it is sound)."""
    rng = random.Random(f"coachdesk-demo-review:{seed}:{external_id}:{persona.username}")
    if rng.random() < SKIP_RATE:
        return PlannedReview(
            "skip", notes=rng.choice(SKIP_NOTES), seconds_spent=_seconds(rng, persona, domain, 0.4)
        )
    category = _weighted(rng, CATEGORIES_BY_INTENT.get(intent, DEFAULT_CATEGORIES))
    roll = rng.random()
    if fix is not None and rng.random() < persona.care:
        if roll < persona.escalates:
            verdict, corrected = "escalate", ""
        elif roll < persona.escalates + persona.strict:
            verdict, corrected = "reject", ""
        else:
            verdict, corrected = "correct", fix
    elif fix is None and roll < persona.doubts:
        verdict, corrected = rng.choice(("reject", "escalate")), ""
    elif fix is None and domain == "support" and roll > 1 - TONE_RATE:
        verdict, corrected, category = "correct", rng.choice(TONE_OPENERS) + output, "tone"
    else:  # sound, or a weak answer the reviewer missed
        notes = rng.choice(APPROVE_NOTES) if rng.random() < 0.3 else ""
        return PlannedReview("approve", notes=notes, seconds_spent=_seconds(rng, persona, domain))
    notes = rng.choice(ESCALATE_NOTES if verdict == "escalate" else NOTES[category])
    factor = 1.8 if verdict == "correct" else 1.2
    return PlannedReview(
        verdict, corrected, category, notes, seconds_spent=_seconds(rng, persona, domain, factor)
    )


def adjudication_of(*, seed: int, external_id: str, intent: str, fix: str | None) -> PlannedReview:
    """The lead's final word on a disputed or escalated item: the plan's fix for a weak
    answer (now and then a rejection), otherwise mostly an approval."""
    rng = random.Random(f"coachdesk-demo-adjudication:{seed}:{external_id}")
    category = _weighted(rng, CATEGORIES_BY_INTENT.get(intent, DEFAULT_CATEGORIES))
    if fix is not None:
        verdict = "reject" if rng.random() < 0.15 else "correct"
    else:
        verdict = "reject" if rng.random() < 0.2 else "approve"
    return PlannedReview(
        verdict,
        corrected_output=(fix or "") if verdict == "correct" else "",
        error_category="" if verdict == "approve" else category,
        notes=rng.choice(ADJUDICATION_NOTES[verdict]),
        seconds_spent=int(rng.uniform(180, 600)),
    )


# --- working days --------------------------------------------------------------------------------


def review_days(first: date, today: date) -> list[date]:
    """The days with review sessions: after the first day of traffic, up to REVIEW_LAG_DAYS
    before today."""
    last = today - timedelta(days=REVIEW_LAG_DAYS)
    return [first + timedelta(days=k) for k in range(1, (last - first).days + 1)]


@dataclass
class Session:
    """One reviewer's working day: a clock that moves with every review."""

    persona: Persona
    rng: random.Random
    clock: datetime
    ends: datetime

    def pause(self) -> None:
        """The time between two reviews (reading the next item, a coffee now and then)."""
        seconds = self.rng.lognormvariate(math.log(40), 0.8)
        if self.rng.random() < 0.04:
            seconds += self.rng.uniform(600, 1800)
        self.clock += timedelta(seconds=seconds)

    @property
    def over(self) -> bool:
        return self.clock >= self.ends


def session_of(persona: Persona, *, seed: int, day: date) -> Session | None:
    """`persona`'s session on `day`, or None on a day off."""
    if day.weekday() not in persona.workdays:
        return None
    rng = random.Random(f"coachdesk-demo-day:{seed}:{day.isoformat()}:{persona.username}")
    start = datetime.combine(day, time(), tzinfo=UTC) + timedelta(
        hours=persona.start_hour + rng.gauss(0, 0.3)
    )
    return Session(persona, rng, start, start + timedelta(hours=persona.hours))
