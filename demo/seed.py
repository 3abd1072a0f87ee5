"""The demo behind `manage.py seed_demo`: the database writes. The three agents with their
review policies (`demo.content`), the demo logins (reviewers from `demo.reviewing`), and a
month of believable traffic and feedback (`demo.plan`) with the reviews, adjudications,
training pairs, batches and KPIs that followed from it (`demo.history`).

Everything enters through the real paths: interactions and feedback through ingest
(`interactions_ingest` / `feedback_ingest`), so the demo is validated and routed to review
exactly like production traffic; decisions through `reviews.services`, batches through
`retraining.services`, KPIs through `kpis.services`.

Seeding twice stores nothing twice: external ids depend only on (seed, i), and feedback
times are the planned offsets from the *stored* interaction time, so the feedback of a second
run has the same dedupe keys as the first (see `FeedbackEvent.make_dedupe_key`, which hashes
`created_at` as sent). The review history is replayed only into a demo whose interactions
this run created (a decision must come after the item arrived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from accounts.models import ReviewerProfile, Role
from agents.models import Agent, FeedbackEvent, Interaction
from core.audit import audit_record
from demo.content import AGENT_POLICIES
from demo.history import history_replay
from demo.plan import demo_plan
from demo.reviewing import PERSONAS
from evals import selectors as evals_selectors
from evals.models import Comparison, RegressionRun
from ingest.services import IngestResult
from kpis.models import KpiRun, KpiSnapshot
from retraining.models import ExportBatch, TrainingPair
from reviews.models import Deadline, Review, ReviewItem

DEMO_PASSWORD = "coachdesk-demo"  # noqa: S105 - published in the README and by `make run`
DEFAULT_INTERACTIONS = 3000
DEFAULT_SEED = 20261120


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
    capacity: int = 200  # the profile's daily capacity
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
    *(
        DemoUser(p.username, p.first_name, (Role.REVIEWER,), p.domains, p.capacity)
        for p in PERSONAS
    ),
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
                user=user,
                defaults={"domains": list(spec.domains)},
                create_defaults={"domains": list(spec.domains), "daily_capacity": spec.capacity},
            )
        out.append((spec, created))
    return out


# --- Seeding ----------------------------------------------------------------------------------


class DemoDataError(Exception):
    """The plan produced records the ingest path rejects: a bug in `demo.plan` or its content."""


@dataclass
class DemoHistory:
    """What the demo's review work amounts to now (whoever did it)."""

    reviewers: int = 0
    reviews: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)  # final verdicts of decided items
    four_eyes_done: int = 0
    adjudicated: int = 0
    disputed: int = 0  # waiting for a lead
    open_by_domain: dict[str, int] = field(default_factory=dict)
    pairs: int = 0
    batches: list[ExportBatch] = field(default_factory=list)
    kpi_rows: int = 0
    kpi_run: KpiRun | None = None
    scored_reviews: int = 0  # reviews with rubric scores
    comparisons: dict[str, int] = field(default_factory=dict)  # by status
    regression: list[str] = field(default_factory=list)  # each run's sentence
    redacted: dict[str, int] = field(default_factory=dict)  # placeholders per kind
    due_open: int = 0  # open items with a review deadline
    overdue: int = 0  # of which past due


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
    history: DemoHistory = field(default_factory=DemoHistory)
    replayed: bool = False  # this run replayed the review history


def demo_needed() -> bool:
    """`seed_demo --if-empty` seeds only a database without any interaction."""
    return not Interaction.objects.exists()


def _check(result: IngestResult, what: str) -> None:
    if result.rejected:
        shown = "; ".join(str(e) for e in result.errors[:5])
        raise DemoDataError(f"{result.rejected} demo {what} were rejected: {shown}")


