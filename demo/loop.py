"""The demo's closing-the-loop history (issue 15), so the dashboard shows it on first run:

- a rubric for the support bot, created before the month is replayed, so every review of
  its items carries scores (`scores_for`, decided by the planned verdict and the seed);
- a pairwise history: the support bot's last two releases answering the same questions,
  judged blind by its reviewers (most comparisons decided, a few left in the queue);
- a finished regression run: the latest release's answers to the held-out corrections of
  the earlier ones, matched and routed like any posted run, the routed ones judged.

Everything goes through the services the product uses (rubric_create, the decision path,
comparisons_create, regression_run_post, comparison_claim / comparison_decide); only the
answers themselves are invented here, deterministically from the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model

from agents.models import Agent, Interaction
from demo import reviewing
from demo.plan import release_names
from evals import claims, regression, runs
from evals import services as comparisons
from evals.models import Comparison
from evals.routing import NewComparison, comparisons_create
from reviews.models import Rubric
from reviews.rubrics import CriterionIn, rubric_create

LOOP_AGENT = "support-bot"
RUBRIC = (
    CriterionIn(
        "accurate",
        "Accurate",
        "pass_fail",
        required=True,
        help_text="Every fact in the answer is right for this customer.",
    ),
    CriterionIn(
        "tone", "Tone", "scale", required=True, help_text="1 curt or robotic … 5 warm and clear."
    ),
    CriterionIn(
        "policy",
        "Cites the policy",
        "pass_fail",
        required=False,
        help_text="Links or names the policy the answer rests on, where there is one.",
    ),
)
VERSION_COMPARISONS = 36  # pairs of answers of the last two releases
LEFT_OPEN = 4  # of them, left in the comparison queue
DECIDING = ("approve", "correct", "reject")


@dataclass
class LoopResult:
    rubric_version: int = 0
    comparisons: int = 0
    comparisons_decided: int = 0
    run_id: int | None = None
    run_answers: int = 0


def rubrics_ensure(agents: Iterable[Agent], actor: Any) -> set[int]:
    """The support bot's rubric (version 1), unless it has one; returns the ids of the
    agents whose reviews are scored."""
    scored = set()
    for agent in agents:
        if agent.slug != LOOP_AGENT:
            continue
        if not Rubric.objects.filter(agent=agent).exists():
            rubric_create(agent=agent, criteria=RUBRIC, actor=actor, base_version=0)
        scored.add(agent.pk)
    return scored


def scores_for(verdict: str, *, seed: int, external_id: str) -> dict[str, int] | None:
    """A reviewer's scores for a planned verdict: accurate when approved, the tone mostly
    good, the optional policy criterion scored about two times in three."""
    if verdict not in DECIDING:
        return None
    rng = random.Random(f"{seed}:rubric:{external_id}")
    tone = rng.choices((2, 3, 4, 5), weights=(1, 3, 5, 3))[0] - (verdict == "reject")
    scores = {"accurate": int(verdict == "approve"), "tone": max(1, tone)}
    if rng.random() < 0.65:
        scores["policy"] = int(verdict == "approve" and rng.random() < 0.85)
    return scores


def loop_replay(*, agents: Iterable[Agent], seed: int, now: Any) -> LoopResult:
    """The pairwise history and the regression run of the support bot (see the module
    docstring). In the caller's transaction."""
    result = LoopResult()
    agent = next((a for a in agents if a.slug == LOOP_AGENT), None)
    if agent is None:
        return result
    rubric = Rubric.objects.filter(agent=agent).order_by("-version").first()
    result.rubric_version = rubric.version if rubric else 0
    versions = release_names(now.date())[LOOP_AGENT]
    if len(versions) < 2:
        return result
    previous, latest = versions[-2], versions[-1]
    reviewers = _reviewers(agent.domain)
    rng = random.Random(f"{seed}:loop")

    run = _regression_run(agent, latest, rng)
    if run is not None:
        result.run_id, result.run_answers = run
        result.comparisons_decided += _judge(reviewers, rng, leave=0, favour_a=0.6)

    made = _version_comparisons(agent, previous, latest)
    result.comparisons = len(made)
    result.comparisons_decided += _judge(reviewers, rng, leave=LEFT_OPEN, favour_a=0.35)
    return result


