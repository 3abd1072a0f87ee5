"""Writes of the admin console: assigning work, spreading it over a pool, releasing stuck
claims, changing priority; pool membership, reviewer settings and agent policies. Every
change is audited (one AuditEvent per item for the bulk actions).

Assignment is not a status transition: it only says who should take an item next (their
claim takes assigned items first, others never see them). Releasing a claim is a transition
and goes through `services.item_release`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import ReviewerProfile, Role
from agents.models import Agent
from agents.redaction import policy_problems as redaction_policy_problems
from core.audit import audit_event, audit_record, audit_records
from kpis.definitions import thresholds_validate
from reviews import selectors, services
from reviews.models import Review, ReviewItem

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = ReviewItem.Status
ASSIGNABLE = (Status.PENDING, Status.NEEDS_SECOND_REVIEW, Status.CLAIMED)
MAX_PRIORITY = 100


@dataclass
class BulkResult:
    changed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    def message(self, verb: str) -> str:
        text = f"{verb} {self.changed} item{'s' if self.changed != 1 else ''}."
        if self.skipped:
            text += " Skipped: " + ", ".join(f"{n} {why}" for why, n in self.skipped.items()) + "."
        return text


def _audit(actor, action: str, rows: Iterable[tuple[int, dict, dict]]) -> None:
    audit_records(
        audit_event(
            actor=actor,
            action=action,
            target_type="review_item",
            target_id=pk,
            before=before,
            after=after,
        )
        for pk, before, after in rows
    )


@transaction.atomic
def items_assign(*, items: QuerySet[ReviewItem], reviewer: User, actor: User | None) -> BulkResult:
    """Assigns the open items of `items` to `reviewer`.

    Skips (and counts) items that are decided or disputed, outside the reviewer's domains,
    or already reviewed by them (the second review of a four-eyes item must be someone else).
    Two statements whatever the size: one UPDATE, one bulk insert of audit events.
    """
    result = BulkResult()
    domains = selectors.reviewer_domains(reviewer)
    rows = list(items.values_list("pk", "status", "domain", "assigned_to_id"))
    open_rows = [r for r in rows if r[1] in ASSIGNABLE]
    result.skip("not open", len(rows) - len(open_rows))
    in_domain = [r for r in open_rows if r[2] in domains]
    result.skip("outside the reviewer's domains", len(open_rows) - len(in_domain))
    reviewed = set(
        Review.objects.filter(reviewer=reviewer, item_id__in=[r[0] for r in in_domain]).values_list(
            "item_id", flat=True
        )
    )
    result.skip("already reviewed by them", len(reviewed))
    targets = [r for r in in_domain if r[0] not in reviewed and r[3] != reviewer.pk]
    result.skip("already assigned to them", len(in_domain) - len(reviewed) - len(targets))
    ids = [r[0] for r in targets]
    result.changed = ReviewItem.objects.filter(pk__in=ids, status__in=ASSIGNABLE).update(
        assigned_to=reviewer, updated_at=timezone.now()
    )
    _audit(
        actor,
        "item.assigned",
        ((pk, {"assigned_to": was}, {"assigned_to": reviewer.pk}) for pk, _, _, was in targets),
    )
    return result


@transaction.atomic
def items_unassign(*, items: QuerySet[ReviewItem], actor: User | None) -> BulkResult:
    result = BulkResult()
    rows = list(items.filter(assigned_to__isnull=False).values_list("pk", "assigned_to_id"))
    result.changed = ReviewItem.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        assigned_to=None, updated_at=timezone.now()
    )
    _audit(
        actor,
        "item.unassigned",
        ((pk, {"assigned_to": was}, {"assigned_to": None}) for pk, was in rows),
    )
    return result


@transaction.atomic
def items_set_priority(
    *, items: QuerySet[ReviewItem], priority: int, actor: User | None
) -> BulkResult:
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise services.InvalidDecision(
            {"priority": f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}"}
        )
    result = BulkResult()
    rows = list(items.exclude(priority=priority).values_list("pk", "priority"))
    result.changed = ReviewItem.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        priority=priority, updated_at=timezone.now()
    )
    _audit(
        actor,
        "item.priority",
        ((pk, {"priority": was}, {"priority": priority}) for pk, was in rows),
    )
    return result


def items_release(*, items: QuerySet[ReviewItem], actor: User | None) -> BulkResult:
    """Ends the claims of the claimed items among `items` (stuck claims), each by a
    compare-and-swap transition; an item decided in the meantime is skipped."""
    result = BulkResult()
    for item in items.filter(status=Status.CLAIMED):
        try:
            services.item_release(item=item, actor=actor)
        except services.Conflict:
            result.skip("changed in the meantime")
            continue
        result.changed += 1
    return result


def pool_capacity(*, reviewers: Iterable) -> dict[int, int]:
    """Items each reviewer can still take today: daily capacity minus open assigned items
    minus decisions made today (never below zero). Two aggregate queries."""
    ids = [r.pk for r in reviewers]
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    profiles = dict(
        ReviewerProfile.objects.filter(user_id__in=ids).values_list("user_id", "daily_capacity")
    )
    load = {
        row["pk"]: row["open"] + row["today"]
        for row in get_user_model()
        .objects.filter(pk__in=ids)
        .values("pk")
        .annotate(
            open=Count(
                "assigned_items", filter=Q(assigned_items__status__in=ASSIGNABLE), distinct=True
            ),
            today=Count("reviews", filter=Q(reviews__created_at__gte=today), distinct=True),
        )
    }
    return {pk: max(0, profiles.get(pk, 0) - load.get(pk, 0)) for pk in ids}


@transaction.atomic
def items_spread(*, items: QuerySet[ReviewItem], reviewers: list, actor: User | None) -> BulkResult:
    """Spreads the open, unassigned items of `items` evenly over `reviewers`: each item goes
    to the eligible reviewer (active, of the item's domain, not its first reviewer) with the
    most capacity left today. Items nobody can take stay unassigned and are counted."""
    result = BulkResult()
    pool = [r for r in reviewers if getattr(getattr(r, "reviewer_profile", None), "active", False)]
    capacity = pool_capacity(reviewers=pool)
    load = dict(
        ReviewItem.objects.filter(assigned_to__in=pool, status__in=ASSIGNABLE)
        .values_list("assigned_to")
        .annotate(n=Count("pk"))
    )
    domains = {r.pk: set(selectors.reviewer_domains(r)) for r in pool}
    rows = list(
        items.filter(
            status__in=(Status.PENDING, Status.NEEDS_SECOND_REVIEW), assigned_to__isnull=True
        )
        .order_by("-priority", "confidence", "source_created_at")
        .values_list("pk", "domain")
    )
    reviewed: dict[int, set[int]] = {}
    for item_id, reviewer_id in Review.objects.filter(item_id__in=[r[0] for r in rows]).values_list(
        "item_id", "reviewer_id"
    ):
        reviewed.setdefault(item_id, set()).add(reviewer_id)
    plan: dict[int, list[int]] = {r.pk: [] for r in pool}
    for item_id, domain in rows:
        eligible = [
            pk
            for pk in plan
            if domain in domains[pk] and capacity[pk] > 0 and pk not in reviewed.get(item_id, ())
        ]
        if not eligible:
            result.skip("no reviewer with capacity and expertise")
            continue
        # Evenly: the reviewer with the fewest open items (before and in this plan) gets it.
        chosen = min(eligible, key=lambda pk: (load.get(pk, 0) + len(plan[pk]), pk))
        plan[chosen].append(item_id)
        capacity[chosen] -= 1
    for reviewer_id, ids in plan.items():
        if ids:
            result.changed += ReviewItem.objects.filter(
                pk__in=ids, assigned_to__isnull=True
            ).update(assigned_to_id=reviewer_id, updated_at=timezone.now())
            _audit(
                actor,
                "item.assigned",
                ((pk, {"assigned_to": None}, {"assigned_to": reviewer_id}) for pk in ids),
            )
    return result


# pg_advisory_xact_lock key: one auto-assignment at a time (two would plan with the same
# capacities and skew the spread; the assigned_to guard already prevents double assignment).
_AUTOASSIGN_LOCK = 0x0A550127


@transaction.atomic
def items_autoassign() -> int:
    """Follow-up of ingest (sent through the outbox): spreads the open, unassigned items of
    agents with `auto_assign` over the active reviewers of their domains, within each
    reviewer's capacity for today. Idempotent: assigned items are left alone, so a repeated
    or late message assigns only what is still unassigned. Returns how many it assigned."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUTOASSIGN_LOCK])
    pool = list(
        get_user_model()
        .objects.filter(is_active=True, groups__name=Role.REVIEWER, reviewer_profile__active=True)
        .select_related("reviewer_profile")
    )
    if not pool or not any(pool_capacity(reviewers=pool).values()):
        return 0
    items = ReviewItem.objects.filter(agent__auto_assign=True)
    return items_spread(items=items, reviewers=pool, actor=None).changed


MAX_DOMAIN = 100  # ReviewItem.domain's length: a longer pool name could never match an item


# An agent's "always review" intents and domains: at most this many, each at most MAX_DOMAIN
# characters. Guidelines: at most settings.INGEST_MAX_TEXT_CHARS characters, the bound of
# agent output (core/markdown.py renders both).
MAX_POLICY_TAGS = 200


def policy_tags(values: Iterable[str], *, what: str) -> list[str]:
    """The distinct, stripped, non-empty `values`, sorted. Raises ValidationError for more
    than MAX_POLICY_TAGS of them (stopping at the first one past it) or one longer than
    MAX_DOMAIN characters. The policy form and `agent_policy_update` both check with it."""
    tags: set[str] = set()
    for value in values:
        tag = value.strip()
        if not tag or tag in tags:
            continue
        if len(tag) > MAX_DOMAIN:
            raise ValidationError(
                f"“{tag[:30]}…” is too long for {what} (at most {MAX_DOMAIN} characters)."
            )
        tags.add(tag)
        if len(tags) > MAX_POLICY_TAGS:
            raise ValidationError(f"{MAX_POLICY_TAGS} entries at most.")
    return sorted(tags)


def policy_problems(changes: dict) -> dict[str, list[str]]:
    """The count and length limits of a policy change, by field (empty when none is broken)."""
    problems: dict[str, list[str]] = {}
    for name, what in (("review_intents", "an intent"), ("review_domains", "a domain")):
        if name in changes:
            try:
                policy_tags(changes[name] or (), what=what)
            except ValidationError as exc:
                problems[name] = exc.messages
    limit = settings.INGEST_MAX_TEXT_CHARS
    if len(changes.get("guidelines") or "") > limit:
        problems["guidelines"] = [f"Guidelines have at most {limit:,} characters."]
    if "redaction" in changes:
        redaction = redaction_policy_problems(changes["redaction"])
        if redaction:
            problems["redaction"] = redaction
    return problems


class PoolChangeRefused(Exception):
    """A pool change that cannot be made; the message says why, for the admin."""


def _locked_profile(user: User) -> ReviewerProfile:
    """The reviewer's profile, created with the defaults if missing, locked until the end of
    the transaction: two admins changing the same reviewer's pools at once must not lose
    each other's change (both read the domains list, both write it back)."""
    profile, _ = ReviewerProfile.objects.select_for_update().get_or_create(user=user)
    return profile


@transaction.atomic
def reviewer_profile_update(*, user: User, changes: dict, actor: User | None) -> ReviewerProfile:
    """Sets the reviewer's pool settings (`domains`, `daily_capacity`, `active`). Locks the
    profile row (`_locked_profile`); one audit event with the fields as they were."""
    profile = _locked_profile(user)
    before = {k: getattr(profile, k) for k in changes}
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.save()
    audit_record(
        actor=actor,
        action="reviewer.updated",
        target_type="user",
        target_id=user.pk,
        before=before,
        after=changes,
    )
    return profile


def _pool_name(domain: str) -> str:
    name = domain.strip()
    if not name:
        raise PoolChangeRefused("A pool needs a domain name.")
    if len(name) > MAX_DOMAIN:
        raise PoolChangeRefused(f"A domain name has at most {MAX_DOMAIN} characters.")
    return name


@transaction.atomic
def pool_member_add(*, domain: str, reviewer: User, actor: User | None) -> bool:
    """Adds `reviewer` to the pool of `domain` (their profile's domains; the profile is made
    if missing). Returns False, changing nothing, when they are in it already (a repeated
    POST). Locks the profile row; audits `pool.member_added` with the domains before and
    after. Raises PoolChangeRefused for a user outside the reviewer group or a bad name."""
    name = _pool_name(domain)
    if not reviewer.groups.filter(name=Role.REVIEWER).exists():
        raise PoolChangeRefused(f"{reviewer.get_username()} is not in the reviewer group.")
    return _pool_domains_change(reviewer=reviewer, pool=name, join=True, actor=actor)


@transaction.atomic
def pool_member_remove(*, domain: str, reviewer: User, actor: User | None) -> bool:
    """Takes `reviewer` out of the pool of `domain`. Returns False, changing nothing, when
    they are not in it (a repeated POST). Items already assigned to them stay assigned (an
    assignment is deliberate; `pool_assigned_open` counts them for the admin). Locks the
    profile row; audits `pool.member_removed` with the domains before and after."""
    name = _pool_name(domain)
    return _pool_domains_change(reviewer=reviewer, pool=name, join=False, actor=actor)


def _pool_domains_change(*, reviewer: User, pool: str, join: bool, actor: User | None) -> bool:
    """Puts `pool` into (or out of) the locked profile's domains and audits the change;
    False, changing nothing, when it already is (or is not) there."""
    profile = _locked_profile(reviewer)
    before = list(profile.domains or [])
    if (pool in before) == join:
        return False
    profile.domains = sorted([*before, pool]) if join else [d for d in before if d != pool]
    profile.save(update_fields=["domains"])
    audit_record(
        actor=actor,
        action="pool.member_added" if join else "pool.member_removed",
        target_type="user",
        target_id=reviewer.pk,
        before={"domains": before},
        after={"domains": profile.domains, "pool": pool},
    )
    return True


@transaction.atomic
def agent_policy_update(*, agent: Agent, changes: dict, actor: User | None) -> Agent:
    """Updates an agent's review policy. New items follow it; queued items keep theirs.

    Raises ValidationError (nothing saved) when a value breaks the model's rules or the alert
    thresholds are not of the shape `kpis.alerts` reads (`thresholds_validate`), or a list
    or the guidelines exceed their bounds (`policy_problems`)."""
    problems = policy_problems(changes)
    if problems:
        raise ValidationError(problems)
    before = {k: getattr(agent, k) for k in changes}
    changed = {k: v for k, v in changes.items() if before[k] != v}
    if "alert_thresholds" in changed:
        problems = thresholds_validate(changed["alert_thresholds"])
        if problems:
            raise ValidationError({"alert_thresholds": problems})
    for name, value in changed.items():
        setattr(agent, name, value)
    agent.full_clean()
    if changed:
        agent.save(update_fields=list(changed))
        audit_record(
            actor=actor,
            action="agent.updated",
            target_type="agent",
            target_id=agent.pk,
            before={k: before[k] for k in changed},
            after=changed,
        )
    return agent
