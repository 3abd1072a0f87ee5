"""Listeners of the retraining app: an approved or corrected item becomes a training pair."""

import hashlib

from retraining.models import TrainingPair
from reviews.models import Review, ReviewItem

Verdict = Review.Verdict


def training_pair_from_decision(
    sender, *, item: ReviewItem, final: Review, reviews: list[Review], **kwargs
) -> TrainingPair | None:
    """`reviews.signals.item_decided`: approve keeps the agent's output, correct takes the
    reviewer's and keeps the original as the rejected side; other verdicts make nothing.
    Runs in the deciding transaction, so the pair exists exactly when the decision does."""
    if final.verdict not in (Verdict.APPROVE, Verdict.CORRECT):
        return None
    interaction = item.interaction
    corrected = final.verdict == Verdict.CORRECT
    output = final.corrected_output if corrected else interaction.output
    pair = TrainingPair.objects.create(
        item=item,
        interaction=interaction,
        agent_id=item.agent_id,
        agent_version=interaction.agent_version,
        source=final.verdict,
        input=interaction.input,
        context=interaction.context,
        output=output,
        rejected_output=interaction.output if corrected else "",
        error_category=final.error_category
        or next((r.error_category for r in reviews if r.error_category), None),
        content_hash=hashlib.sha256(f"{interaction.input}\x1f{output}".encode()).hexdigest(),
    )
    pair.reviews.set(reviews)
    pair.reviewers.set({r.reviewer_id for r in reviews})
    return pair
