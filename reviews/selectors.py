"""Reads of the reviews app."""

import difflib
import json
import re
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q
from django.db.models.functions import Substr
from django.utils import timezone

from agents.models import Agent
from core import statements
from core.models import AuditEvent
from reviews import metrics
from reviews.models import ErrorCategory, Review, ReviewItem


def queue_overview() -> dict:
    """Open review items by agent and reason, and interaction totals, for the home page.
    Three aggregate queries whatever the data size."""

    open_items = ReviewItem.objects.filter(status__in=ReviewItem.OPEN_STATUSES)
    by_agent = {
        row["agent"]: row
        for row in open_items.values("agent").annotate(n=Count("pk"), oldest=Min("created_at"))
    }
    by_reason = list(open_items.values("reason").annotate(n=Count("pk")).order_by("-n"))
    agents = []
    for agent in Agent.objects.order_by("slug"):
        row = by_agent.get(agent.pk)
        agents.append(
            {
                "agent": agent,
                "open": row["n"] if row else 0,
                "oldest": row["oldest"] if row else None,
            }
        )
    return {"agents": agents, "by_reason": by_reason, "total_open": sum(a["open"] for a in agents)}


_ITEM = statements.Reused(
    lambda pk: ReviewItem.objects.select_related(
        "interaction", "agent", "claimed_by", "assigned_to"
    ).filter(pk=pk)[:1],
    statements.MARKER_ID,
)
_ITEM_REVIEWS = statements.Reused(
    lambda pk: (
        Review.objects.select_related("reviewer", "error_category")
        .filter(item_id=pk)
        .order_by("created_at", "pk")
    ),
    statements.MARKER_ID,
)


def item_for_review(item_id: int):
    """An item with everything the review screen and the API show, in a fixed number of
    queries: the item with its interaction, agent and people (one join), and its reviews
    with their reviewers and categories (one more). Both statements are compiled once per
    process (`core.statements.Reused`): this runs on every claim and review screen."""
    item = _ITEM.one(item_id)
    if item is not None:
        statements.prefetched(item, "reviews", list(_ITEM_REVIEWS.queryset(item.pk)))
    return item


def interaction_payload(interaction) -> dict:
    return {
        "external_id": interaction.external_id,
        "agent_version": interaction.agent_version or None,
        "conversation_id": interaction.conversation_id or None,
        "input": interaction.input,
        "context": interaction.context,
        "steps": interaction.steps,
        "output": interaction.output,
        "confidence": interaction.confidence,
        "intent": interaction.intent or None,
        "domain": interaction.domain or None,
        "resolved": interaction.resolved,
        "escalated": interaction.escalated,
        "sentiment": interaction.sentiment,
        "turns": interaction.turns,
        "metadata": interaction.metadata,
        "created_at": interaction.created_at.isoformat(),
    }


def review_payload(review) -> dict:
    return {
        "reviewer": review.reviewer.get_username(),
        "verdict": review.verdict,
        "corrected_output": review.corrected_output or None,
        "error_category": review.error_category.slug if review.error_category else None,
        "notes": review.notes,
        "created_at": review.created_at.isoformat(),
        "is_adjudication": review.is_adjudication,
    }


def item_payload(item) -> dict:
    """The API form of an item (POST /api/v1/queue/claim, GET /api/v1/items)."""
    return {
        "id": item.pk,
        "agent": item.agent.slug,
        "interaction": interaction_payload(item.interaction),
        "reason": item.reason,
        "reason_detail": item.reason_detail,
        "priority": item.priority,
        "status": item.status,
        "domain": item.domain,
        "required_reviews": item.required_reviews,
        "assigned_to": item.assigned_to.get_username() if item.assigned_to else None,
        "version": item.version,
        "previous_reviews": [review_payload(r) for r in item.reviews.all() if r.verdict != "skip"],
    }


# --- the reviewer's pages ---------------------------------------------------------------------
# Read-only helpers of the queue, review and adjudication pages. Every function here runs a
# fixed number of queries whatever the size of the queue (the page tests assert it).

# Age buckets of "My queue", by the time the item was queued (metrics.QUEUED_AT, the age every
# page and KPI uses): (key, label, upper bound of the age).
AGE_BUCKETS = (
    ("hour", "< 1 hour", timedelta(hours=1)),
    ("day", "< 1 day", timedelta(days=1)),
    ("week", "< 7 days", timedelta(days=7)),
    ("older", "Older", None),
)


