"""The demo's deterministic plan: a month of interaction records in the ingest format and the
feedback events to send after them, drawn from the text banks in `demo.content*`. No database
access; `demo.seed` sends the plan through the ingest path.

Determinism: record `i` is a pure function of (seed, i) and the moment of seeding (times are
offsets back from "now"). External ids depend only on (seed, i). Feedback is planned as a
delay after its interaction, not as a time: `demo.seed` adds it to the *stored* interaction
time.

Besides the records, the plan knows what the demo's reviewers should find: for every weak
answer (the bank's `weak` text, a recommendation with a product that does not fit) the
output a careful reviewer writes instead (`DemoPlan.fixes`), which `demo.reviewing` uses
for corrections. The hand-written specials are the newest interactions (the last hours), so
they wait in the queue on the first run, where the review pages show them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from agents.models import FeedbackEvent
from demo.content import (
    AGENT_SLUGS,
    CARRIERS,
    COUNTRIES,
    GREETINGS,
    TRAFFIC_SHARE,
    VENDORS,
    WEEKDAYS,
    Topic,
)
from demo.content_catalog import CATALOG, SURFACES
from demo.content_legal import DISCLAIMER, LEGAL_HELLO, LEGAL_SYSTEM, LEGAL_TOPICS
from demo.content_specials import SPECIALS
from demo.content_support import SUPPORT_HELLO, SUPPORT_SYSTEM, SUPPORT_TOPICS, VAGUE

DAYS = 30
# Interactions are at least this old, and every feedback delay is shorter, so no demo event
# lies in the future (and none has to be clamped, which would change its dedupe key).
MIN_AGE = timedelta(hours=1)


# --- Releases (agent versions) ----------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A version of an agent: serves traffic from `days_ago`; later releases are better."""

    days_ago: int
    alpha: float  # confidence ~ Beta(alpha, beta)
    beta: float
    resolution: float  # added to the probability that a conversation is resolved
    ctr: float = 0.0  # recommenders: click probability of the top item


RELEASES = {
    "support-bot": (
        Release(48, 9.0, 2.3, 0.0),
        Release(17, 11.0, 2.1, 0.07),
        Release(5, 12.0, 2.1, 0.09),
    ),
    "legal-bot": (Release(60, 12.0, 2.3, 0.0), Release(12, 15.0, 2.1, 0.06)),
    "product-recommender": (
        Release(40, 7.0, 2.4, 0.0, ctr=0.16),
        Release(9, 8.5, 2.2, 0.0, ctr=0.24),
    ),
}
CANARY_DAYS = 3  # a new release takes over a quarter more of the traffic each day


def release_names(today: date) -> dict[str, list[str]]:
    """CalVer names from release dates (YYYY.M.N), so versions read true whenever seeded."""
    names: dict[str, list[str]] = {}
    for slug, releases in RELEASES.items():
        per_month: Counter[tuple[int, int]] = Counter()
        names[slug] = []
        for release in releases:
            day = today - timedelta(days=release.days_ago)
            per_month[(day.year, day.month)] += 1
            names[slug].append(f"{day.year}.{day.month}.{per_month[(day.year, day.month)]}")
    return names


def _release_index(rng: random.Random, releases: Sequence[Release], days_ago: int) -> int:
    current = max(k for k, r in enumerate(releases) if r.days_ago >= days_ago or k == 0)
    since = releases[current].days_ago - days_ago
    if current > 0 and since < CANARY_DAYS and rng.random() > (since + 1) / (CANARY_DAYS + 1):
        current -= 1
    return current


# --- The plan's shape, times and shared helpers -----------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedFeedback:
    agent: str
    external_id: str
    kind: str
    delay_s: int  # after the interaction's stored created_at; always < MIN_AGE
    item_ref: str = ""


