"""Listeners of the retraining app: an approved or corrected item becomes a training pair,
and an undone decision takes its pair away again unless it was exported."""

import hashlib

from django.db import connection

from core import statements
from retraining import build
from retraining.models import BatchPair, TrainingPair
from reviews import rubrics
from reviews.models import Review, ReviewItem
from reviews.services import UndoRefused

Verdict = Review.Verdict


def training_pair_from_decision(
    sender,
    *,
    item: ReviewItem,
    final: Review,
    reviews: list[Review],
    scores: dict[str, int] | None = None,
    **kwargs,
) -> TrainingPair | None:
    """`reviews.signals.item_decided`: approve keeps the agent's output, correct takes the
    reviewer's and keeps the original as the rejected side; other verdicts make nothing.
    Runs in the deciding transaction, so the pair exists exactly when the decision does.
    The pair keeps the deciding review's rubric scores; an adjudication (no `scores` sent)
    keeps those of the latest agreeing review that scored (one query, off the hot path)."""
    if final.verdict not in (Verdict.APPROVE, Verdict.CORRECT):
        return None
    if scores is None:
        scores = rubrics.scores_of([r.pk for r in reviews])
    interaction = item.interaction
    corrected = final.verdict == Verdict.CORRECT
    output = final.corrected_output if corrected else interaction.output
    pair = TrainingPair(
        item=item,
        interaction=interaction,
        agent_id=item.agent_id,
        agent_version=interaction.agent_version,
        source=final.verdict,
        input=interaction.input,
        context=interaction.context,
        steps=interaction.steps,
        output=output,
        rejected_output=interaction.output if corrected else "",
        error_category=final.error_category
        or next((r.error_category for r in reviews if r.error_category), None),
        content_hash=hashlib.sha256(f"{interaction.input}\x1f{output}".encode()).hexdigest(),
        scores=scores,
    )
    _save_with_links(pair, [r.pk for r in reviews], sorted({r.reviewer_id for r in reviews}))
    return pair


def _save_with_links(pair: TrainingPair, review_ids: list[int], reviewer_ids: list[int]) -> None:
    """Inserts a new pair with its links to the reviews and reviewers: on PostgreSQL in one
    statement (the links take the pair's id from the INSERT's RETURNING)."""
    reviews_link, reviewers_link = TrainingPair.reviews.through, TrainingPair.reviewers.through
    if not statements.supported():
        pair.save(force_insert=True)
        reviews_link.objects.bulk_create(
            reviews_link(trainingpair_id=pair.pk, review_id=pk) for pk in review_ids
        )
        reviewers_link.objects.bulk_create(
            reviewers_link(trainingpair_id=pair.pk, user_id=pk) for pk in reviewer_ids
        )
        return
    insert, params = statements.insert_returning_pk(pair)
    sql = f"""
        WITH pair AS ({insert}),
        reviews AS (
            INSERT INTO {reviews_link._meta.db_table} (trainingpair_id, review_id)
            SELECT pair.id, review_id FROM pair, unnest(%s::bigint[]) AS review_id
        ),
        reviewers AS (
            INSERT INTO {reviewers_link._meta.db_table} (trainingpair_id, user_id)
            SELECT pair.id, user_id FROM pair, unnest(%s::integer[]) AS user_id
        )
        SELECT id FROM pair
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, (*params, review_ids, reviewer_ids))
        statements.mark_saved(pair, cursor.fetchone()[0])


def training_pair_undo(sender, *, item: ReviewItem, review: Review, **kwargs) -> dict | None:
    """`reviews.signals.decision_undone`: removes the pair the decision made (the item is
    still as the decision left it, so a pair of the item is that decision's), or refuses
    when a batch holds it: a batch's pairs never change. The removal lock waits for any
    selection of the agent's pairs that is running, so none takes the pair meanwhile."""
    pair = TrainingPair.objects.filter(item_id=item.pk).first()
    if pair is None:
        return None
    build.pair_removal_lock(pair.agent_id, exclusive=True)
    batch_id = BatchPair.objects.filter(pair_id=pair.pk).values_list("batch_id", flat=True).first()
    if batch_id is not None:
        raise UndoRefused(
            f"Item #{item.pk} can no longer be undone: its training pair is already in "
            f"export batch #{batch_id}."
        )
    pair_id = pair.pk
    pair.delete()
    return {"pair": pair_id}
