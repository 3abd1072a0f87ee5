"""The demo behind `manage.py seed_demo`: the database writes. The three agents with their
review policies (`demo.content`), the demo logins, and a month of believable traffic and
feedback (`demo.plan`).

Everything enters through the ingest path (`interactions_ingest` / `feedback_ingest`), so the
demo is validated and routed to review exactly like production traffic.

Seeding twice stores nothing twice: external ids depend only on (seed, i), and feedback
times are the planned offsets from the *stored* interaction time, so the feedback of a second
run has the same dedupe keys as the first (see `FeedbackEvent.make_dedupe_key`, which hashes
`created_at` as sent).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from accounts.models import ReviewerProfile, Role
from agents.models import Agent, FeedbackEvent, Interaction
from core.audit import audit_record
from demo.content import AGENT_POLICIES
from demo.plan import DemoPlan, demo_plan, iso_utc
from ingest.services import IngestResult, feedback_ingest, interactions_ingest
from reviews.models import ReviewItem

DEMO_PASSWORD = "coachdesk-demo"  # noqa: S105 - published in the README and by `make run`
DEFAULT_INTERACTIONS = 3000
DEFAULT_SEED = 20261120
SOURCE = "demo"


# --- Agents (their policies are data in demo.content) -----------------------------------------


def agents_ensure() -> list[Agent]:
    """Creates the demo agents, or sets their policy back to the demo's; audits changes."""
    agents = []
    for policy in AGENT_POLICIES:
        fields = {k: v for k, v in policy.items() if k != "slug"}
        agent = Agent.objects.filter(slug=policy["slug"]).first()
        if agent is None:
            agent = Agent.objects.create(slug=policy["slug"], **fields)
            audit_record(
                action="agent.created",
                target_type="agent",
                target_id=agent.pk,
                after={"slug": agent.slug, "via": "seed_demo", **fields},
            )
        else:
            before = {k: getattr(agent, k) for k in fields}
            changed = {k: v for k, v in fields.items() if before[k] != v}
            if changed:
                Agent.objects.filter(pk=agent.pk).update(**changed)
                audit_record(
                    action="agent.updated",
                    target_type="agent",
                    target_id=agent.pk,
                    before={k: before[k] for k in changed},
                    after={**changed, "via": "seed_demo"},
                )
                agent.refresh_from_db()
        agents.append(agent)
    return agents


# --- Users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    roles: tuple[str, ...]
    domains: tuple[str, ...] | None = None  # a ReviewerProfile when set
    staff: bool = False
    superuser: bool = False
    service: bool = False  # an API-only account: no usable password

    def describe(self) -> str:
        what = ", ".join(self.roles)
        if self.superuser:
            what += ", superuser"
        if self.domains:
            what += ": " + ", ".join(self.domains)
        return f"{self.username} ({what})"


DEMO_USERS = (
    DemoUser("admin", "Ada", (Role.ADMIN,), staff=True, superuser=True),
    DemoUser("lena", "Lena", (Role.REVIEWER,), domains=("legal",)),
    DemoUser("sam", "Sam", (Role.REVIEWER,), domains=("support", "product")),
    DemoUser("mia", "Mia", (Role.ML,)),
    DemoUser("pipeline", "Agent pipeline", (Role.AGENT,), service=True),
)


def users_ensure() -> list[tuple[DemoUser, bool]]:
    """Creates the demo users with their roles; returns (user, created) pairs.

    Existing users keep their password (someone may have changed it) but get their demo
    roles back. All new users share one hash of the demo password: PBKDF2 is deliberately
    slow (~0.5 s) and hashing once keeps the seed fast.
    """
    User = get_user_model()
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in Role.values}
    encoded: str | None = None
    out = []
    for spec in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=spec.username,
            defaults={"first_name": spec.first_name, "email": f"{spec.username}@example.com"},
        )
        if created:
            if spec.service:
                user.set_unusable_password()
            else:
                encoded = encoded or make_password(DEMO_PASSWORD)
                user.password = encoded
        user.is_staff = user.is_staff or spec.staff
        user.is_superuser = user.is_superuser or spec.superuser
        user.save()
        user.groups.add(*(groups[role] for role in spec.roles))
        if spec.domains is not None:
            ReviewerProfile.objects.update_or_create(
                user=user, defaults={"domains": list(spec.domains)}
            )
        out.append((spec, created))
    return out


