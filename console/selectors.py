"""Reads of the admin console: the queue browser, an item's page, reviewer pools, workload,
backlog, audit log.

Every function here is a fixed number of aggregate queries, whatever the data size.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import TypedDict

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import Left
from django.template.defaultfilters import floatformat, timesince_filter, timeuntil_filter
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from accounts.models import Role
from agents.models import Agent, Interaction
from core.db import replica_reads
from core.models import AuditEvent
from reviews import metrics
from reviews.deadlines import relative, sla_local_text
from reviews.models import Review, ReviewItem

Status = ReviewItem.Status
COUNT_CAP = 10_000


@dataclass(frozen=True)
class QueueFilter:
    agent_id: int | None = None
    domain: str = ""
    reason: str = ""
    status: str = ""  # "" = open (pending / needs second review / claimed)
    min_age_hours: float | None = None
    max_age_hours: float | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    assigned: str = ""  # "", "unassigned", "assigned", or a username
    sort: str = "priority"


SORTS = {
    "priority": ("-priority", "confidence", "source_created_at", "pk"),
    "oldest": ("source_created_at", "pk"),
    "newest": ("-source_created_at", "-pk"),
    "confidence": ("confidence", "pk"),
    # Items with a deadline only (see _matching), soonest due first: read from the partial
    # reviewitem_due_open index, which holds just those.
    "due": ("due_at", "pk"),
}


def queue_browse(f: QueueFilter | None) -> QuerySet[ReviewItem]:
    """Review items matching the admin's filters, in the chosen order, with their agent and
    users joined in (one query per page; the admin API's list, the browser reads
    `browser_rows`). `None` (filters that could not be read) matches nothing: dropping a
    bad filter would widen the selection."""
    if f is None:
        return ReviewItem.objects.none()
    return (
        _matching(f)
        .select_related("agent", "assigned_to", "claimed_by")
        .only(
            "pk",
            "interaction",  # the key only
            "status",
            "reason",
            "priority",
            "domain",
            "confidence",
            "source_created_at",
            "required_reviews",
            "lease_expires_at",
            "due_at",
            "agent__slug",
            "agent__name",
            "assigned_to__username",
            "claimed_by__username",
        )
    )


def _matching(f: QueueFilter) -> QuerySet[ReviewItem]:
    """The items matching `f`, in its order. Open and claimed items are read in that order
    from an index (reviewitem_browse_order for "priority", reviewitem_console_* for the
    others), so a page stops after its rows instead of sorting every open item."""
    qs = ReviewItem.objects.all()
    if f.status:
        qs = qs.filter(status=f.status)
    else:
        qs = qs.filter(status__in=(Status.PENDING, Status.NEEDS_SECOND_REVIEW, Status.CLAIMED))
    if f.agent_id:
        qs = qs.filter(agent_id=f.agent_id)
    if f.domain:
        qs = qs.filter(domain=f.domain)
    if f.reason:
        qs = qs.filter(reason=f.reason)
    now = timezone.now()
    if f.min_age_hours is not None:
        qs = qs.filter(source_created_at__lte=now - timedelta(hours=f.min_age_hours))
    if f.max_age_hours is not None:
        qs = qs.filter(source_created_at__gte=now - timedelta(hours=f.max_age_hours))
    if f.min_confidence is not None:
        qs = qs.filter(confidence__gte=f.min_confidence)
    if f.max_confidence is not None:
        qs = qs.filter(confidence__lte=f.max_confidence)
    if f.sort == "due":
        qs = qs.filter(due_at__isnull=False)
    if f.assigned == "unassigned":
        qs = qs.filter(assigned_to__isnull=True)
    elif f.assigned == "assigned":
        qs = qs.filter(assigned_to__isnull=False)
    elif f.assigned:
        qs = qs.filter(assigned_to__username=f.assigned)
    return qs.order_by(*SORTS.get(f.sort, SORTS["priority"]))


# What a row of the browser shows of the user's question: a prefix, never the whole text
# (an input may be megabytes); the cell truncates it further and carries it as its title.
PREVIEW_CHARS = 200
BROWSER_COLUMNS = (
    "pk",
    "interaction_id",
    "status",
    "reason",
    "priority",
    "domain",
    "confidence",
    "source_created_at",
    "required_reviews",
    "lease_expires_at",
    "due_at",
    "agent__slug",
    "assigned_to__username",
    "claimed_by__username",
)


def browser_rows(f: QueueFilter | None) -> QuerySet[ReviewItem]:
    """The items of `queue_browse` with no columns chosen, for paginating (the count joins
    nothing); `browser_page` reads a page of it. `None` matches nothing, as there."""
    return ReviewItem.objects.none() if f is None else _matching(f)


_URL_PLACEHOLDER = 987654321  # an id, to reverse an item's URL once per page


class BrowserRow(TypedDict):
    """A row of the queue browser, every cell worked out (the template only places them)."""

    pk: str
    url: str
    agent: str
    domain: str
    preview: str
    reason: str
    status: str
    status_label: str
    four_eyes: bool
    priority: str
    confidence: str
    age: str
    assigned: str
    claimed_by: str | None
    lease: str
    due: str  # the due time (SLA time zone), "" without a deadline
    due_relative: str  # "in 2 h", "3 h overdue"
    overdue: bool


def browser_page(items: QuerySet[ReviewItem]) -> list[BrowserRow]:
    """A page (a slice) of `browser_rows` as rows to show: the values of BROWSER_COLUMNS
    (one query; values, not models: four model instances per row cost more than the SQL),
    then the start of each item's question (one query, for the page's rows only).

    The cells are what the template filters made of them (`floatformat:2`, `timesince`,
    `timeuntil`, `capfirst`, the choice labels), worked out here once per row: per-cell
    filters, lookups and a `{% url %}` per row were most of the page's time. Text is left
    unescaped here: the template escapes it (agent text is untrusted)."""
    values = list(items.values(*BROWSER_COLUMNS))
    previews = dict(
        Interaction.objects.filter(pk__in=[v["interaction_id"] for v in values])
        .annotate(preview=Left("input", PREVIEW_CHARS))
        .values_list("pk", "preview")
    )
    # One reverse per page: the item URL with a placeholder for the id.
    head, _, tail = reverse("console:item", args=[_URL_PLACEHOLDER]).partition(
        str(_URL_PLACEHOLDER)
    )
    reasons = dict(ReviewItem.Reason.choices)
    statuses = dict(ReviewItem.Status.choices)
    now = timezone.now()
    rows = []
    for v in values:
        pk, status, claimed_by = str(v["pk"]), v["status"], v["claimed_by__username"]
        rows.append(
            BrowserRow(
                pk=pk,
                url=f"{head}{pk}{tail}",
                agent=v["agent__slug"],
                domain=v["domain"],
                preview=previews.get(v["interaction_id"], ""),
                reason=capfirst(str(reasons.get(v["reason"], v["reason"]))),
                status=status,
                status_label=str(statuses.get(status, status)),
                four_eyes=v["required_reviews"] == 2,
                priority=str(v["priority"]),
                confidence=floatformat(v["confidence"], 2),
                age=timesince_filter(v["source_created_at"], now),
                assigned=v["assigned_to__username"] or "",
                claimed_by=claimed_by,
                lease=timeuntil_filter(v["lease_expires_at"], now) if claimed_by else "",
                **_due_cells(v["due_at"], now),
            )
        )
    return rows


def _due_cells(due_at: datetime | None, now: datetime) -> dict:
    if due_at is None:
        return {"due": "", "due_relative": "", "overdue": False}
    return {
        "due": sla_local_text(due_at),
        "due_relative": relative(due_at - now),
        "overdue": due_at <= now,
    }


def bulk_selection(*, ids: list[int] | None, f: QueueFilter | None) -> list[int]:
    """The sorted ids of the items a bulk action would act on: the given `ids` that exist,
    or (when `ids` is None) every item matching the filter `f`."""
    qs = ReviewItem.objects.filter(pk__in=ids) if ids is not None else queue_browse(f)
    return sorted(qs.order_by().values_list("pk", flat=True))


def capped_count(qs: QuerySet, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """(count, exact): counts at most `cap` rows, so a page over a million rows stays fast.
    Counted on the read replica when there is one (a count may lag a moment)."""
    with replica_reads():
        n = qs.order_by()[: cap + 1].count()
    return min(n, cap), n <= cap


def backlog_by_agent() -> list[dict]:
    """Open items per agent (reviews/metrics.py: undecided, disputes included) and when the
    oldest was queued, oldest first. One grouped query, served by the (agent, status,
    created_at) index."""
    rows = (
        ReviewItem.objects.filter(metrics.backlog_q())
        .values("agent__slug", "agent__name")
        .annotate(
            open=Count("pk"),
            claimed=Count("pk", filter=Q(status=Status.CLAIMED)),
            second=Count("pk", filter=Q(status=Status.NEEDS_SECOND_REVIEW)),
            disputed=Count("pk", filter=Q(status=Status.DISPUTED)),
            oldest=Min(metrics.QUEUED_AT),
        )
        .order_by("oldest")
    )
    return list(rows)


WORKLOAD_SORTS = ("username", "open", "today", "week", "median_seconds", "agreement")


def reviewer_workload(*, sort: str = "username", days: int = 7) -> list[dict]:
    """Per reviewer: open assigned items, items reviewed today and over `days` days, median
    seconds per decision, the verdict mix, and agreement with the other reviewer on
    four-eyes items. "Open" and "reviewed today" as defined in reviews/metrics.py (the queue
    page and the KPIs count the same). Four queries."""
    now = timezone.now()
    since = now - timedelta(days=days)
    users = list(
        get_user_model()
        .objects.filter(Q(groups__name="reviewer") | Q(is_superuser=True, reviews__isnull=False))
        .distinct()
        .select_related("reviewer_profile")
        .annotate(
            open=Count(
                "assigned_items", filter=metrics.backlog_q("assigned_items__"), distinct=True
            ),
        )
    )
    decided = (
        Review.objects.filter(created_at__gte=min(since, metrics.day_start(now)))
        .values("reviewer_id")
        .annotate(
            week=Count("pk", filter=metrics.reviewed_q() & Q(created_at__gte=since)),
            today=Count("pk", filter=metrics.reviewed_today_q(now)),
            **{
                v: Count("pk", filter=Q(verdict=v, created_at__gte=since))
                for v in Review.Verdict.values
            },
        )
    )
    by_user = {row["reviewer_id"]: row for row in decided}
    medians = _median_seconds(since)
    agreement = _agreement(since)
    rows = []
    for user in users:
        d = by_user.get(user.pk, {})
        week = d.get("week", 0)
        rows.append(
            {
                "user": user,
                "username": user.username,
                "domains": getattr(getattr(user, "reviewer_profile", None), "domains", []),
                # Without a profile (a superuser who reviewed): in no pool, not "away".
                "pooled": hasattr(user, "reviewer_profile"),
                "active": getattr(getattr(user, "reviewer_profile", None), "active", True),
                "open": user.open,
                "today": d.get("today", 0),
                "week": week,
                "median_seconds": medians.get(user.pk),
                "mix": {
                    v: (d.get(v, 0) / week if week else 0.0)
                    for v in ("approve", "correct", "reject")
                },
                "agreement": agreement.get(user.pk, (None, 0))[0],
                "agreement_n": agreement.get(user.pk, (None, 0))[1],
            }
        )
    key = sort.lstrip("-") if sort.lstrip("-") in WORKLOAD_SORTS else "username"
    rows.sort(
        key=lambda r: (r[key] is None, r[key] if r[key] is not None else 0),
        reverse=sort.startswith("-"),
    )
    return rows


def _median_seconds(since: datetime) -> dict[int, float]:
    reviews = Review.objects.filter(created_at__gte=since, seconds_spent__isnull=False).exclude(
        verdict="skip"
    )
    if connection.vendor == "postgresql":
        sql, params = reviews.values("reviewer_id", "seconds_spent").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT reviewer_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_spent) "
                f"FROM ({sql}) r GROUP BY reviewer_id",
                params,
            )
            return {pk: float(m) for pk, m in cursor.fetchall()}
    values: dict[int, list[int]] = {}
    for pk, seconds in reviews.values_list("reviewer_id", "seconds_spent"):
        values.setdefault(pk, []).append(seconds)
    return {pk: float(median(v)) for pk, v in values.items()}


def _agreement(since: datetime) -> dict[int, tuple[float, int]]:
    """Share of a reviewer's four-eyes reviews whose verdict matched the other reviewer's."""
    deciding = ("approve", "correct", "reject")
    pairs = Review.objects.filter(
        created_at__gte=since, verdict__in=deciding, is_adjudication=False, item__required_reviews=2
    ).values_list("item_id", "reviewer_id", "verdict")
    by_item: dict[int, list[tuple[int, str]]] = {}
    for item_id, reviewer_id, verdict in pairs:
        by_item.setdefault(item_id, []).append((reviewer_id, verdict))
    tally: dict[int, list[int]] = {}
    for reviews in by_item.values():
        if len(reviews) != 2:
            continue
        (a, va), (b, vb) = reviews
        for who in (a, b):
            t = tally.setdefault(who, [0, 0])
            t[0] += va == vb
            t[1] += 1
    return {pk: (agree / n, n) for pk, (agree, n) in tally.items()}


def audit_log(
    *, actor: str = "", item_id: int | None = None, action: str = "", since=None, until=None
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("actor")
    if actor:
        qs = qs.filter(actor__username=actor)
    if item_id:
        qs = qs.filter(target_type="review_item", target_id=item_id)
    if action:
        qs = qs.filter(action=action)
    if since:
        qs = qs.filter(created_at__date__gte=since)
    if until:
        qs = qs.filter(created_at__date__lte=until)
    return qs.order_by("-created_at", "-pk")


# --- an item's page ---------------------------------------------------------------------------

ITEM_TRAIL = 100  # events on an item's page; the audit log (filtered by item) has them all


def item_audit_trail(item_id: int, *, limit: int = ITEM_TRAIL) -> tuple[list[AuditEvent], bool]:
    """The latest `limit` audit events of an item, oldest first, and whether there are older
    ones. One query, served by the (target_type, target_id) index."""
    events = list(audit_log(item_id=item_id)[: limit + 1])
    return events[:limit][::-1], len(events) > limit


# --- reviewer pools ---------------------------------------------------------------------------
# A pool is a review domain and the reviewers whose profile lists it (`ReviewerProfile.domains`):
# the claim hands them the domain's unassigned items, `items_spread` assigns them its work.


@dataclass
class Pool:
    domain: str
    members: list = field(default_factory=list)  # users, with `reviewer_profile` loaded
    agents: list[str] = field(default_factory=list)  # slugs of agents routing items here
    waiting: int = 0  # items waiting to be claimed (pending or awaiting a second review)

    @property
    def active(self) -> int:
        return sum(1 for u in self.members if u.reviewer_profile.active)


def reviewers() -> list:
    """Users of the reviewer group, by username, with their profiles (left-joined: a
    reviewer without a profile has `reviewer_profile` missing). One query."""
    return list(
        get_user_model()
        .objects.filter(groups__name=Role.REVIEWER)
        .select_related("reviewer_profile")
        .order_by("username")
    )


def profile_domains(user) -> list[str]:
    profile = getattr(user, "reviewer_profile", None)
    return list(profile.domains or []) if profile is not None else []


def pools(*, people: list | None = None) -> list[Pool]:
    """Every domain someone works on or routes to, by name: the domains of the reviewers'
    profiles, the agents' domains and "always review" domains, and the domains of items
    waiting to be claimed (counted by the partial claim index). Three queries, two when
    `people` (the result of `reviewers()`) is given."""
    people = reviewers() if people is None else people
    found: dict[str, Pool] = {}

    def pool(domain: str) -> Pool:
        return found.setdefault(domain, Pool(domain=domain))

    for user in people:
        for domain in profile_domains(user):
            if isinstance(domain, str) and domain:
                pool(domain).members.append(user)
    for slug, domain, always in Agent.objects.order_by("slug").values_list(
        "slug", "domain", "review_domains"
    ):
        for name in {domain, *(always if isinstance(always, list) else [])}:
            if isinstance(name, str) and name:
                pool(name).agents.append(slug)
    waiting = (
        ReviewItem.objects.filter(status__in=ReviewItem.OPEN_STATUSES)
        .order_by()
        .values_list("domain")
        .annotate(n=Count("pk"))
    )
    for domain, n in waiting:
        if domain:
            pool(domain).waiting = n
    return [found[name] for name in sorted(found, key=str.casefold)]


def pool_detail(domain: str) -> tuple[Pool, list]:
    """A domain's pool (empty when nobody works on it yet) and the reviewers who may be
    added: active accounts not in it. Three queries."""
    people = reviewers()
    pool = next((p for p in pools(people=people) if p.domain == domain), Pool(domain=domain))
    members = {u.pk for u in pool.members}
    return pool, [u for u in people if u.pk not in members and u.is_active]


def known_domains() -> list[str]:
    """The names of every pool (see `pools`), for choosing domains."""
    return [p.domain for p in pools()]


def pool_assigned_open(*, domain: str, reviewer) -> int:
    """Open items of `domain` assigned to `reviewer` (they stay assigned when the reviewer
    leaves the pool). One count over the (assigned_to, status) index."""
    return ReviewItem.objects.filter(
        metrics.backlog_q(), assigned_to=reviewer, domain=domain
    ).count()
