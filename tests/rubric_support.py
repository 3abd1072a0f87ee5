"""Rubrics for tests: `make_rubric(agent, ("accuracy", "pass_fail"), ("tone", "scale", False))`
saves the agent's next version through the service the console uses."""

from reviews import rubrics
from reviews.models import Rubric


def make_rubric(agent, *criteria, actor=None) -> Rubric:
    """Criteria as (key, kind) or (key, kind, required); the name is the key, capitalised."""
    latest = Rubric.objects.filter(agent=agent).order_by("-version").first()
    made = rubrics.rubric_create(
        agent=agent,
        criteria=[
            rubrics.CriterionIn(
                key=c[0], name=c[0].replace("_", " ").capitalize(), kind=c[1],
                required=c[2] if len(c) > 2 else True,
            )
            for c in criteria
        ],
        actor=actor,
        base_version=latest.version if latest else 0,
    )  # fmt: skip
    assert made is not None
    return made
