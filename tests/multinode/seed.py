"""The agents and people of the multi-node scenario, made in the cluster's database.

No API creates users or agents, so the cluster runs `run()` right after its migrations
(`Cluster(prepare=...)`); everything after this goes through the nodes' HTTP API.
"""

REVIEWERS = 8


def run() -> dict:
    """Returns the API tokens: pipeline, ml, and reviewers by username."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from accounts.models import ReviewerProfile, Role
    from accounts.services import token_create
    from agents.models import Agent

    def person(username: str, role: str, domains: list[str] | None = None) -> str:
        user = get_user_model().objects.create_user(username=username)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        if domains:
            ReviewerProfile.objects.create(user=user, domains=domains)
        return token_create(user=user, name="multinode")[1]

    # Every low-confidence answer is reviewed, no audit sample (the counts stay exact); the
    # legal agent's items need two agreeing reviewers (four-eyes).
    Agent.objects.create(slug="support-bot", name="Support bot", domain="support", audit_rate=0)
    Agent.objects.create(
        slug="legal-bot", name="Legal bot", domain="legal", audit_rate=0, required_reviews=2
    )
    return {
        "pipeline": person("pipeline", Role.AGENT),
        "ml": person("mo", Role.ML),
        "reviewers": {
            f"r{n}": person(f"r{n}", Role.REVIEWER, ["support", "legal"]) for n in range(REVIEWERS)
        },
    }