def reviewer_domains(reviewer) -> list[str]:
    """The domains a reviewer may review: their pool's, none while they are away."""
    profile = getattr(reviewer, "reviewer_profile", None)
    return list(profile.domains) if profile and profile.active else []


def claimable_items(user, *, agent_id: int | None = None, domain: str | None = None):
    """Open items `services.item_claim` may hand to `user`, as a queryset.

    Mirrors the claim: items assigned to the user (whatever their domain, as an admin's
    assignment is deliberate) or unassigned items of the user's active pool domains, never an
    item the user already reviewed (first half of a four-eyes pair, or a skip).
    """

    domains = reviewer_domains(user)
    qs = ReviewItem.objects.filter(status__in=ReviewItem.OPEN_STATUSES).filter(
        Q(assigned_to=user) | Q(assigned_to__isnull=True, domain__in=domains)
    )
    qs = qs.exclude(Exists(Review.objects.filter(item=OuterRef("pk"), reviewer=user)))
    if agent_id:
        qs = qs.filter(agent_id=agent_id)
    if domain:
        qs = qs.filter(domain=domain)
    return qs


_GROUP = ("agent__slug", "agent__name", "reason")


def _grouped_counts(qs, now) -> list[dict]:
    """`qs` counted by agent and reason, with the oldest and the age buckets as conditional
    counts: one grouped query, its rows bounded by agents × reasons."""
    cumulative = {
        key: Count("pk", filter=Q(**{f"{metrics.QUEUED_AT}__gt": now - bound}))
        for key, _, bound in AGE_BUCKETS
        if bound is not None
    }
    return list(
        qs.values(*_GROUP)
        .annotate(n=Count("pk"), oldest=Min(metrics.QUEUED_AT), **cumulative)
        .order_by()
    )


def _domain_counts(domain: str, agent_id: int | None, now) -> list[dict]:
    """The grouped counts of a domain's open unassigned items: the same for every reviewer
    of the domain, so counted once per QUEUE_COUNTS_SECONDS for all of them (the cache)."""
    seconds = settings.QUEUE_COUNTS_SECONDS
    key = f"reviews:queue-counts:{domain}:{agent_id or ''}"
    rows = cache.get(key) if seconds else None
    if rows is None:
        qs = ReviewItem.objects.filter(
            status__in=ReviewItem.OPEN_STATUSES, assigned_to__isnull=True, domain=domain
        )
        rows = _grouped_counts(qs.filter(agent_id=agent_id) if agent_id else qs, now)
        if seconds:
            cache.set(key, rows, seconds)
    return rows


def _combined(added: list[dict], removed: list[dict]) -> list[dict]:
    """Grouped count rows summed by group, less `removed`'s counts."""
    counts = ("n", *(key for key, _, bound in AGE_BUCKETS if bound is not None))
    merged: dict[tuple, dict] = {}
    for sign, rows in ((1, added), (-1, removed)):
        for row in rows:
            into = merged.setdefault(
                tuple(row[g] for g in _GROUP),
                {**{g: row[g] for g in _GROUP}, **dict.fromkeys(counts, 0)},
            )
            for key in counts:
                into[key] += sign * row[key]
    return list(merged.values())