def _reviewers(domain: str) -> list[Any]:
    names = [p.username for p in reviewing.PERSONAS if domain in p.domains]
    users = get_user_model().objects.filter(username__in=names).order_by("username")
    return list(users)


def _version_comparisons(agent: Agent, previous: str, latest: str) -> list[Comparison]:
    """Questions both releases were asked word for word: the older release's answer as A,
    the newer one's as B (the side shown is drawn per comparison, as for any)."""
    rows = Interaction.objects.filter(agent=agent, agent_version__in=(previous, latest))
    first: dict[tuple[str, str], Interaction] = {}
    for row in rows.order_by("pk").only(
        "id", "intent", "domain", "input", "context", "output", "agent_version"
    ):
        first.setdefault((row.input, row.agent_version), row)
    new: list[NewComparison] = []
    for (text, version), old in first.items():
        newer = first.get((text, latest))
        if version != previous or newer is None or len(new) >= VERSION_COMPARISONS:
            continue
        new.append(
            NewComparison(
                agent_id=agent.pk,
                kind=Comparison.Kind.VERSIONS,
                external_id=f"demo-{old.pk}-{newer.pk}",
                input=text,
                context=old.context,
                answer_a=old.output,
                version_a=previous,
                answer_b=newer.output,
                version_b=latest,
                domain=old.domain or agent.domain,
                intent=old.intent,
                interaction_id=old.pk,
            )
        )
    return comparisons_create(new)


def _regression_run(agent: Agent, latest: str, rng: random.Random) -> tuple[int, int] | None:
    """The latest release's answers to the regression set of the earlier ones: about half
    equal to the reviewer's reference (some with other spacing or case), a sixth unchanged,
    the rest new wording that goes to the comparison queue."""
    every = regression.cases_iter(agent, regression.filters_clean({}))
    cases = [c for c in every if c.agent_version != latest]
    if not cases:
        return None
    answers = []
    for case in cases:
        roll = rng.random()
        if case.reference and roll < 0.5:
            text = case.reference.upper() if roll < 0.1 else f"  {case.reference}\n"
        elif roll < 0.66:
            text = case.old_answer
        else:
            text = (case.reference or case.old_answer).rstrip(".") + ", as our policy says."
        answers.append({"case_id": case.id, "answer": text})
    posted = runs.regression_run_post(agent=agent, agent_version=latest, answers=answers)
    return posted.run.pk, len(answers)


def _judge(reviewers: list[Any], rng: random.Random, *, leave: int, favour_a: float) -> int:
    """The reviewers work the comparison queue in turn until `leave` comparisons are left;
    they prefer answer A with probability `favour_a` (ties and both-bad now and then)."""
    if not reviewers:
        return 0
    decided = 0
    open_count = Comparison.objects.filter(status__in=Comparison.OPEN_STATUSES).count()
    turn = 0
    while open_count - decided > leave:
        reviewer = reviewers[turn % len(reviewers)]
        turn += 1
        held = claims.comparison_claim(reviewer=reviewer)
        if held is None:
            if turn > 4 * len(reviewers) + decided:
                break
            continue
        roll = rng.random()
        choice = (
            "tie"
            if roll < 0.08
            else "both_bad"
            if roll < 0.13
            else ("a" if rng.random() < favour_a else "b")
        )
        comparisons.comparison_decide(
            reviewer=reviewer,
            comparison_id=held.pk,
            choice=choice,
            version=held.version,
            seconds_spent=rng.randint(20, 140),
        )
        decided += 1
    return decided
