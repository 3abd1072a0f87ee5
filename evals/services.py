"""Writes of the pairwise review queue: votes, adjudication, assignment (claims and leases
are `evals.claims`).

`Comparison.status` changes here and only here (tests/core/test_transitions.py): the allowed
moves are `TRANSITIONS`, applied by `core.transitions.transition` (a compare-and-swap UPDATE
with its audit event; zero rows → `Conflict`). Pages, the API and the Celery sweep all call
these functions: one claim path, one decision path.

Choices are always in terms of the stored answers A / B. Which one a reviewer saw on the left
is the comparison's `a_on_left` (drawn when it was made); the pages translate left / right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import Role
from accounts.permissions import has_role
from core.audit import audit_event, audit_records
from core.transitions import StateMachine, transition
from evals.models import Comparison, ComparisonVote
from evals.signals import comparison_decided
from reviews.selectors import reviewer_domains

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = Comparison.Status
Choice = Comparison.Choice

# (from, to) → the action name recorded in the audit log.
TRANSITIONS: dict[tuple[str, str], str] = {
    (Status.PENDING, Status.CLAIMED): "comparison.claimed",
    (Status.NEEDS_SECOND_REVIEW, Status.CLAIMED): "comparison.claimed",
    (Status.CLAIMED, Status.PENDING): "comparison.released",
    (Status.CLAIMED, Status.NEEDS_SECOND_REVIEW): "comparison.released",
    (Status.CLAIMED, Status.DONE): "comparison.decided",
    (Status.CLAIMED, Status.DISPUTED): "comparison.disputed",
    (Status.DISPUTED, Status.DONE): "comparison.adjudicated",
}
# Statuses an admin may assign: open, or claimed (the assignee gets it once it is released).
ASSIGNABLE = (Status.PENDING, Status.NEEDS_SECOND_REVIEW, Status.CLAIMED)
MAX_REASON = 5000
# A sweep run from a claim that found nothing releases at most this many lapsed holds.
LAZY_SWEEP_LIMIT = 50


class ComparisonError(Exception):
    """Base of the domain errors; `str()` is a message for the reviewer."""


class Conflict(ComparisonError):
    """The comparison is not in the state the caller expected (someone else moved it)."""


class LeaseLost(Conflict):
    """The caller held the comparison but the hold ended (expired or released)."""


class NotHeld(Conflict):
    """The caller does not hold the comparison (the API says no more than that)."""


class StalePage(Conflict):
    """The vote was cast on a page rendered for an earlier claim of the comparison."""


class AlreadyVoted(Conflict):
    """The caller already voted on this comparison: four-eyes needs another reviewer."""


class ComparisonNotFound(ComparisonError):
    """No comparison has that id."""


class InvalidVote(ComparisonError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class VoteOutcome:
    """What a vote did: the comparison (its new status and outcome) and the vote recorded."""

    comparison: Comparison
    vote: ComparisonVote
    status: str
    messages: list[str] = field(default_factory=list)


@dataclass
class AssignResult:
    changed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n


COMPARISON_STATES = StateMachine(
    model=Comparison,
    target_type="comparison",
    moves=TRANSITIONS,
    conflict=Conflict,
    conflict_message="This comparison changed in the meantime; it is no longer yours to decide.",
    version_field="version",
    touched_field="updated_at",
    audited_fields={"claimed_by": "claimed_by_id", "version": "version"},
    audit_changes=True,
)


# --- voting ---------------------------------------------------------------------------------------


def _validate(choice: str, reason: str, seconds_spent: int | None) -> str:
    errors: dict[str, str] = {}
    if choice not in Choice.values:
        errors["choice"] = f"must be one of {', '.join(Choice.values)}"
    reason = (reason or "").replace("\r\n", "\n")
    if len(reason) > MAX_REASON:
        errors["reason"] = f"is longer than {MAX_REASON:,} characters"
    if seconds_spent is not None and not (0 <= seconds_spent <= 86_400):
        errors["seconds_spent"] = "must be between 0 and 86400"
    if errors:
        raise InvalidVote(errors)
    return reason


def _locked(comparison_id: int) -> Comparison:
    """The comparison row locked (SELECT … FOR UPDATE) for the caller's transaction."""
    locked = Comparison.objects.select_for_update(of=("self",)).filter(pk=comparison_id).first()
    if locked is None:
        raise ComparisonNotFound("no such comparison")
    return locked


def _record(
    comparison: Comparison,
    reviewer: User,
    choice: str,
    reason: str,
    seconds_spent: int | None,
    *,
    adjudication: bool = False,
) -> ComparisonVote:
    return ComparisonVote.objects.create(
        comparison=comparison,
        reviewer=reviewer,
        choice=choice,
        a_on_left=comparison.a_on_left,  # the order this reviewer was shown
        reason=reason,
        seconds_spent=seconds_spent,
        is_adjudication=adjudication,
    )


def _vote_note(vote: ComparisonVote) -> dict[str, Any]:
    return {"choice": vote.choice, "vote": vote.pk, "reviewer": vote.reviewer_id}


def _done(comparison: Comparison, vote: ComparisonVote, *, actor: User, **changes: Any) -> None:
    """Marks the comparison done with `vote`'s choice as its outcome and tells the apps that
    listen (`comparison_decided`, inside this transaction)."""
    transition(
        COMPARISON_STATES,
        comparison,
        Status.DONE,
        actor=actor,
        changes={"outcome": vote.choice, "decided_at": timezone.now(), **changes},
        note=_vote_note(vote),
    )
    comparison_decided.send(sender=Comparison, comparison=comparison)