@dataclass
class DemoPlan:
    interactions: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[PlannedFeedback] = field(default_factory=list)
    # external id → the output a careful reviewer writes instead of a weak one
    fixes: dict[str, str] = field(default_factory=dict)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(rng: random.Random, now: datetime, *, evening: bool) -> tuple[datetime, int]:
    """A time in the last DAYS days, at least MIN_AGE ago: weekdays and office hours for the
    chat agents, evenings all week for the shop. Returns (moment, days ago)."""
    today = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    latest = now - MIN_AGE
    while True:
        days_ago = rng.randrange(DAYS)
        day = today - timedelta(days=days_ago)
        if evening or day.weekday() < 5 or rng.random() < 0.45:  # quieter office weekends
            break
    hours = (
        (7, 12, 12, 13, 17, 18, 19, 20, 20, 21, 21, 22)
        if evening
        else (8, 9, 9, 10, 10, 11, 12, 13, 14, 14, 15, 16, 17, 19)
    )
    moment = day + timedelta(
        hours=rng.choice(hours), minutes=rng.randrange(60), seconds=rng.randrange(60)
    )
    if moment > latest:  # today, later than now: yesterday at the same time instead
        moment -= timedelta(days=1)
        days_ago += 1
    return moment, days_ago


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _turns(context: list[dict[str, str]]) -> int:
    """Messages the user and the agent exchanged, this answer included."""
    return sum(turn["role"] in ("user", "assistant") for turn in context) + 2


# --- Chat records (support-bot, legal-bot) ----------------------------------------------------


def _slots(rng: random.Random) -> dict[str, str]:
    return {
        "order": f"NW-{rng.randint(100000, 999999)}",
        "product": rng.choice(CATALOG).name,
        "carrier": rng.choice(CARRIERS),
        "country": rng.choice(COUNTRIES),
        "amount": rng.choice(("19.90", "34.50", "49.00", "89.90", "129.00", "212.40")),
        "days": str(rng.randint(3, 25)),
        "weekday": rng.choice(WEEKDAYS),
        "plan": rng.choice(("Plus", "Plus Family", "Pro")),
        "deposit": rng.choice(("1,200", "1,950", "2,400", "3,000")),
        "years": str(rng.randint(3, 9)),
        "notice": rng.choice(("30", "60", "90")),
        "vendor": rng.choice(VENDORS),
        "people": rng.choice(("40", "300", "1,200")),
    }


def _jurisdiction(rng: random.Random, answer: str) -> str:
    """The jurisdiction the question came from, consistent with the one the answer assumes."""
    for marker, code in (("German law", "DE"), ("UK (England)", "UK"), ("GDPR", "EU")):
        if marker in answer:
            return code
    return rng.choice(("DE", "DE", "UK", "NL", "FR"))


def _weighted(rng: random.Random, topics: Sequence[Topic]) -> Topic:
    return rng.choices(topics, weights=[t.weight for t in topics])[0]


def _chat_context(
    rng: random.Random, topic: Topic, slots: dict[str, str], system: str, hello: str
) -> list[dict[str, str]]:
    turns: list[dict[str, str]] = []
    if rng.random() < 0.12:
        turns.append({"role": "system", "content": system})
    roll = rng.random()
    if roll < 0.3:
        turns += [
            {"role": "user", "content": rng.choice(GREETINGS)},
            {"role": "assistant", "content": hello},
        ]
    elif roll < 0.5 and topic.intent in VAGUE:
        turns += [
            {"role": "user", "content": VAGUE[topic.intent]},
            {"role": "assistant", "content": "Sorry to hear that. Can you tell me a bit more?"},
        ]
    if topic.tool and rng.random() < 0.6:
        turns.append({"role": "tool", "content": topic.tool.format(**slots)})
    return turns