def reviewer_queue_summary(user, *, agent_id: int | None = None, domain: str | None = None) -> dict:
    """Counts of the items `user` may claim: total, by agent, by reason and by age bucket,
    and when the oldest of them was queued (`oldest`; ages as defined in reviews/metrics.py).

    What `claimable_items` holds, counted without walking a large queue per view: the open
    unassigned items of each of the user's domains (counted once for all of the domain's
    reviewers, at most QUEUE_COUNTS_SECONDS old), less those of them the user already
    reviewed (a skip, a first four-eyes review: found from the user's reviews), plus the
    open items assigned to the user. Each part is one grouped query bounded by agents ×
    reasons, never by the queue size.
    """

    now = timezone.now()
    domains = reviewer_domains(user)
    if domain:
        domains = [d for d in domains if d == domain]
    scoped = {"agent_id": agent_id} if agent_id else {}
    reviewed = Review.objects.filter(reviewer=user).values("item_id")
    open_items = ReviewItem.objects.filter(status__in=ReviewItem.OPEN_STATUSES, **scoped)
    mine = _grouped_counts(
        open_items.filter(assigned_to=user, **({"domain": domain} if domain else {})).exclude(
            pk__in=reviewed
        ),
        now,
    )
    done_by_me = (
        _grouped_counts(
            open_items.filter(assigned_to__isnull=True, domain__in=domains, pk__in=reviewed),
            now,
        )
        if domains
        else []
    )
    shared = [row for d in domains for row in _domain_counts(d, agent_id, now)]
    rows = _combined(shared + mine, done_by_me)
    oldest = min((r["oldest"] for r in shared + mine if r["n"]), default=None)
    if done_by_me and oldest is not None and min(r["oldest"] for r in done_by_me) <= oldest:
        # The oldest open item is one the user reviewed: ask which one is oldest for them.
        oldest = claimable_items(user, agent_id=agent_id, domain=domain).aggregate(
            oldest=Min(metrics.QUEUED_AT)
        )["oldest"]
    by_agent: dict[str, dict] = {}
    by_reason: dict[str, int] = {}
    within = {key: 0 for key, _, bound in AGE_BUCKETS if bound is not None}
    total = 0
    for row in rows:
        agent = by_agent.setdefault(
            row["agent__slug"], {"slug": row["agent__slug"], "name": row["agent__name"], "n": 0}
        )
        agent["n"] += row["n"]
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + row["n"]
        for key in within:
            within[key] += row[key]
        total += row["n"]
    # Cumulative "younger than" counts → one exclusive bucket each.
    ages, younger = [], 0
    for key, label, bound in AGE_BUCKETS:
        upto = within[key] if bound is not None else total
        ages.append({"key": key, "label": label, "n": upto - younger})
        younger = upto
    labels = dict(ReviewItem.Reason.choices)
    return {
        "total": total,
        "by_agent": sorted(
            (a for a in by_agent.values() if a["n"]), key=lambda a: (-a["n"], a["slug"])
        ),
        "by_reason": [
            {"reason": reason, "label": str(labels.get(reason, reason)).capitalize(), "n": n}
            for reason, n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
            if n
        ],
        "by_age": ages,
        "oldest": oldest,
    }


def reviewer_queue_due(user, *, agent_id: int | None = None, domain: str | None = None) -> dict:
    """The deadlines of what `user` may claim: the next due time still ahead (`next_due`)
    and how many are past due (`overdue`). One aggregate over the items with a deadline
    (the partial `reviewitem_due_open` index holds only those)."""
    now = timezone.now()
    return (
        claimable_items(user, agent_id=agent_id, domain=domain)
        .filter(due_at__isnull=False)
        .aggregate(
            next_due=Min("due_at", filter=Q(due_at__gt=now)),
            overdue=Count("pk", filter=Q(due_at__lte=now)),
        )
    )


def items_assigned_to(user, *, agent_id: int | None = None, domain: str | None = None):
    """Open items an admin assigned to `user` (and those they hold now), oldest first; for a
    paginated list, so the interaction is joined (one query per page)."""

    qs = (
        ReviewItem.objects.filter(assigned_to=user)
        .filter(
            Q(status__in=ReviewItem.OPEN_STATUSES)
            | Q(status=ReviewItem.Status.CLAIMED, claimed_by=user)
        )
        .select_related("agent", "interaction")
        .order_by("-priority", "confidence", "source_created_at", "pk")
    )
    if agent_id:
        qs = qs.filter(agent_id=agent_id)
    if domain:
        qs = qs.filter(domain=domain)
    return qs


def item_held_by(user, *, agent_id: int | None = None, domain: str | None = None):
    """The item `user` holds with a live lease (matching the filters), or None. The queue's
    "Start reviewing" resumes it rather than claiming a second item while one is held."""

    if not agent_id and not domain:  # the usual case, on every decision: compiled once
        return _HELD.one(user.pk, timezone.now())
    return _held(user, timezone.now(), agent_id=agent_id, domain=domain).first()


def _held(user, now, *, agent_id: int | None = None, domain: str | None = None):
    qs = ReviewItem.objects.filter(
        status=ReviewItem.Status.CLAIMED, claimed_by=user, lease_expires_at__gt=now
    )
    if agent_id:
        qs = qs.filter(agent_id=agent_id)
    if domain:
        qs = qs.filter(domain=domain)
    return qs.order_by("lease_expires_at")


_HELD = statements.Reused(
    lambda user, now: _held(user, now)[:1], statements.MARKER_ID, statements.MARKER_TIME
)


def reviews_today(user) -> int:
    """How many items `user` reviewed today (reviews/metrics.py: since midnight UTC, skips
    not counted, adjudications counted)."""

    return Review.objects.filter(metrics.reviewed_today_q(), reviewer=user).count()


