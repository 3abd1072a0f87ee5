"""Fixtures of the regression tests: decided items whose inputs fall where a test needs them
(held out or not, in a batch's train split or not), and deciding the comparisons a run
routed through the pairwise services, as reviewers do."""

import zlib
from datetime import UTC, datetime
from itertools import count

import pytest

from tests import factories

DECIDED_AT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
_serial = count()


def bucket(text: str) -> int:
    """The export split's bucket of a text, computed here from its definition (CRC-32 of the
    UTF-8 text modulo 10,000), not by the code under test."""
    return zlib.crc32(text.encode()) % 10_000


def text_in(low: int, high: int, stem: str = "question") -> str:
    """A new input whose bucket lies in [low, high)."""
    while True:
        text = f"{stem} {next(_serial)}?"
        if low <= bucket(text) < high:
            return text


def held_out_text(stem: str = "question") -> str:
    """Held out at the default share 0.1 (bucket < 1000) and also at 0.05 (< 500): in the
    validation split of any batch with a share of at least 0.05."""
    return text_in(0, 500, stem)


def trained_text(stem: str = "question") -> str:
    """Held out at 0.1 (bucket < 1000), but in the train split of a batch of share 0.05."""
    return text_in(500, 1000, stem)


def train_text(stem: str = "question") -> str:
    """Not held out at 0.1."""
    return text_in(1000, 10_000, stem)


def decide(
    agent,
    text: str,
    *,
    verdict: str = "correct",
    old: str = "The old answer.",
    corrected: str = "The corrected answer.",
    intent: str = "returns",
    domain: str = "support",
    version: str = "2026.10.1",
    category=None,
    decided_at: datetime = DECIDED_AT,
    reviewer=None,
):
    """An item of `agent` decided with `verdict` (one review), and the training pair the
    decision made (approve / correct), as retraining's receiver writes it."""
    interaction = factories.InteractionFactory(
        agent=agent,
        input=text,
        output=old,
        intent=intent,
        domain=domain,
        agent_version=version,
    )
    item = factories.ReviewItemFactory(
        interaction=interaction, done=True, final_verdict=verdict, decided_at=decided_at
    )
    review = factories.ReviewFactory(
        item=item,
        verdict=verdict,
        corrected_output=corrected if verdict == "correct" else "",
        error_category=category,
        **({"reviewer": reviewer} if reviewer else {}),
    )
    if verdict in ("approve", "correct"):
        factories.TrainingPairFactory(
            item=item,
            source=verdict,
            output=corrected if verdict == "correct" else old,
            rejected_output=old if verdict == "correct" else "",
            error_category=category,
            reviews=[review],
        )
    return item


def hold(item, *, share: float, failed: bool = False):
    """A batch of `share` (ready, or failed) holding `item`'s pair."""
    traits = {"failed": True} if failed else {"ready": True}
    batch = factories.ExportBatchFactory(agent=item.agent, validation_share=share, **traits)
    factories.BatchPairFactory(batch=batch, pair=item.training_pair)
    return batch


@pytest.fixture
def agent(db):
    return factories.AgentFactory(slug="support-bot", domain="support")


@pytest.fixture
def judge(db):
    """A reviewer whose pool covers the tests' domains."""
    return factories.UserFactory(
        username="judy", roles=["reviewer"], domains=["support", "billing"]
    )


@pytest.fixture
def decide_comparisons(judge):
    """decide_comparisons({comparison_id: choice}): `judge` claims and votes on each through
    evals.services, as the pairwise queue does (one review required)."""
    from evals import claims, services

    reviewer = judge

    def run(choices: dict[int, str]) -> None:
        from evals.models import Comparison

        left = dict(choices)
        # The others stay in the queue: the claim skips them.
        others = tuple(Comparison.objects.exclude(pk__in=left).values_list("pk", flat=True))
        while left:
            comparison = claims.comparison_claim(reviewer=reviewer, exclude=others)
            assert comparison is not None and comparison.pk in left, (comparison, left)
            services.comparison_decide(
                reviewer=reviewer,
                comparison_id=comparison.pk,
                choice=left.pop(comparison.pk),
                version=comparison.version,
            )

    return run