@transaction.atomic
def comparison_decide(
    *,
    reviewer: User,
    comparison_id: int,
    choice: str,
    reason: str = "",
    version: int,
    seconds_spent: int | None = None,
) -> VoteOutcome:
    """Records `reviewer`'s vote (`choice`: a / b / tie / both_bad, in terms of the stored
    answers) on a comparison they hold, and moves the comparison on.

    Locks the comparison row (SELECT … FOR UPDATE) for the duration, so a lease sweep or a
    second vote cannot interleave. With one required review the vote decides it (`done`,
    `outcome` set, `comparison_decided` sent). With two: the first vote sends it to the
    second-review queue (released for another reviewer); the second decides it when both
    agree and disputes it (admin adjudication) when they do not.

    Raises InvalidVote (nothing read), ComparisonNotFound, NotHeld (the caller does not hold
    it: never did, decided already, released or swept), LeaseLost (their hold lapsed and was
    not swept yet), StalePage (`version`, the one the page was rendered at, is not
    current), AlreadyVoted.
    """
    reason = _validate(choice, reason, seconds_spent)
    locked = _locked(comparison_id)
    if locked.status != Status.CLAIMED or locked.claimed_by_id != reviewer.pk:
        # Decided, disputed, released, or someone else's: the caller learns no more.
        raise NotHeld(
            "You no longer hold this comparison (it was decided, or your hold ended and it "
            "went back to the queue), so your vote was not saved."
        )
    if locked.lease_expires_at is None or locked.lease_expires_at <= timezone.now():
        raise LeaseLost("Your hold on this comparison ended, so your vote was not saved.")
    if version != locked.version:
        raise StalePage(
            "This page is out of date: the comparison was claimed again since. "
            "Your vote was not saved."
        )
    earlier = list(locked.votes.filter(is_adjudication=False))
    if any(v.reviewer_id == reviewer.pk for v in earlier):
        raise AlreadyVoted("You already voted on this comparison; another reviewer must.")

    vote = _record(locked, reviewer, choice, reason, seconds_spent)
    release = {"claimed_by": None, "lease_expires_at": None}
    outcome = VoteOutcome(comparison=locked, vote=vote, status=locked.status)
    if len(earlier) + 1 < locked.required_reviews:
        transition(
            COMPARISON_STATES,
            locked,
            Status.NEEDS_SECOND_REVIEW,
            actor=reviewer,
            changes=release,
            note=_vote_note(vote),
        )
        outcome.messages.append("Recorded; a second reviewer will compare these answers.")
    elif any(v.choice != choice for v in earlier):
        transition(
            COMPARISON_STATES,
            locked,
            Status.DISPUTED,
            actor=reviewer,
            changes=release,
            note=_vote_note(vote),
        )
        outcome.messages.append("The reviewers disagree; a review lead will adjudicate.")
    else:
        _done(locked, vote, actor=reviewer, **release)
    outcome.status = locked.status
    return outcome


@transaction.atomic
def comparison_adjudicate(
    *, admin: User, comparison_id: int, choice: str, reason: str = ""
) -> VoteOutcome:
    """An admin's final choice on a disputed comparison: recorded as an adjudication vote,
    the comparison is done with that outcome (`comparison_decided` sent). Locks the row.
    Raises PermissionDenied (not an admin), InvalidVote, ComparisonNotFound, Conflict (not
    disputed)."""
    if not has_role(admin, [Role.ADMIN]):
        raise PermissionDenied("only a review lead (admin) adjudicates")
    reason = _validate(choice, reason, None)
    locked = _locked(comparison_id)
    if locked.status != Status.DISPUTED:
        raise Conflict("This comparison is not awaiting adjudication.")
    vote = _record(locked, admin, choice, reason, None, adjudication=True)
    _done(locked, vote, actor=admin)
    return VoteOutcome(comparison=locked, vote=vote, status=locked.status)


# --- assignment -----------------------------------------------------------------------------------


@transaction.atomic
def comparison_assign(
    *, admin: User | None, comparison_ids: list[int], reviewer: User
) -> AssignResult:
    """Assigns the open comparisons among `comparison_ids` to `reviewer`: their claim takes
    them first, others no longer see them. Not a status change (the status stays); one
    audit event per comparison. Skips (and counts) closed ones, ones outside the reviewer's
    domains and ones the reviewer already voted on."""
    result = AssignResult()
    domains = reviewer_domains(reviewer)
    rows = list(
        Comparison.objects.filter(pk__in=comparison_ids).values_list(
            "pk", "status", "domain", "assigned_to_id"
        )
    )
    result.skip("not found", len(set(comparison_ids)) - len(rows))
    open_rows = [r for r in rows if r[1] in ASSIGNABLE]
    result.skip("not open", len(rows) - len(open_rows))
    in_domain = [r for r in open_rows if r[2] in domains]
    result.skip("outside the reviewer's domains", len(open_rows) - len(in_domain))
    voted = set(
        ComparisonVote.objects.filter(
            reviewer=reviewer, comparison_id__in=[r[0] for r in in_domain]
        ).values_list("comparison_id", flat=True)
    )
    result.skip("already voted on by them", len(voted))
    targets = [r for r in in_domain if r[0] not in voted and r[3] != reviewer.pk]
    result.skip("already assigned to them", len(in_domain) - len(voted) - len(targets))
    result.changed = Comparison.objects.filter(
        pk__in=[r[0] for r in targets], status__in=ASSIGNABLE
    ).update(assigned_to=reviewer, updated_at=timezone.now())
    audit_records(
        audit_event(
            actor=admin,
            action="comparison.assigned",
            target_type=COMPARISON_STATES.target_type,
            target_id=pk,
            before={"assigned_to": was},
            after={"assigned_to": reviewer.pk},
        )
        for pk, _, _, was in targets
    )
    return result