# How long a reviewer may take back a decision (`services.review_undo`), unless they decide
# again first.
UNDO_WINDOW = timedelta(minutes=1)
RECENT_DECISIONS = 20
UNDONE = "review.undone"  # services.UNDONE, the audit action of an undo


def _my_reviews(user):
    """`user`'s reviews, newest first, each with whether it is still the last on its item
    (`last_on_item`) and whether they undid a decision since (`undone_since`)."""
    later_review = Review.objects.filter(item=OuterRef("item_id"), pk__gt=OuterRef("pk"))
    undo_since = AuditEvent.objects.filter(
        actor=user, action=UNDONE, created_at__gte=OuterRef("created_at")
    )
    return (
        Review.objects.filter(reviewer=user)
        .annotate(last_on_item=~Exists(later_review), undone_since=Exists(undo_since))
        .order_by("-created_at", "-pk")
    )


_LATEST_REVIEW = statements.Reused(
    lambda user: _my_reviews(user).select_related("item")[:1], statements.MARKER_ID
)


def _undoable(review, now) -> bool:
    """What `services.undo_check` will say, as far as the row shows (the service also checks
    that nobody else acted on the item since, from the audit log, under a lock)."""
    return (
        not review.is_adjudication
        and review.last_on_item
        and not review.undone_since
        and now - review.created_at <= UNDO_WINDOW
        and review.item.status != ReviewItem.Status.CLAIMED
    )


def undoable_decision(user):
    """`user`'s latest decision while they may still undo it, with `undo_until` (when the
    window closes); else None. One query (the reviews' time index, newest first)."""
    review = _LATEST_REVIEW.one(user.pk)
    if review is None or not _undoable(review, timezone.now()):
        return None
    review.undo_until = review.created_at + UNDO_WINDOW
    return review


def recent_decisions(user, *, limit: int = RECENT_DECISIONS) -> list:
    """`user`'s last `limit` decisions (skips and a lead's adjudications included), newest
    first, for "My recent decisions". Each has its item and agent, `snippet` (the start of
    the user's question), `visible` (they may still open the item: `item_decided_by`) and
    `undoable` (only ever the first). One query."""
    now = timezone.now()
    rows = list(
        _my_reviews(user)
        .select_related("item__agent")
        .annotate(snippet=Substr("item__interaction__input", 1, 120))[:limit]
    )
    for i, review in enumerate(rows):
        item = review.item
        review.visible = (
            review.last_on_item
            and not review.is_adjudication
            and not (item.status == ReviewItem.Status.CLAIMED and item.claimed_by_id != user.pk)
        )
        review.undoable = i == 0 and _undoable(review, now)
        review.undo_until = review.created_at + UNDO_WINDOW
    return rows


def agent_choices() -> list[tuple[str, str]]:
    """(slug, name) of every agent, for the queue filters."""

    return list(Agent.objects.order_by("slug").values_list("slug", "name"))


def agent_id_for(slug: str | None) -> int | None:

    if not slug:
        return None
    return Agent.objects.filter(slug=slug).values_list("pk", flat=True).first()


# The taxonomy changes rarely and is read by every review screen and decision: it is kept in
# the cache (shared by all processes), dropped when a category is saved or deleted (and again
# when that transaction commits: reviews.apps connects `taxonomy_changed`), and in any case
# read again after TAXONOMY_SECONDS (a restore or a data migration sends no model signal).
TAXONOMY_KEY = "reviews:taxonomy:active"
TAXONOMY_SECONDS = 60


def active_categories() -> list[ErrorCategory]:
    """The active error categories, in taxonomy order."""
    categories = cache.get(TAXONOMY_KEY)
    if categories is None:
        categories = list(ErrorCategory.objects.filter(active=True))
        cache.set(TAXONOMY_KEY, categories, TAXONOMY_SECONDS)
    return categories


def taxonomy_changed(**kwargs) -> None:
    """post_save / post_delete of ErrorCategory: the cached taxonomy is dropped now and once
    the change commits (a read in between would cache the old list again)."""
    cache.delete(TAXONOMY_KEY)
    transaction.on_commit(lambda: cache.delete(TAXONOMY_KEY))


def category_choices() -> list[tuple[str, str]]:
    """(slug, name) of the active error categories, in taxonomy order."""
    return [(c.slug, c.name) for c in active_categories()]