# --- Seeding ----------------------------------------------------------------------------------


class DemoDataError(Exception):
    """The plan produced records the ingest path rejects: a bug in `demo.plan` or its content."""


@dataclass
class DemoResult:
    agents: list[Agent]
    users: list[tuple[DemoUser, bool]]
    interactions: IngestResult
    feedback: IngestResult
    first_day: date | None
    last_day: date | None
    queue_by_reason: dict[str, int]
    feedback_by_kind: dict[str, int]


def demo_needed() -> bool:
    """`seed_demo --if-empty` seeds only a database without any interaction."""
    return not Interaction.objects.exists()


def _feedback_records(plan: DemoPlan, agents: dict[str, Agent]) -> Iterator[dict[str, Any]]:
    """Feedback lines timed from the stored interactions (see the module docstring)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in plan.feedback:
        wanted[event.agent].add(event.external_id)
    stored: dict[tuple[str, str], datetime] = {}
    for slug, external_ids in wanted.items():
        ids = sorted(external_ids)
        for start in range(0, len(ids), 2000):  # stay under SQLite's variable limit
            rows = Interaction.objects.filter(
                agent=agents[slug], external_id__in=ids[start : start + 2000]
            ).values_list("external_id", "created_at")
            stored.update(((slug, external_id), at) for external_id, at in rows)
    for event in plan.feedback:
        at = stored[(event.agent, event.external_id)]
        line: dict[str, Any] = {
            "agent": event.agent,
            "external_id": event.external_id,
            "kind": str(event.kind),
            "created_at": iso_utc(at + timedelta(seconds=event.delay_s)),
        }
        if event.item_ref:
            line["item_ref"] = event.item_ref
        yield line


def _check(result: IngestResult, what: str) -> None:
    if result.rejected:
        shown = "; ".join(str(e) for e in result.errors[:5])
        raise DemoDataError(f"{result.rejected} demo {what} were rejected: {shown}")


@transaction.atomic
def demo_seed(
    *,
    interactions: int = DEFAULT_INTERACTIONS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
) -> DemoResult:
    """Creates (or tops up) the demo: agents with their policy first, so routing applies it,
    then the users, the interactions and their feedback, all through the ingest path.

    One transaction: a failed seed leaves nothing behind, so `--if-empty` tries again on the
    next start. Raises DemoDataError when ingest rejects a generated record.
    """
    now = now or timezone.now()
    agents = {agent.slug: agent for agent in agents_ensure()}
    users = users_ensure()
    plan = demo_plan(n=interactions, seed=seed, now=now)
    ingested = interactions_ingest(records=enumerate(plan.interactions), source=SOURCE)
    _check(ingested, "interactions")
    feedback = feedback_ingest(records=enumerate(_feedback_records(plan, agents)), source=SOURCE)
    _check(feedback, "feedback events")

    span = Interaction.objects.filter(agent__in=agents.values()).aggregate(
        first=Min("created_at"), last=Max("created_at")
    )
    queue = ReviewItem.objects.filter(agent__in=agents.values())
    events = FeedbackEvent.objects.filter(agent__in=agents.values())
    return DemoResult(
        agents=list(agents.values()),
        users=users,
        interactions=ingested,
        feedback=feedback,
        first_day=span["first"].date() if span["first"] else None,
        last_day=span["last"].date() if span["last"] else None,
        queue_by_reason=dict(queue.values_list("reason").annotate(n=Count("id")).order_by("-n")),
        feedback_by_kind=dict(events.values_list("kind").annotate(n=Count("id")).order_by("-n")),
    )