def _chat(
    rng: random.Random,
    slug: str,
    release: Release,
    topics: Sequence[Topic],
    external_id: str,
    plan: DemoPlan,
) -> dict[str, Any]:
    legal = slug == "legal-bot"
    topic = _weighted(rng, topics)
    slots = _slots(rng)
    confidence = round(_clip(rng.betavariate(release.alpha, release.beta), 0.02, 0.995), 3)
    weak = confidence < (0.72 if legal else 0.6) and rng.random() < 0.7
    case = rng.choice(topic.cases)
    question = rng.choice(case.questions).format(**slots)
    answer = (case.weak if weak else case.answer).format(**slots)
    if legal:
        answer += DISCLAIMER
    if weak:  # the bank's sound answer to the same question (no draw: the record is unchanged)
        plan.fixes[external_id] = case.answer.format(**slots) + (DISCLAIMER if legal else "")
    elif not legal and rng.random() < 0.3:
        answer += " Is there anything else I can help with?"
    context = _chat_context(
        rng,
        topic,
        slots,
        LEGAL_SYSTEM if legal else SUPPORT_SYSTEM,
        LEGAL_HELLO if legal else SUPPORT_HELLO,
    )

    p_resolved = _clip(0.2 + 0.62 * confidence + release.resolution - (0.3 if weak else 0), 0, 0.97)
    resolved = rng.random() < p_resolved
    escalated = not resolved and rng.random() < (0.6 if legal else 0.45)
    mood = rng.gauss(0.45, 0.25) if resolved else rng.gauss(-0.3 if escalated else -0.1, 0.3)
    metadata: dict[str, Any] = {
        "channel": rng.choices(("web", "mobile_app", "email", "whatsapp"), (55, 25, 10, 10))[0],
        "locale": rng.choices(("en-GB", "en-US", "de-DE", "nl-NL"), (45, 25, 20, 10))[0],
        "latency_ms": int(rng.lognormvariate(7.0, 0.35)),
    }
    if legal:
        metadata["channel"] = rng.choice(("web", "slack"))
        metadata["jurisdiction"] = _jurisdiction(rng, case.answer)
    record = {
        "intent": topic.intent,
        "domain": topic.domain or ("legal" if legal else "support"),
        "input": question,
        "output": answer,
        "context": context,
        "confidence": confidence,
        "resolved": resolved,
        "escalated": escalated,
        "sentiment": round(_clip(mood, -1, 1), 2),
        "turns": _turns(context),
        "metadata": metadata,
    }
    # What users tell us afterwards. Some outcomes are known only later: the interaction
    # arrives without them and a `resolved` / `escalated` event sets them.
    if rng.random() < 0.15 and (resolved or escalated):
        record["resolved"] = record["escalated"] = None
        kind = FeedbackEvent.Kind.RESOLVED if resolved else FeedbackEvent.Kind.ESCALATED
        plan.feedback.append(PlannedFeedback(slug, external_id, kind, rng.randint(300, 3000)))
    if rng.random() < 0.2:
        happy = rng.random() < (0.85 if resolved else 0.2)
        kind = FeedbackEvent.Kind.THUMBS_UP if happy else FeedbackEvent.Kind.THUMBS_DOWN
        plan.feedback.append(PlannedFeedback(slug, external_id, kind, rng.randint(20, 900)))
    return record


# --- Recommendation records (product-recommender) ---------------------------------------------


