"""Writes of the reviews app.

`ReviewItem.status` changes here and only here (a test enforces it): the allowed transitions
are the `TRANSITIONS` table of `ITEM_STATES`, applied by `core.transitions.transition` (a
compare-and-swap UPDATE, zero rows updated → `Conflict`, and the audit event in the same
transaction).
Pages, the API and Celery tasks all call these functions: one claim path, one decision path,
and one way back from a decision (`review_undo`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from agents.redacting import correction_redact
from core import statements
from core.audit import audit_record
from core.models import AuditEvent
from core.transitions import StateMachine, transition
from reviews import rubrics, selectors
from reviews.models import ErrorCategory, Review, ReviewItem
from reviews.signals import decision_undone, item_decided

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = ReviewItem.Status
Verdict = Review.Verdict

# (from, to) → the action name recorded in the audit log.
TRANSITIONS: dict[tuple[str, str], str] = {
    (Status.PENDING, Status.CLAIMED): "item.claimed",
    (Status.NEEDS_SECOND_REVIEW, Status.CLAIMED): "item.claimed",
    (Status.CLAIMED, Status.PENDING): "item.released",
    (Status.CLAIMED, Status.NEEDS_SECOND_REVIEW): "item.released",
    (Status.CLAIMED, Status.DONE): "item.decided",
    (Status.CLAIMED, Status.DISPUTED): "item.disputed",
    (Status.DISPUTED, Status.DONE): "item.adjudicated",
    # A reviewer taking back their decision (`review_undo`). Undoing a skip or a first
    # four-eyes review is (pending | needs_second_review → claimed), recorded as a claim.
    (Status.DONE, Status.CLAIMED): "item.undone",
    (Status.DISPUTED, Status.CLAIMED): "item.undone",
}
DECIDING = (Verdict.APPROVE, Verdict.CORRECT, Verdict.REJECT)
# The audit action of a decision taken back (`review_undo`); its `before` keeps the review.
UNDONE = selectors.UNDONE
LAZY_SWEEP_SECONDS = 5.0
MAX_NOTES = 5000


class ReviewError(Exception):
    """Base of the domain errors; `str()` is a message for the reviewer."""


class Conflict(ReviewError):
    """The item is not in the state the caller expected (someone else moved it)."""


class LeaseLost(Conflict):
    """The caller does not hold the item's lease (expired, released or never held)."""


class NotHeld(Conflict):
    """The caller does not hold the item (the API says no more than that)."""


class ItemNotFound(ReviewError):
    """No item has that id."""


class StalePage(Conflict):
    """The decision was made on a page rendered for an earlier claim of the item."""


class UndoRefused(ReviewError):
    """The decision cannot be taken back (too late, not the reviewer's latest, someone else
    acted on the item since, or what it produced is already in use, e.g. exported)."""


