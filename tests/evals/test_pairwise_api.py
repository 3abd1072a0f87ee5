"""The comparison queue API: claim and vote (A / B terms), roles, conflicts, round trips."""

import pytest

from evals.models import Comparison, ComparisonVote
from tests.evals.factories import ComparisonFactory

pytestmark = pytest.mark.django_db
CLAIM = "/api/v1/comparisons/claim"


def decide_url(comparison_id: int) -> str:
    return f"/api/v1/comparisons/{comparison_id}/decide"


def test_it_claims_the_next_comparison_without_naming_the_versions(api_client, reviewer):
    c = ComparisonFactory(
        version_a="zeta-build-7731",
        version_b="omega-build-9942",
        context=[{"role": "user", "content": "Earlier"}],
    )

    response = api_client(reviewer).post(CLAIM, {})

    assert response.status_code == 200
    body = response.json()
    got = body["comparison"]
    assert got["id"] == c.pk
    assert (got["answer_a"], got["answer_b"], got["a_on_left"]) == (
        c.answer_a,
        c.answer_b,
        c.a_on_left,
    )
    assert got["version"] == 1 and got["status"] == "claimed"
    assert got["context"] == [{"role": "user", "content": "Earlier"}]
    assert "zeta-build" not in response.content.decode()
    assert "omega-build" not in response.content.decode()
    assert body["lease_expires_at"]


def test_it_answers_204_when_nothing_is_claimable(api_client, reviewer):
    assert api_client(reviewer).post(CLAIM, {}).status_code == 204


def test_it_refuses_callers_without_a_token_or_the_reviewer_role(api_client, ml):
    ComparisonFactory()
    assert api_client().post(CLAIM, {}).status_code == 401
    assert api_client(ml).post(CLAIM, {}).status_code == 403
    assert api_client(ml).post(decide_url(1), {"choice": "a", "version": 1}).status_code == 403
    assert not Comparison.objects.filter(status="claimed").exists()


def test_it_records_a_vote_in_a_b_terms(api_client, reviewer):
    c = ComparisonFactory()
    rita = api_client(reviewer)
    version = rita.post(CLAIM, {}).json()["comparison"]["version"]

    response = rita.post(decide_url(c.pk), {"choice": "b", "reason": "why", "version": version})

    assert response.status_code == 200
    assert response.json() == {"id": c.pk, "status": "done", "outcome": "b"}
    v = ComparisonVote.objects.get(comparison=c)
    assert (v.choice, v.reason, v.a_on_left) == ("b", "why", c.a_on_left)


def test_a_stale_version_is_409(api_client, reviewer):
    c = ComparisonFactory()
    rita = api_client(reviewer)
    rita.post(CLAIM, {})
    response = rita.post(decide_url(c.pk), {"choice": "a", "version": 0})
    assert response.status_code == 409
    assert "out of date" in response.json()["detail"]
    assert not ComparisonVote.objects.exists()


def test_a_vote_on_a_comparison_i_do_not_hold_is_409(api_client, reviewer, other_reviewer):
    c = ComparisonFactory()
    api_client(other_reviewer).post(CLAIM, {})
    response = api_client(reviewer).post(decide_url(c.pk), {"choice": "a", "version": 1})
    assert response.status_code == 409
    assert not ComparisonVote.objects.exists()


def test_an_unknown_comparison_is_404_and_a_bad_choice_400(api_client, reviewer):
    c = ComparisonFactory()
    rita = api_client(reviewer)
    rita.post(CLAIM, {})
    assert rita.post(decide_url(10**9), {"choice": "a", "version": 1}).status_code == 404
    bad = rita.post(decide_url(c.pk), {"choice": "left", "version": 1})
    assert bad.status_code == 400
    assert "choice" in bad.json()["errors"]
    assert rita.post(decide_url(c.pk), {"choice": "a"}).status_code == 400  # version required
    assert not ComparisonVote.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_claim_and_vote_round_trips_do_not_grow_with_the_queue(
    api_client, reviewer, other_reviewer, django_assert_num_queries
):
    """Counted on a real transaction (BEGIN and COMMIT count, no test savepoints)."""
    ComparisonFactory.create_batch(2)
    rita, oscar = api_client(reviewer), api_client(other_reviewer)
    rita.post(CLAIM, {})  # the tokens' first use is recorded (a write): not what is counted
    oscar.post(CLAIM, {})
    Comparison.objects.all().delete()

    def claim_and_vote(client) -> None:
        got = client.post(CLAIM, {}).json()["comparison"]
        response = client.post(decide_url(got["id"]), {"choice": "a", "version": got["version"]})
        assert response.status_code == 200

    ComparisonFactory.create_batch(2)
    # claim: token; held?; BEGIN; assigned candidate; domain candidate; move; COMMIT; the
    # comparison with its agent; its votes. vote: token; BEGIN; lock; votes; vote; move;
    # COMMIT.
    with django_assert_num_queries(16):
        claim_and_vote(rita)
    ComparisonFactory.create_batch(80)
    with django_assert_num_queries(16):
        claim_and_vote(oscar)


ASSIGN = "/api/v1/comparisons/assign"


def test_an_admin_assigns_open_comparisons_and_the_assignee_claims_them_first(
    api_client, lead, reviewer, other_reviewer
):
    first, mine, decided = ComparisonFactory(), ComparisonFactory(), ComparisonFactory()
    Comparison.objects.filter(pk=decided.pk).update(status="done", outcome="a")

    response = api_client(lead).post(
        ASSIGN, {"ids": [mine.pk, decided.pk, 999_999], "username": "oscar"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "assigned": 1,
        "assigned_to": "oscar",
        "skipped": {"not found": 1, "not open": 1},
    }
    # Oscar's claim takes the older comparison assigned to him before the first one...
    assert api_client(other_reviewer).post(CLAIM, {}).json()["comparison"]["id"] == mine.pk
    # ...and Rita no longer sees it.
    assert api_client(reviewer).post(CLAIM, {}).json()["comparison"]["id"] == first.pk


def test_only_admins_assign_comparisons_and_to_an_existing_user(api_client, lead, reviewer):
    c = ComparisonFactory()
    refused = api_client(reviewer).post(ASSIGN, {"ids": [c.pk], "username": "rita"})
    unknown = api_client(lead).post(ASSIGN, {"ids": [c.pk], "username": "nobody"})

    assert refused.status_code == 403
    assert unknown.status_code == 400 and "nobody" in unknown.json()["detail"]
    assert not Comparison.objects.filter(assigned_to__isnull=False).exists()