def _recommendation(
    rng: random.Random, release: Release, external_id: str, plan: DemoPlan
) -> dict[str, Any]:
    surface = rng.choices(list(SURFACES), [s[1] for s in SURFACES.values()])[0]
    intent, _, request = SURFACES[surface]
    anchor = rng.choice(CATALOG)
    related = [p for p in CATALOG if p.category == anchor.category and p is not anchor]
    others = [p for p in CATALOG if p.category != anchor.category]
    confidence = round(_clip(rng.betavariate(release.alpha, release.beta), 0.02, 0.995), 3)
    picks = rng.sample(related, k=min(len(related), rng.choice((3, 4))))
    weak = confidence < 0.5 and rng.random() < 0.7
    if weak:  # the failure reviewers should catch: something that does not fit at all
        picks[rng.randrange(len(picks))] = rng.choice(others)
        spare = [p for p in related if p not in picks]
        fixed = [p if p.category == anchor.category else spare.pop(0) for p in picks]
        plan.fixes[external_id] = "\n".join(f"{r}. {p.line()}" for r, p in enumerate(fixed, 1))
    shopper = f"u-{rng.randint(10000, 99999)}"
    query = anchor.name.split(",")[0].lower()
    anchor_ref = f"{anchor.pid} “{anchor.name}”"
    context = [
        {"role": "user", "content": f"viewed {p.pid} {p.name}"}
        for p in rng.sample(related, k=rng.randint(0, 2))
    ]
    if surface == "search":
        context.insert(0, {"role": "user", "content": f"searched “{query}”"})
    record = {
        "intent": intent,
        "domain": "product",
        "input": f"Shopper {shopper} {request.format(anchor=anchor_ref, query=query)}. "
        f"Recommend {len(picks)} products.",
        "output": "\n".join(f"{rank}. {p.line()}" for rank, p in enumerate(picks, 1)),
        "context": context,
        "confidence": confidence,
        "resolved": None,
        "escalated": None,
        "sentiment": None,
        "turns": None,
        "metadata": {
            "surface": surface,
            "shopper": shopper,
            "anchor": anchor.pid,
            "model": "two-tower",
            "candidates": 200,
            "latency_ms": int(rng.lognormvariate(3.6, 0.4)),
        },
    }
    if rng.random() < 0.75:  # the slot was actually seen: one event per shown product
        for rank, product in enumerate(picks):
            fits = product.category == anchor.category
            p_click = release.ctr * (0.8**rank) * (1.0 if fits else 0.15)
            clicked = rng.random() < p_click
            kind = FeedbackEvent.Kind.CLICKED if clicked else FeedbackEvent.Kind.SKIPPED
            plan.feedback.append(
                PlannedFeedback(
                    "product-recommender", external_id, kind, rng.randint(3, 240), product.pid
                )
            )
    return record


# --- The plan ---------------------------------------------------------------------------------

# Early (record index 3, 10, 17, ...) so small demos have them too.
SPECIAL_AT = {3 + 7 * k: special for k, special in enumerate(SPECIALS)}
SPECIAL_SPACING = timedelta(minutes=29)  # the specials arrive over the last few hours


def demo_plan(*, n: int, seed: int, now: datetime) -> DemoPlan:
    """The demo's interaction records (ingest format) and the feedback to send after them."""
    plan = DemoPlan()
    names = release_names(now.astimezone(UTC).date())
    for i in range(n):
        # One generator per record: record i is the same whatever n is.
        rng = random.Random(f"coachdesk-demo:{seed}:{i}")
        special = SPECIAL_AT.get(i)
        slug = rng.choices(AGENT_SLUGS, TRAFFIC_SHARE)[0]
        if special:
            slug = special["agent"]
        recommender = slug == "product-recommender"
        external_id = f"demo-{seed}-{i:06d}"
        created_at, days_ago = _moment(rng, now, evening=recommender)
        if special:  # the newest interactions: still in the queue on the first run
            created_at = now - MIN_AGE - SPECIAL_SPACING * ((i - 3) // 7)
            days_ago = (now.astimezone(UTC).date() - created_at.astimezone(UTC).date()).days
        releases = RELEASES[slug]
        version = _release_index(rng, releases, days_ago)
        if recommender:
            record = _recommendation(rng, releases[version], external_id, plan)
        else:
            topics = LEGAL_TOPICS if slug == "legal-bot" else SUPPORT_TOPICS
            record = _chat(rng, slug, releases[version], topics, external_id, plan)
        if special:
            # Keep the generated outcome; drop feedback planned for the generated text.
            plan.feedback = [f for f in plan.feedback if f.external_id != external_id]
            plan.fixes.pop(external_id, None)
            metadata = {**record["metadata"], **special.get("metadata", {})}
            record.update({key: v for key, v in special.items() if key != "agent"})
            record["metadata"] = metadata
            if "context" in special and record["turns"] is not None:
                record["turns"] = _turns(special["context"])
        prefix = "s" if recommender else "c"
        plan.interactions.append(
            {
                "external_id": external_id,
                "agent": slug,
                "agent_version": names[slug][version],
                "conversation_id": f"{prefix}-{rng.getrandbits(40):010x}",
                **record,
                "created_at": iso_utc(created_at),
            }
        )
    return plan