def item_holds(item, user) -> bool:
    """Whether `user` holds the claim on `item` (the lease may have run out but not yet been
    swept: the decision then fails with LeaseLost, which the page explains)."""
    return item.status == item.Status.CLAIMED and item.claimed_by_id == user.pk


def item_lease_live(item) -> bool:
    return bool(item.lease_expires_at and item.lease_expires_at > timezone.now())


def item_claimed_before(item, user) -> bool:
    """Whether `user` ever claimed `item` (from the audit log). A reviewer whose hold ended
    may still see the item they were working on, so what they typed can be given back; to
    anyone else it stays invisible."""

    return AuditEvent.objects.filter(
        target_type="review_item", target_id=item.pk, action="item.claimed", actor=user
    ).exists()


def item_decided_by(item, user) -> bool:
    """Whether `item` is still as `user`'s decision left it, so they may read it: the last
    review on it is theirs (not an adjudication) and nobody else holds it. Once another
    reviewer picked it up or reviewed it, it is out of their hands and out of their sight, as
    for a former holder. Uses the reviews prefetched by `item_for_review`."""
    reviews = item.reviews.all()
    last = max(reviews, key=lambda r: r.pk) if reviews else None
    return (
        last is not None
        and last.reviewer_id == user.pk
        and not last.is_adjudication
        and not (item.status == item.Status.CLAIMED and item.claimed_by_id != user.pk)
    )


def earlier_reviews(item) -> list:
    """The item's decisions so far, without skips (which carry no verdict), from the
    prefetched reviews of `item_for_review`."""
    return [r for r in item.reviews.all() if r.verdict != "skip"]


def disputed_items():
    """Items waiting for adjudication, oldest dispute first, with their reviews (three
    queries per page: count, items, reviews)."""

    return (
        ReviewItem.objects.filter(status=ReviewItem.Status.DISPUTED)
        .select_related("agent", "interaction")
        .prefetch_related(
            Prefetch(
                "reviews",
                queryset=Review.objects.exclude(verdict="skip")
                .select_related("reviewer", "error_category")
                .order_by("created_at", "pk"),
            )
        )
        .order_by("updated_at", "pk")
    )


TRANSCRIPT_ROLES = frozenset({"system", "user", "assistant", "tool"})


def transcript(messages) -> list[dict]:
    """`Interaction.context` or `.steps` as chat turns `{role, content, tool_calls?,
    tool_call_id?}`, tolerant of anything stored (ingest validates the shape, but rows may
    predate it). Tool arguments and JSON results are pretty-printed for reading."""
    turns = []
    for turn in messages if isinstance(messages, list) else []:
        if isinstance(turn, dict):
            role, content = turn.get("role"), turn.get("content")
        else:
            role, content, turn = "other", turn, {}
        role = role if role in TRANSCRIPT_ROLES else "other"
        if content is None:
            content = ""
        elif not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False, indent=2)
        out: dict = {"role": role, "content": content}
        if role == "tool":
            out["content"] = _pretty_json(content)
            out["tool_call_id"] = str(turn.get("tool_call_id") or "")
            out["name"] = str(turn.get("name") or "")
        calls = turn.get("tool_calls")
        if isinstance(calls, list):
            out["tool_calls"] = [
                {
                    "id": str(call.get("id") or ""),
                    "name": str(call.get("name") or ""),
                    "arguments": _pretty_json(call.get("arguments")),
                }
                for call in calls
                if isinstance(call, dict)
            ]
        turns.append(out)
    return turns


# JSON text longer than this is shown as sent (pretty-printing it is work nobody reads).
PRETTY_JSON_MAX_CHARS = 20_000


