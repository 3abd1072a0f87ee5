"""Claiming a comparison, holding it under a lease and giving it back, with the reads the
claim, the pages and the API share. The state machine and the errors are `evals.services`'.

One claim path for the page, the API and the demo: `comparison_claim` (SELECT … FOR UPDATE
SKIP LOCKED, then a compare-and-swap to `claimed`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from core.transitions import transition
from evals.models import Comparison, ComparisonVote
from evals.services import (
    COMPARISON_STATES,
    LAZY_SWEEP_LIMIT,
    ComparisonNotFound,
    Conflict,
    LeaseLost,
    NotHeld,
)
from reviews.selectors import reviewer_domains

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = Comparison.Status


def lease_duration() -> timedelta:
    """The same hold as a review item's (REVIEW_LEASE_SECONDS)."""
    return timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


# --- reads the claim, the pages and the API share -----------------------------------------------


def claimable_comparisons(reviewer: User) -> QuerySet[Comparison]:
    """Open comparisons `comparison_claim` may hand to `reviewer`: assigned to them (whatever
    the domain: an admin's assignment is deliberate) or unassigned in their pool's domains,
    never one they already voted on (four-eyes needs two different reviewers)."""
    domains = reviewer_domains(reviewer)
    return (
        Comparison.objects.filter(status__in=Comparison.OPEN_STATUSES)
        .filter(Q(assigned_to=reviewer) | Q(assigned_to__isnull=True, domain__in=domains))
        .exclude(
            Exists(ComparisonVote.objects.filter(comparison=OuterRef("pk"), reviewer=reviewer))
        )
    )


def comparison_held_by(reviewer: User) -> Comparison | None:
    """The comparison `reviewer` holds under a live lease, if any (one hold at a time)."""
    return (
        Comparison.objects.filter(
            status=Status.CLAIMED, claimed_by=reviewer, lease_expires_at__gt=timezone.now()
        )
        .order_by("pk")
        .first()
    )


def comparison_for_screen(comparison_id: int) -> Comparison | None:
    """A comparison with its agent and people (one query), and its votes with their
    reviewers (one more)."""
    comparison = (
        Comparison.objects.select_related("agent", "claimed_by", "assigned_to")
        .filter(pk=comparison_id)
        .first()
    )
    if comparison is not None:
        # The votes, oldest first; the model's ordering.
        comparison.votes_list = list(  # type: ignore[attr-defined]
            comparison.votes.select_related("reviewer")
        )
    return comparison


# --- claiming ------------------------------------------------------------------------------------


_ORDER = ("-priority", "created_at", "pk")


def _candidate(qs: QuerySet[Comparison]) -> Comparison | None:
    # SKIP LOCKED: a row another claimer is taking right now is passed over, not waited for.
    # `of=("self",)`: only the comparison row is locked.
    return qs.order_by(*_ORDER).select_for_update(skip_locked=True, of=("self",)).first()


@transaction.atomic
def _claim_once(reviewer: User, exclude: tuple[int, ...]) -> Comparison | None:
    base = claimable_comparisons(reviewer)
    if exclude:
        base = base.exclude(pk__in=exclude)
    comparison = _candidate(base.filter(assigned_to=reviewer))
    if comparison is None:
        domains = reviewer_domains(reviewer)
        if not domains:
            return None
        comparison = _candidate(base.filter(assigned_to__isnull=True, domain__in=domains))
    if comparison is None:
        return None
    transition(
        COMPARISON_STATES,
        comparison,
        Status.CLAIMED,
        actor=reviewer,
        changes={"claimed_by": reviewer, "lease_expires_at": timezone.now() + lease_duration()},
    )
    return comparison


