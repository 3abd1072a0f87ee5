"""The review screen's shared parts: what the reviewer's page and the lead's adjudication
page (console) both show of an item, and the verdict buttons with their shortcut keys."""

from django.shortcuts import render

from reviews import selectors
from reviews.models import Review

# The verdict buttons: (verdict, shortcut key). Labels come from `Review.Verdict`.
REVIEW_KEYS = {"approve": "a", "correct": "c", "reject": "r", "escalate": "e", "skip": "s"}


def verdict_buttons(form_class) -> list[dict]:
    return [
        {"value": v, "label": Review.Verdict(v).label, "key": REVIEW_KEYS[v]}
        for v in form_class.verdicts
    ]


def item_context(item) -> dict:
    """What every page showing an item needs (prefetched by `selectors.item_for_review`)."""
    interaction = item.interaction
    return {
        "item": item,
        "interaction": interaction,
        **_recent_turns(selectors.transcript(interaction.context)),
        "steps": selectors.transcript(interaction.steps),
        "metadata": selectors.metadata_rows(interaction.metadata),
        "earlier": selectors.earlier_reviews(item),
        "below_threshold": item.confidence < item.agent.confidence_threshold,
    }


# The earlier turns a page shows, newest first, up to this many characters in all (the
# turn just before the question always shows): escaping and laying out 200 turns of 20,000
# characters would cost a page ~150 ms (bench/free_text.py).
TRANSCRIPT_MAX_CHARS = 60_000


def _recent_turns(turns: list[dict]) -> dict:
    """`turns` cut to the most recent ones within TRANSCRIPT_MAX_CHARS, and what was left
    out (`hidden_turns`, `hidden_chars`), for the page to say so."""
    kept: list[dict] = []
    size = 0
    for turn in reversed(turns):
        size += len(turn["content"]) + sum(len(c["arguments"]) for c in turn.get("tool_calls", ()))
        if kept and size > TRANSCRIPT_MAX_CHARS:
            break
        kept.append(turn)
    hidden = turns[: len(turns) - len(kept)]
    return {
        "turns": kept[::-1],
        "hidden_turns": len(hidden),
        "hidden_chars": sum(len(t["content"]) for t in hidden),
    }


def gone(request):
    """The answer for an item that does not exist or that the viewer may not see."""
    return render(request, "reviews/gone.html", status=404)