def history_summary(agents: list[Agent]) -> DemoHistory:
    items = ReviewItem.objects.filter(agent__in=agents)
    reviews = Review.objects.filter(item__agent__in=agents)
    done = items.filter(status=ReviewItem.Status.DONE)
    # Four-eyes items decided by two reviewers (not by a lead after a dispute).
    pairs_of_reviews = Q(reviews__is_adjudication=False) & ~Q(reviews__verdict="skip")
    four_eyes = (
        done.filter(required_reviews=2)
        .exclude(reviews__is_adjudication=True)
        .annotate(n=Count("reviews", filter=pairs_of_reviews))
    )
    return DemoHistory(
        reviewers=reviews.filter(is_adjudication=False).values("reviewer").distinct().count(),
        reviews=reviews.count(),
        verdicts=dict(done.values_list("final_verdict").annotate(n=Count("pk")).order_by("-n")),
        four_eyes_done=four_eyes.filter(n__gte=2).count(),
        adjudicated=reviews.filter(is_adjudication=True).count(),
        disputed=items.filter(status=ReviewItem.Status.DISPUTED).count(),
        open_by_domain=dict(
            items.filter(status__in=ReviewItem.OPEN_STATUSES)
            .values_list("domain")
            .annotate(n=Count("pk"))
            .order_by("domain")
        ),
        pairs=TrainingPair.objects.filter(agent__in=agents).count(),
        batches=list(ExportBatch.objects.filter(agent__in=agents).select_related("agent")),
        kpi_rows=KpiSnapshot.objects.filter(agent__in=agents).count(),
        scored_reviews=reviews.filter(scores__isnull=False).distinct().count(),
        comparisons=dict(
            Comparison.objects.filter(agent__in=agents)
            .values_list("status")
            .annotate(n=Count("pk"))
            .order_by("status")
        ),
        regression=[
            run["sentence"]
            for run in evals_selectors.runs_summaries(
                list(RegressionRun.objects.filter(agent__in=agents).order_by("pk"))
            )
        ],
        redacted=_redacted(agents),
        **_deadlines(items),
    )


def _redacted(agents: list[Agent]) -> dict[str, int]:
    """Placeholders per kind in the demo's interactions (`Interaction.redactions`)."""
    counts: dict[str, int] = {}
    rows = Interaction.objects.filter(agent__in=agents).exclude(redactions={})
    for redactions in rows.values_list("redactions", flat=True):
        for kind, n in redactions.items():
            counts[kind] = counts.get(kind, 0) + n
    return dict(sorted(counts.items()))


def _deadlines(items) -> dict[str, int]:
    open_due = items.filter(status__in=ReviewItem.OPEN_STATUSES, due_at__isnull=False)
    return open_due.aggregate(
        due_open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lte=timezone.now()))
    )


@transaction.atomic
def demo_seed(
    *,
    interactions: int = DEFAULT_INTERACTIONS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
) -> DemoResult:
    """Creates (or tops up) the demo: agents with their policy first, so routing applies it,
    then the users, then the month day by day: the traffic through the ingest path and, for
    a fresh demo, the reviews, adjudications and batches of each day (`demo.history`); the
    KPIs are recomputed at the end.

    One transaction: a failed seed leaves nothing behind, so `--if-empty` tries again on the
    next start. Raises DemoDataError when ingest rejects a generated record.
    """
    now = now or timezone.now()
    agents = {agent.slug: agent for agent in agents_ensure()}
    # Review deadlines (issue 16): legal answers within 4 working hours, set before the
    # traffic is routed, so the queue, review screen and console show due times.
    Deadline.objects.get_or_create(
        agent=agents["legal-bot"], domain="", defaults={"hours": 4, "working_hours": True}
    )
    users = users_ensure()
    plan = demo_plan(n=interactions, seed=seed, now=now)
    fresh = not Interaction.objects.filter(agent__in=agents.values()).exists()
    replay = history_replay(plan=plan, agents=agents.values(), seed=seed, now=now, reviews=fresh)
    _check(replay.interactions, "interactions")
    _check(replay.feedback, "feedback events")

    span = Interaction.objects.filter(agent__in=agents.values()).aggregate(
        first=Min("created_at"), last=Max("created_at")
    )
    queue = ReviewItem.objects.filter(agent__in=agents.values())
    events = FeedbackEvent.objects.filter(agent__in=agents.values())
    history = history_summary(list(agents.values()))
    history.kpi_run = replay.kpi_run
    return DemoResult(
        agents=list(agents.values()),
        users=users,
        interactions=replay.interactions,
        feedback=replay.feedback,
        first_day=span["first"].date() if span["first"] else None,
        last_day=span["last"].date() if span["last"] else None,
        queue_by_reason=dict(queue.values_list("reason").annotate(n=Count("id")).order_by("-n")),
        feedback_by_kind=dict(events.values_list("kind").annotate(n=Count("id")).order_by("-n")),
        history=history,
        replayed=replay.reviewed,
    )