class InvalidDecision(ReviewError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Decision:
    verdict: str
    corrected_output: str = ""
    error_category: ErrorCategory | None = None
    notes: str = ""
    seconds_spent: int | None = None
    # Rubric scores as sent ({criterion key: value}), checked against the agent's active
    # rubric once the item is locked (`rubrics.scores_check` in `_submit`); the rubric
    # version the sender scored, if it said.
    scores: dict[str, Any] | None = None
    rubric_version: int | None = None


@dataclass
class Outcome:
    """What a decision did: the item's new status and, when it was decided, the pair made."""

    item: ReviewItem
    review: Review
    status: str
    pair: Any = None  # what `item_decided` made: the training pair (retraining)
    messages: list[str] = field(default_factory=list)


def lease_duration() -> timedelta:
    return timedelta(seconds=settings.REVIEW_LEASE_SECONDS)


# --- the state machine -------------------------------------------------------------------------


ITEM_STATES = StateMachine(
    model=ReviewItem,
    target_type="review_item",
    moves=TRANSITIONS,
    conflict=Conflict,
    conflict_message="This item changed in the meantime; it is no longer yours to decide.",
    version_field="version",
    touched_field="updated_at",
    audited_fields={"claimed_by": "claimed_by_id", "version": "version"},
    audit_changes=True,
)


def _transition(
    item: ReviewItem,
    to: str,
    *,
    actor,
    expect: tuple[str, ...] | None = None,
    guard: dict[str, Any] | None = None,
    review: Review | None = None,
    note: dict[str, Any] | None = None,
    **changes: Any,
) -> None:
    """Moves `item` to `to` through the shared helper (`core.transitions`): a
    compare-and-swap UPDATE guarded by `expect` (default: the item's status) and `guard`,
    with `changes` in the same UPDATE and the audit event. A move made by a decision names
    its `review` in the event (verdict, review, reviewer): a first four-eyes verdict and a
    lease expiry are the same move (claimed → needs_second_review, "item.released"), only
    the note tells them apart. `note` adds other facts to the event. Raises Conflict."""
    if review is not None:
        note = {**_review_note(review), **(note or {})}
    transition(
        ITEM_STATES, item, to, actor=actor, expect=expect, guard=guard, changes=changes, note=note
    )


def _review_note(review: Review) -> dict[str, Any]:
    return {"verdict": review.verdict, "review": review.pk, "reviewer": review.reviewer_id}


def _open_status(item: ReviewItem) -> str:
    """Where an item goes when a claim ends without a decision: back to the first queue, or
    to the second-review queue if one deciding review is already in (`has_deciding`, when
    the caller's read of the item brought it)."""
    has_review = getattr(item, "has_deciding", None)
    if has_review is None:
        has_review = item.reviews.filter(verdict__in=DECIDING, is_adjudication=False).exists()
    return Status.NEEDS_SECOND_REVIEW if has_review else Status.PENDING


# --- claiming ----------------------------------------------------------------------------------


_CLAIM_ORDER = "priority DESC, confidence, source_created_at, id"
# A candidate query reads its queue in index order (`reviewitem_claim_queue` for a domain)
# and stops at the first item it can lock that the reviewer has not reviewed. That check
# is one probe of `review_item_reviewer` per candidate visited: `OFFSET 0` keeps the
# NOT EXISTS a per-row subplan, which PostgreSQL may not turn into an anti-join. As a join,
# on tables without statistics (right after a bulk load) it was planned against all of the
# reviewer's earlier reviews for every pending item: quadratic, 0.9 s at 2,000 x 1,000.
_CLAIM_CANDIDATE = f"""
    SELECT id, status, priority, confidence, source_created_at FROM reviews_reviewitem ri
    WHERE ri.status IN ('pending', 'needs_second_review') AND {{where}}
      AND NOT EXISTS (
          SELECT 1 FROM reviews_review r WHERE r.item_id = ri.id AND r.reviewer_id = %(me)s
          OFFSET 0)
    ORDER BY {_CLAIM_ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED
"""


@functools.cache
def _claim_sql(n_domains: int, *, agent: bool, domain: bool, item: bool = False) -> str:
    """The PostgreSQL claim: one statement that locks the best candidate of each queue
    (items assigned to me, then each of my domains) with SKIP LOCKED, picks the best, moves
    it to `claimed` with a compare-and-swap UPDATE and writes the audit event. With `item`,
    the only candidate is that one item (under the same rules)."""
    extra = (
        (" AND ri.agent_id = %(agent)s" if agent else "")
        + (" AND ri.domain = %(domain)s" if domain else "")
        + (" AND ri.id = %(item)s" if item else "")
    )
    ctes = [("mine", 0, "ri.assigned_to_id = %(me)s" + extra)]
    ctes += [
        (f"d{i}", 1, f"ri.domain = %(d{i})s AND ri.assigned_to_id IS NULL" + extra)
        for i in range(n_domains)
    ]
    parts = [f"{name} AS ({_CLAIM_CANDIDATE.format(where=where)})" for name, _, where in ctes]
    union = " UNION ALL ".join(f"SELECT *, {rank} AS rank FROM {name}" for name, rank, _ in ctes)
    return f"""
    -- The audit action is TRANSITIONS[(pending | needs_second_review, claimed)].
    WITH {", ".join(parts)},
    pick AS (SELECT * FROM ({union}) c ORDER BY rank, {_CLAIM_ORDER} LIMIT 1),
    claimed AS (
        UPDATE reviews_reviewitem ri
        SET status = 'claimed', claimed_by_id = %(me)s, version = ri.version + 1,
            lease_expires_at = now() + make_interval(secs => %(lease)s), updated_at = now()
        FROM pick
        WHERE ri.id = pick.id AND ri.status = pick.status
        RETURNING ri.id, pick.status AS before, ri.version, ri.claimed_by_id,
                  ri.lease_expires_at, ri.interaction_id, ri.agent_id, ri.required_reviews,
                  ri.domain, ri.confidence, ri.source_created_at, ri.reason, ri.priority,
                  ri.assigned_to_id
    ),
    audit AS (
        INSERT INTO reviews_auditevent
            (actor_id, action, target_type, target_id, before, after, created_at)
        SELECT %(me)s, 'item.claimed', 'review_item', id,
               jsonb_build_object('status', before, 'claimed_by', NULL, 'version', version - 1),
               jsonb_build_object('status', 'claimed', 'claimed_by', claimed_by_id,
                                  'lease_expires_at', lease_expires_at),
               now()
        FROM claimed
    )
    SELECT id, version, lease_expires_at, interaction_id, agent_id, required_reviews, domain,
           confidence, source_created_at, reason, priority, assigned_to_id
    FROM claimed
    """


_CLAIM_RETURNS = (
    "pk",
    "version",
    "lease_expires_at",
    "interaction_id",
    "agent_id",
    "required_reviews",
    "domain",
    "confidence",
    "source_created_at",
    "reason",
    "priority",
    "assigned_to_id",
)


def _claim_pg(
    reviewer,
    *,
    agent_id: int | None,
    domain: str | None,
    domains: list[str],
    item_id: int | None = None,
) -> ReviewItem | None:
    params: dict[str, Any] = {
        "me": reviewer.pk,
        "agent": agent_id,
        "domain": domain,
        "item": item_id,
        "lease": settings.REVIEW_LEASE_SECONDS,
        **{f"d{i}": d for i, d in enumerate(domains)},
    }
    sql = _claim_sql(
        len(domains), agent=agent_id is not None, domain=bool(domain), item=item_id is not None
    )
    # Prepared by PostgreSQL after a few runs on a connection: planning this statement costs
    # more than running it (0.8 of 1.2 ms at 200,000 pending).
    with statements.preparing_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    # The row as the statement left it; relations load lazily if a caller uses them.
    return ReviewItem(
        status=Status.CLAIMED, claimed_by=reviewer, **dict(zip(_CLAIM_RETURNS, row, strict=True))
    )


@transaction.atomic
def _claim_portable(
    reviewer,
    *,
    agent_id: int | None,
    domain: str | None,
    domains: list[str],
    item_id: int | None = None,
) -> ReviewItem | None:
    """The same claim through the ORM, for databases without SKIP LOCKED (SQLite, whose
    IMMEDIATE transactions serialise writers, so select-then-swap is safe there)."""
    order = ("-priority", "confidence", "source_created_at", "pk")
    # The same definition of "claimable" as the queue page's counts.
    base = selectors.claimable_items(reviewer, agent_id=agent_id, domain=domain)
    if item_id is not None:
        base = base.filter(pk=item_id)
    mine = list(base.filter(assigned_to=reviewer).order_by(*order).values_list("pk", flat=True)[:1])
    if mine:
        pk = mine[0]
    else:
        fields = ("pk", "priority", "confidence", "source_created_at")
        rows = [
            row
            for d in domains
            for row in base.filter(domain=d, assigned_to__isnull=True)
            .order_by(*order)
            .values_list(*fields)[:1]
        ]
        if not rows:
            return None
        pk = min(rows, key=lambda r: (-r[1], r[2], r[3], r[0]))[0]
    item = ReviewItem.objects.get(pk=pk)
    _transition(
        item,
        Status.CLAIMED,
        actor=reviewer,
        claimed_by=reviewer,
        lease_expires_at=timezone.now() + lease_duration(),
    )
    return item


_last_lazy_sweep = 0.0


def item_claim(
    *,
    reviewer: User,
    agent_id: int | None = None,
    domain: str | None = None,
    item_id: int | None = None,
) -> ReviewItem | None:
    """Claims the next item for `reviewer` and holds it with a lease; None when none is left.

    Order: items assigned to the reviewer first, then unassigned items of the reviewer's
    domains by priority, lower confidence, older. Items the reviewer already reviewed (the
    first half of a four-eyes pair, or one they skipped) are never offered to them again.

    `item_id` ("Claim again" after a lost hold): that item, if it is open and the reviewer
    may claim it by the rules above (a lapsed hold on it, theirs or anyone's, is released
    first, as the sweep would); else the next item as usual. The caller compares ids to
    tell which one it got.

    Returns the claimed item with its own fields set (its relations load lazily when used).

    Locks: on PostgreSQL this is one statement whose candidate queries are
    `SELECT … FOR UPDATE SKIP LOCKED LIMIT 1` (each walks the `reviewitem_claim_queue` index
    of one domain), so concurrent claimers never wait for or take the same row; the claim is
    a compare-and-swap. Expired leases are swept lazily here (at most every few seconds per
    process, and whenever the queue looks empty) besides the periodic task.
    """
    global _last_lazy_sweep
    domains = selectors.reviewer_domains(reviewer)
    if domain:
        domains = [d for d in domains if d == domain]
    claim = _claim_pg if connection.vendor == "postgresql" else _claim_portable
    now = time.monotonic()
    if now - _last_lazy_sweep > LAZY_SWEEP_SECONDS:
        _last_lazy_sweep = now
        leases_expire(limit=50)
    if item_id is not None:
        _release_if_lapsed(item_id)
        item = claim(reviewer, agent_id=agent_id, domain=domain, domains=domains, item_id=item_id)
        if item is not None:
            return item
    item = claim(reviewer, agent_id=agent_id, domain=domain, domains=domains)
    if item is None and leases_expire(limit=50):
        item = claim(reviewer, agent_id=agent_id, domain=domain, domains=domains)
    return item


def _release_if_lapsed(item_id: int) -> None:
    """Returns one item to its queue if its lease ran out and nobody swept it yet."""
    lapsed = ReviewItem.objects.filter(
        pk=item_id, status=Status.CLAIMED, lease_expires_at__lt=timezone.now()
    ).first()
    if lapsed is not None:
        with contextlib.suppress(Conflict):  # renewed or swept meanwhile
            item_release(item=lapsed, actor=None, only_if_expired=True)


def item_next(
    *, reviewer: User, agent_id: int | None = None, domain: str | None = None
) -> ReviewItem | None:
    """Where a reviewer's work goes on: the item they already hold (one hold at a time, e.g.
    after a reload or in a second tab), else the next claim (`item_claim`); None when the
    queue has nothing for them."""
    held = selectors.item_held_by(reviewer, agent_id=agent_id, domain=domain)
    return held or item_claim(reviewer=reviewer, agent_id=agent_id, domain=domain)


@transaction.atomic
def item_renew_lease(*, item: ReviewItem, reviewer: User) -> ReviewItem:
    """Extends the lease of an item the reviewer holds (the review page calls this while it
    is open). Raises LeaseLost when the reviewer no longer holds it."""
    expires = timezone.now() + lease_duration()
    renewed = ReviewItem.objects.filter(
        pk=item.pk, status=Status.CLAIMED, claimed_by=reviewer, lease_expires_at__gt=timezone.now()
    ).update(lease_expires_at=expires)
    if not renewed:
        raise LeaseLost("Your hold on this item has ended; it went back to the queue.")
    item.lease_expires_at = expires
    return item


def item_release(*, item: ReviewItem, actor: User | None, only_if_expired: bool = False) -> None:
    """Ends a claim without a decision (lease expiry, an admin releasing a stuck claim): the
    item goes back to the queue it came from. Raises Conflict when it is no longer claimed
    (or, with `only_if_expired`, when its lease was renewed meanwhile)."""
    guard = {"lease_expires_at__lt": timezone.now()} if only_if_expired else {}
    with transaction.atomic():
        _transition(
            item,
            _open_status(item),
            actor=actor,
            expect=(Status.CLAIMED,),
            claimed_by=None,
            lease_expires_at=None,
            guard=guard,
        )


def leases_expire(*, limit: int | None = None) -> int:
    """Returns items whose lease ran out to their queue. Safe to run concurrently (each item
    moves by compare-and-swap; a lost race is skipped). Returns how many were released."""
    expired = ReviewItem.objects.filter(status=Status.CLAIMED, lease_expires_at__lt=timezone.now())
    ids = list(expired.order_by("lease_expires_at").values_list("pk", flat=True)[:limit])
    released = 0
    for item in ReviewItem.objects.filter(pk__in=ids):
        try:
            item_release(item=item, actor=None, only_if_expired=True)
        except Conflict:
            continue
        released += 1
    return released


# --- deciding ----------------------------------------------------------------------------------


def decision_validate(
    *,
    item: ReviewItem,
    verdict: str,
    corrected_output: str = "",
    error_category: str | None = None,
    notes: str = "",
    seconds_spent: int | None = None,
    scores: dict[str, Any] | None = None,
    rubric_version: int | None = None,
) -> Decision:
    """Checks a decision's fields; raises InvalidDecision with a message per field. Rubric
    scores are checked against the agent's active rubric when the item is locked (`_submit`),
    so a rubric saved meanwhile is never missed."""
    errors: dict[str, str] = {}
    if scores is not None and not isinstance(scores, dict):
        errors["scores"] = "must be an object of criterion key → value"
    if verdict not in Verdict.values:
        errors["verdict"] = f"must be one of {', '.join(Verdict.values)}"
    corrected_output = (corrected_output or "").replace("\r\n", "\n")
    if verdict == Verdict.CORRECT:
        if not corrected_output.strip():
            errors["corrected_output"] = (
                "is required to correct: write the output the agent should have given"
            )
        elif corrected_output == item.interaction.output:
            errors["corrected_output"] = "is identical to the agent's output; approve instead"
        elif len(corrected_output) > settings.INGEST_MAX_TEXT_CHARS:
            errors["corrected_output"] = (
                f"is longer than {settings.INGEST_MAX_TEXT_CHARS:,} characters"
            )
    elif corrected_output and verdict != Verdict.CORRECT:
        corrected_output = ""  # a stale edit under another verdict is not a correction
    category = None
    if error_category:
        category = next(
            (c for c in selectors.active_categories() if c.slug == error_category), None
        )
        if category is None:
            errors["error_category"] = f"unknown error category {error_category!r}"
    if notes and len(notes) > MAX_NOTES:
        errors["notes"] = f"is longer than {MAX_NOTES:,} characters"
    if seconds_spent is not None and not (0 <= seconds_spent <= 86_400):
        errors["seconds_spent"] = "must be between 0 and 86400"
    if errors:
        raise InvalidDecision(errors)
    return Decision(
        verdict, corrected_output, category, notes or "", seconds_spent, scores, rubric_version
    )


_LOCKED_FOR_DECISION = statements.Reused(
    lambda pk: (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("interaction")
        .annotate(
            has_deciding=Exists(
                Review.objects.filter(
                    item=OuterRef("pk"), verdict__in=DECIDING, is_adjudication=False
                )
            ),
            rubric_rows=rubrics.active_criteria_json(),
            # The agent's redaction policy, for a correction (`_record`): joined, not read.
            agent_redaction=F("agent__redaction"),
        )
        .filter(pk=pk)[:1]
    ),
    statements.MARKER_ID,
)


def _locked_for_decision(item_id: int) -> ReviewItem | None:
    """The item row locked (SELECT … FOR UPDATE) with its interaction, whether a deciding
    review is already in (`has_deciding`) and its agent's active rubric criteria
    (`rubric_rows`, read as of this statement: a rubric saved after it applies to the next
    decision), in one statement compiled once per process; None when there is no such item.
    Call it inside a transaction."""
    return _LOCKED_FOR_DECISION.one(item_id)


@transaction.atomic
def review_submit(
    *, item: ReviewItem, reviewer: User, decision: Decision, expected_version: int | None = None
) -> Outcome:
    """Records `reviewer`'s decision on an item they hold and moves the item on.

    Locks the item row (SELECT … FOR UPDATE) for the duration, so a lease expiry or an admin
    release cannot interleave. Raises LeaseLost when the reviewer does not hold a live lease,
    StalePage when `expected_version` (the version the page was rendered at) is not current.

    approve / correct / reject decide the item, or for a four-eyes item: the first review
    sends it to the second-review queue, the second decides it when both verdicts agree and
    disputes it (admin adjudication) when they do not. escalate sends it to adjudication;
    skip puts it back in the queue for someone else.
    """
    locked = _locked_for_decision(item.pk)
    if locked is None:
        raise Conflict("This item no longer exists; your decision was not saved.")
    return _submit(locked, reviewer, decision, expected_version)


@transaction.atomic
def decision_submit(
    *, item_id: int, reviewer: User, expected_version: int | None = None, **fields: Any
) -> Outcome:
    """`decision_validate` + `review_submit` for a caller that has only the item's id (the
    API): the item is read once, locked, and checked there. Raises ItemNotFound, NotHeld
    (the caller does not hold the item: nothing more is said about it), InvalidDecision and
    the errors of `review_submit`."""
    locked = _locked_for_decision(item_id)
    if locked is None:
        raise ItemNotFound("no such item")
    if locked.claimed_by_id != reviewer.pk:
        raise NotHeld("you do not hold this item's lease; claim it first")
    decision = decision_validate(item=locked, **fields)
    return _submit(locked, reviewer, decision, expected_version)


def _submit(
    locked: ReviewItem, reviewer: User, decision: Decision, expected_version: int | None
) -> Outcome:
    now = timezone.now()
    if locked.status in (Status.DONE, Status.DISPUTED):
        raise Conflict(
            "This item was already decided (perhaps in another tab); your decision was not saved."
        )
    if (
        locked.status != Status.CLAIMED
        or locked.claimed_by_id != reviewer.pk
        or (locked.lease_expires_at and locked.lease_expires_at <= now)
    ):
        raise LeaseLost(
            "Your hold on this item ended (it expired or was released), "
            "so this decision was not saved."
        )
    if expected_version is not None and expected_version != locked.version:
        raise StalePage(
            "This page is out of date: the item was claimed again since. "
            "Your decision was not saved."
        )

    scored, problems = rubrics.scores_check(
        rubric=rubrics.from_rows(locked.rubric_rows),  # type: ignore[attr-defined]
        verdict=decision.verdict,
        scores=decision.scores,
        rubric_version=decision.rubric_version,
    )
    if problems:
        raise InvalidDecision(problems)
    review = _record(locked, reviewer, decision, scored=scored)
    release = {"claimed_by": None, "lease_expires_at": None}
    outcome = Outcome(item=locked, review=review, status=locked.status)

    if decision.verdict == Verdict.SKIP:
        _transition(
            locked,
            _open_status(locked),
            actor=reviewer,
            expect=(Status.CLAIMED,),
            review=review,
            **release,
        )
    elif decision.verdict == Verdict.ESCALATE:
        _transition(locked, Status.DISPUTED, actor=reviewer, review=review, **release)
        outcome.messages.append("Escalated to a review lead.")
    else:
        # Read only when there is one (`has_deciding`, from _locked_for_decision): a first (or
        # only) review needs no second look.
        earlier = (
            list(
                locked.reviews.filter(verdict__in=DECIDING, is_adjudication=False)
                .exclude(pk=review.pk)
                .select_related("error_category")
            )
            if locked.has_deciding  # type: ignore[attr-defined]
            else []
        )
        if len(earlier) + 1 < locked.required_reviews:
            _transition(
                locked,
                Status.NEEDS_SECOND_REVIEW,
                actor=reviewer,
                expect=(Status.CLAIMED,),
                review=review,
                **release,
            )
            outcome.messages.append("Recorded; a second reviewer will check this item.")
        elif earlier and any(r.verdict != decision.verdict for r in earlier):
            _transition(locked, Status.DISPUTED, actor=reviewer, review=review, **release)
            outcome.messages.append("The reviewers disagree; a review lead will adjudicate.")
        else:
            outcome.pair = _decide(
                locked,
                [*earlier, review],
                actor=reviewer,
                scores=scored.as_dict() if scored else {},
                **release,
            )
    outcome.status = locked.status
    return outcome


@transaction.atomic
def item_adjudicate(*, item: ReviewItem, admin: User, decision: Decision) -> Outcome:
    """An admin's final decision on a disputed (or escalated) item."""
    locked = (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("interaction")
        .get(pk=item.pk)
    )
    if locked.status != Status.DISPUTED:
        raise Conflict("This item is not awaiting adjudication.")
    if decision.verdict not in DECIDING:
        raise InvalidDecision({"verdict": "an adjudication must approve, correct or reject"})
    # The lead may score the rubric; nothing is required of an adjudication. Without scores
    # the pair keeps those of the latest agreeing review that scored (retraining).
    scored, problems = rubrics.scores_check(
        rubric=rubrics.active_rubric(locked.agent_id),
        verdict=decision.verdict,
        scores=decision.scores,
        rubric_version=decision.rubric_version,
        required=False,
    )
    if problems:
        raise InvalidDecision(problems)
    review = _record(locked, admin, decision, adjudication=True, scored=scored)
    earlier = list(locked.reviews.filter(verdict__in=DECIDING).exclude(pk=review.pk))
    pair = _decide(
        locked,
        [*earlier, review],
        actor=admin,
        final=review,
        scores=scored.as_dict() if scored and scored.values else None,
    )
    return Outcome(item=locked, review=review, status=locked.status, pair=pair)


def _record(
    item: ReviewItem,
    reviewer,
    decision: Decision,
    *,
    adjudication: bool = False,
    scored: rubrics.Scored | None = None,
) -> Review:
    corrected_output, notes = decision.corrected_output, decision.notes
    if corrected_output or notes:
        # Stored as typed, placeholders included, but personal data typed in is redacted
        # with the conversation's mapping first (agents/redaction.py), in this transaction.
        corrected_output, notes = correction_redact(
            interaction=item.interaction,
            texts=[corrected_output, notes],
            policy_value=getattr(item, "agent_redaction", None),
        )
    review = Review(
        item=item,
        reviewer=reviewer,
        verdict=decision.verdict,
        corrected_output=corrected_output,
        error_category=decision.error_category,
        notes=notes,
        seconds_spent=decision.seconds_spent,
        is_adjudication=adjudication,
    )
    rubrics.review_insert(review, scored)  # with its scores, in one statement
    return review


def _decide(
    item: ReviewItem,
    reviews: list[Review],
    *,
    actor,
    final: Review | None = None,
    scores: dict[str, int] | None = None,
    **changes: Any,
) -> Any:
    """Marks the item done with the final review's verdict and tells the apps above
    (`item_decided`, in this transaction): retraining makes the training pair, which is
    returned (None when nothing was made, e.g. for a rejection). `scores` are the final
    review's rubric scores (`Scored.as_dict`), None when the caller does not have them."""
    final = final or reviews[-1]
    _transition(
        item,
        Status.DONE,
        actor=actor,
        review=final,
        final_verdict=final.verdict,
        decided_at=timezone.now(),
        **changes,
    )
    agreeing = [r for r in reviews if r.verdict == final.verdict] or [final]
    responses = item_decided.send(
        sender=ReviewItem, item=item, final=final, reviews=agreeing, scores=scores
    )
    return next((made for _, made in responses if made is not None), None)


# --- undoing -----------------------------------------------------------------------------------


def undo_check(*, item: ReviewItem, reviewer: User) -> tuple[Review, AuditEvent]:
    """The decision `reviewer` may still take back on `item`, and the audit event of the move
    it made; raises UndoRefused otherwise. Reads only: `review_undo` calls it with the item
    row locked, so what it finds cannot change before the undo is written.

    Undoable: the reviewer's latest decision anywhere (not an adjudication), less than
    `selectors.UNDO_WINDOW` old, not followed by an undo of theirs (undoing a later decision
    does not reopen an earlier one), and still the last thing that happened to the item: no
    review, claim, release or admin change of anyone since.
    """
    latest_only = UndoRefused(
        f"Nothing to undo on item #{item.pk}: only your latest decision can be undone."
    )
    review = Review.objects.filter(reviewer=reviewer).order_by("-created_at", "-pk").first()
    if review is None or review.item_id != item.pk or review.is_adjudication:
        raise latest_only
    if timezone.now() - review.created_at > selectors.UNDO_WINDOW:
        raise UndoRefused(
            f"Too late to undo your decision on item #{item.pk}: a decision can be undone "
            f"for {selectors.UNDO_WINDOW.total_seconds():.0f} seconds after you make it."
        )
    undone_since = AuditEvent.objects.filter(
        actor=reviewer, action=UNDONE, created_at__gte=review.created_at
    )
    if undone_since.exists():
        raise latest_only
    if item.reviews.filter(pk__gt=review.pk).exists():
        raise UndoRefused(
            f"Another reviewer has reviewed item #{item.pk} since, so your decision stands."
        )
    events = AuditEvent.objects.filter(target_type=ITEM_STATES.target_type, target_id=item.pk)
    latest = events.order_by("-pk").first()
    if latest is None or latest.after.get("review") != review.pk:
        raise UndoRefused(
            f"Item #{item.pk} has moved on since your decision (someone else took it or a "
            "lead changed it), so your decision stands."
        )
    return review, latest


@transaction.atomic
def review_undo(*, item: ReviewItem, reviewer: User) -> ReviewItem:
    """Takes back `reviewer`'s latest decision on `item` (see `undo_check` for when) and
    puts the item back in their hands as it was before it: claimed by them under a fresh
    lease, not decided (no final verdict, no decision time), its other reviews untouched.

    Locks the item row (SELECT … FOR UPDATE) for the duration, so a claim (which skips
    locked rows), a second review or an admin change cannot interleave; the move back to
    `claimed` is also a compare-and-swap on the version the decision left. Before anything
    is removed, `signals.decision_undone` lets the apps above remove what they made of the
    decision (retraining: its training pair) or refuse (the pair is already exported). Then
    the review is deleted and a `review.undone` event keeps a copy of it.

    Raises UndoRefused (nothing written); Conflict if the item moved despite the lock.
    Returns the item, claimed.
    """
    locked = ReviewItem.objects.select_for_update(of=("self",)).get(pk=item.pk)
    review, decided = undo_check(item=locked, reviewer=reviewer)
    was = locked.status
    removed: dict[str, Any] = {}
    for _, made in decision_undone.send(sender=ReviewItem, item=locked, review=review):
        if isinstance(made, dict):
            removed.update(made)
    copy = {
        "review": review.pk,
        "verdict": review.verdict,
        "corrected_output": review.corrected_output,
        "error_category": review.error_category_id,
        "notes": review.notes,
        "seconds_spent": review.seconds_spent,
        "created_at": review.created_at,
        "status": was,
    }
    review.delete()
    back: dict[str, Any] = {"final_verdict": "", "decided_at": None} if was == Status.DONE else {}
    _transition(
        locked,
        Status.CLAIMED,
        actor=reviewer,
        # The version the decision left: its event recorded the one before.
        guard={"version": decided.before["version"] + 1},
        note={"undone_review": copy["review"]},
        claimed_by=reviewer,
        lease_expires_at=timezone.now() + lease_duration(),
        **back,
    )
    audit_record(
        actor=reviewer,
        action=UNDONE,
        target_type=ITEM_STATES.target_type,
        target_id=locked.pk,
        before=copy,
        after={"status": locked.status, **removed},
    )
    return locked
