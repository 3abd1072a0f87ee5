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
        "turns": selectors.transcript(interaction.context),
        "steps": selectors.transcript(interaction.steps),
        "metadata": selectors.metadata_rows(interaction.metadata),
        "earlier": selectors.earlier_reviews(item),
        "below_threshold": item.confidence < item.agent.confidence_threshold,
    }


def gone(request):
    """The answer for an item that does not exist or that the viewer may not see."""
    return render(request, "reviews/gone.html", status=404)