def comparison_claim(*, reviewer: User, exclude: tuple[int, ...] = ()) -> Comparison | None:
    """The comparison `reviewer` holds, else the next one claimed for them under a lease;
    None when nothing is left.

    Order: comparisons assigned to the reviewer first, then unassigned ones of their domains;
    each by priority (highest first), then oldest, then id. Comparisons the reviewer already
    voted on are never offered to them again; `exclude` leaves out more (the one just
    skipped).

    Locks: the candidate is read with `SELECT … FOR UPDATE SKIP LOCKED` and moved to
    `claimed` by compare-and-swap in the same transaction, so two claimers never take the
    same comparison and never wait for each other. When nothing is claimable, lapsed holds
    are swept first (as the periodic task would) and the claim is tried once more.
    """
    held = comparison_held_by(reviewer)
    if held is not None:
        return held
    comparison = _claim_once(reviewer, exclude)
    if comparison is None and comparison_leases_expire(limit=LAZY_SWEEP_LIMIT):
        comparison = _claim_once(reviewer, exclude)
    return comparison


def _open_status(comparison: Comparison) -> str:
    """Where a comparison goes when a hold ends without a vote: back to the first queue, or
    to the second-review queue once a (non-adjudication) vote is in."""
    has_vote = getattr(comparison, "has_vote", None)
    if has_vote is None:
        has_vote = comparison.votes.filter(is_adjudication=False).exists()
    return Status.NEEDS_SECOND_REVIEW if has_vote else Status.PENDING


def _with_has_vote(qs: QuerySet[Comparison]) -> QuerySet[Comparison]:
    return qs.annotate(
        has_vote=Exists(
            ComparisonVote.objects.filter(comparison=OuterRef("pk"), is_adjudication=False)
        )
    )


@transaction.atomic
def comparison_release(*, reviewer: User, comparison_id: int) -> Comparison:
    """Gives back a comparison `reviewer` holds, without a vote ("Skip"): it returns to the
    queue it came from. Raises ComparisonNotFound, NotHeld when they do not hold it."""
    comparison = _with_has_vote(Comparison.objects.filter(pk=comparison_id)).first()
    if comparison is None:
        raise ComparisonNotFound("no such comparison")
    if comparison.status != Status.CLAIMED or comparison.claimed_by_id != reviewer.pk:
        raise NotHeld("You do not hold this comparison; it was not released.")
    transition(
        COMPARISON_STATES,
        comparison,
        _open_status(comparison),
        actor=reviewer,
        expect=(Status.CLAIMED,),
        guard={"claimed_by": reviewer},
        changes={"claimed_by": None, "lease_expires_at": None},
        note={"skipped": True},
    )
    return comparison


@transaction.atomic
def comparison_renew_lease(*, reviewer: User, comparison_id: int) -> Comparison:
    """Extends the hold of a comparison `reviewer` holds (the screen calls this while open).
    Raises LeaseLost when they no longer hold it under a live lease."""
    now = timezone.now()
    expires = now + lease_duration()
    renewed = Comparison.objects.filter(
        pk=comparison_id, status=Status.CLAIMED, claimed_by=reviewer, lease_expires_at__gt=now
    ).update(lease_expires_at=expires)
    if not renewed:
        raise LeaseLost("Your hold on this comparison has ended; it went back to the queue.")
    return Comparison.objects.get(pk=comparison_id)


def comparison_leases_expire(*, limit: int | None = None) -> int:
    """Returns comparisons whose lease ran out to their queue. Safe to run concurrently and
    twice (each moves by compare-and-swap guarded by "the lease has still expired"; a lost
    race is skipped). Returns how many were released."""
    now = timezone.now()
    expired = Comparison.objects.filter(status=Status.CLAIMED, lease_expires_at__lt=now)
    ids = list(expired.order_by("lease_expires_at").values_list("pk", flat=True)[:limit])
    released = 0
    for comparison in _with_has_vote(Comparison.objects.filter(pk__in=ids)):
        try:
            with transaction.atomic():
                transition(
                    COMPARISON_STATES,
                    comparison,
                    _open_status(comparison),
                    expect=(Status.CLAIMED,),
                    guard={"lease_expires_at__lt": timezone.now()},
                    changes={"claimed_by": None, "lease_expires_at": None},
                    note={"lease_expired": True},
                )
        except Conflict:
            continue  # renewed, decided or swept meanwhile
        released += 1
    return released