def _pretty_json(value) -> str:
    """Indented JSON for a JSON text or value; other text unchanged."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, indent=2)
    text = value.strip()
    if not text or text[0] not in "[{" or len(text) > PRETTY_JSON_MAX_CHARS:
        return value
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, indent=2)
    except ValueError:
        return value


def metadata_rows(metadata) -> list[tuple[str, str]]:
    """`Interaction.metadata` as (key, text) rows; nested values as indented JSON."""
    if not isinstance(metadata, dict):
        return [("value", json.dumps(metadata, ensure_ascii=False))] if metadata else []
    rows = []
    for key, value in metadata.items():
        if isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False, indent=2 if value else None)
        rows.append((str(key), text))
    return rows


# The word diff's work is bounded by its input, whatever its shape: difflib's matcher costs up
# to len(a) × len(b) comparisons per matching block (with autojunk off, repeated or
# alternating tokens make that quadratic or worse), so it only ever sees the part between the
# common prefix and suffix, and only when that part is at most this many token pairs; else
# the same part compared line by line under the same budget; else shown as one replacement
# ("too large to compare word by word"). bench/diff.py measures the worst shapes at the
# documented input limit (settings.INGEST_MAX_TEXT_CHARS) and just under this budget: on
# many repeated elements the matcher's work grows with the cube of the side (one scan of
# every repeat per matching block), ~200 ms at 40,000 pairs (200 × 200) on a 2-core machine,
# ~25 ms at 10,000 (100 × 100: about 50 words either side of a change).
WORD_DIFF_MAX_CELLS = 10_000
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_WORDS = re.compile(r"\w+")


def _words(text: str) -> int:
    return sum(1 for _ in _WORDS.finditer(text))


def _common_ends(a: list[str], b: list[str]) -> tuple[int, int]:
    """How many tokens `a` and `b` share at the start, and then at the end (linear)."""
    n = min(len(a), len(b))
    head = 0
    while head < n and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < n - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head, tail


def _opcodes(a: list[str], b: list[str]):
    """difflib's opcodes of `a` against `b` if they fit the budget, else None."""
    if len(a) * len(b) > WORD_DIFF_MAX_CELLS:
        return None
    return difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()


def text_too_long(subject: str, length: int, limit: int) -> str:
    """The message for a text over its limit, the same on the form and in the diff
    (`subject` with its verb: "Your corrected answer is")."""
    return f"{subject} {length:,} characters; the limit is {limit:,}."


def word_diff(original: str, edited: str) -> dict:
    """The word-level diff of a correction against the original output.

    Returns `{"segments": [(op, text)], "added": n, "removed": n, "changed": bool,
    "word_by_word": bool, "level": "words" | "lines" | "text" | "too_long", "message": str}`
    where op is "equal", "insert" or "delete" and the segments rebuild both texts.
    `word_by_word` is False when the changed part was too large to compare word by word (see
    WORD_DIFF_MAX_CELLS): it is then compared line by line, or shown as one replacement.
    A text over the correction limit (settings.INGEST_MAX_TEXT_CHARS, what the form and
    the service accept) is not tokenised at all: level "too_long", no segments, and
    `message` says by how much. Text is returned raw: the template escapes it.
    """
    original = (original or "").replace("\r\n", "\n")
    edited = (edited or "").replace("\r\n", "\n")
    limit = settings.INGEST_MAX_TEXT_CHARS
    if len(edited) > limit or len(original) > limit:
        longest = max(len(edited), len(original))
        what = "Your corrected answer is" if len(edited) > limit else "The agent's answer is"
        return {
            "segments": [],
            "added": 0,
            "removed": 0,
            "changed": original != edited,
            "word_by_word": False,
            "level": "too_long",
            "message": text_too_long(what, longest, limit),
        }
    a, b = _TOKEN.findall(original), _TOKEN.findall(edited)
    head, tail = _common_ends(a, b)
    a_mid, b_mid = a[head : len(a) - tail], b[head : len(b) - tail]
    level, ops = "words", _opcodes(a_mid, b_mid)
    if ops is None:
        a_mid = "".join(a_mid).splitlines(keepends=True)
        b_mid = "".join(b_mid).splitlines(keepends=True)
        level, ops = "lines", _opcodes(a_mid, b_mid)
    if ops is None:
        level, ops = "text", [("replace", 0, len(a_mid), 0, len(b_mid))]

    segments: list[tuple[str, str]] = []
    added = removed = 0

    def push(op: str, text: str) -> None:
        if not text:
            return
        if segments and segments[-1][0] == op:
            segments[-1] = (op, segments[-1][1] + text)
        else:
            segments.append((op, text))

    push("equal", "".join(a[:head]))
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            push("equal", "".join(a_mid[i1:i2]))
            continue
        if tag in ("delete", "replace"):
            text = "".join(a_mid[i1:i2])
            removed += _words(text)
            push("delete", text)
        if tag in ("insert", "replace"):
            text = "".join(b_mid[j1:j2])
            added += _words(text)
            push("insert", text)
    push("equal", "".join(a[len(a) - tail :]))
    return {
        "segments": segments,
        "added": added,
        "removed": removed,
        "changed": original != edited,
        "word_by_word": level == "words",
        "level": level,
        "message": "",
    }
