"""Round trips of the hot paths (issue 18): the API's claim and decisions, counted on a real
transaction (BEGIN and COMMIT are round trips too and are counted; no test savepoints), and
what authentication costs per request. Target: approve ≤ 8, correct ≤ 10."""

import pytest
from django.contrib.auth.models import Group

from retraining.models import TrainingPair
from reviews.models import Review, ReviewItem, Score
from tests.factories import (
    AgentFactory,
    ErrorCategoryFactory,
    InteractionFactory,
    ReviewItemFactory,
    UserFactory,
)
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def items():
    agent = AgentFactory(slug="support-bot", domain="support")
    return [
        ReviewItemFactory(interaction=InteractionFactory(agent=agent, output=f"answer {n}"))
        for n in range(3)
    ]


@pytest.fixture
def rita(api_client, reviewer, items):
    client = api_client(reviewer)
    client.post("/api/v1/queue/claim", {})  # the token's first use is recorded (a write)
    return client


def test_a_claim_is_four_round_trips(rita, items, django_assert_num_queries):
    # the token with its user, roles and pool; the claim statement; the item with its
    # interaction and agent; its reviews
    with django_assert_num_queries(4):
        response = rita.post("/api/v1/queue/claim", {})
    assert response.status_code == 200


def test_an_approve_is_seven_round_trips(rita, reviewer, items, django_assert_num_queries):
    held = ReviewItem.objects.get(status="claimed")
    # the token; BEGIN; the item locked with its interaction; the review; the item's move
    # with its audit event; the training pair with its two links; COMMIT
    with django_assert_num_queries(7):
        response = rita.post(f"/api/v1/items/{held.pk}/decision", {"verdict": "approve"})
    assert response.json() == {"id": held.pk, "status": "done"}
    pair = held.training_pair
    assert list(pair.reviews.values_list("verdict", flat=True)) == ["approve"]
    assert list(pair.reviewers.all()) == [reviewer]


def test_a_correction_with_a_category_is_eight(rita, items, django_assert_num_queries):
    category = ErrorCategoryFactory(slug="wrong-policy")
    held = ReviewItem.objects.get(status="claimed")
    body = {"verdict": "correct", "corrected_output": "better", "error_category": category.slug}
    # the approve's seven and the category's lookup
    with django_assert_num_queries(8):
        response = rita.post(f"/api/v1/items/{held.pk}/decision", body)
    assert response.json()["status"] == "done"
    assert held.training_pair.output == "better"
    assert held.training_pair.error_category == category


def test_an_approve_with_rubric_scores_is_still_seven(rita, items, django_assert_num_queries):
    # The agent's active criteria come with the locked item, the scores go in with the
    # review (one statement): scoring adds no round trip.
    make_rubric(items[0].agent, ("accuracy", "pass_fail"), ("tone", "scale", False))
    held = ReviewItem.objects.get(status="claimed")
    body = {"verdict": "approve", "scores": {"accuracy": 1, "tone": 4}}
    with django_assert_num_queries(7):
        response = rita.post(f"/api/v1/items/{held.pk}/decision", body)
    assert response.json() == {"id": held.pk, "status": "done"}
    assert sorted(Score.objects.values_list("criterion__key", "value")) == [
        ("accuracy", 1),
        ("tone", 4),
    ]
    assert held.training_pair.scores == {"accuracy": 1, "tone": 4, "_rubric_version": 1}


def test_a_second_opinion_reads_the_first_and_stays_within_eight(
    api_client, reviewer, other_reviewer, django_assert_max_num_queries
):
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    item = ReviewItemFactory(interaction=InteractionFactory(agent=agent), four_eyes=True)
    first, second = api_client(other_reviewer), api_client(reviewer)
    assert first.post("/api/v1/queue/claim", {}).json()["item"]["id"] == item.pk
    first.post(f"/api/v1/items/{item.pk}/decision", {"verdict": "approve"})
    second.post("/api/v1/queue/claim", {})
    with django_assert_max_num_queries(8):  # the approve's seven and the first review
        response = second.post(f"/api/v1/items/{item.pk}/decision", {"verdict": "approve"})
    assert response.json()["status"] == "done"
    assert set(item.training_pair.reviewers.all()) == {reviewer, other_reviewer}
    assert item.training_pair.reviews.count() == 2


def test_a_first_four_eyes_review_is_not_treated_as_a_decision(api_client, reviewer):
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    item = ReviewItemFactory(interaction=InteractionFactory(agent=agent), four_eyes=True)
    client = api_client(reviewer)
    client.post("/api/v1/queue/claim", {})
    response = client.post(f"/api/v1/items/{item.pk}/decision", {"verdict": "approve"})
    assert response.json()["status"] == "needs_second_review"
    assert not TrainingPair.objects.filter(item=item).exists()


def test_the_decision_answers_404_and_409_from_its_one_read(api_client, reviewer, items):
    client = api_client(reviewer)
    assert client.post("/api/v1/items/999999/decision", {"verdict": "approve"}).status_code == 404
    not_mine = items[0]
    response = client.post(f"/api/v1/items/{not_mine.pk}/decision", {"verdict": "approve"})
    assert response.status_code == 409
    assert response.json()["detail"] == "you do not hold this item's lease; claim it first"
    assert Review.objects.count() == 0


def test_a_changed_group_applies_at_the_next_request(api_client, items):
    user = UserFactory(username="mia", roles=["ml"], domains=["support"])
    client = api_client(user)
    assert client.post("/api/v1/queue/claim", {}).status_code == 403
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    assert client.post("/api/v1/queue/claim", {}).status_code == 200
    user.groups.clear()
    assert client.post("/api/v1/queue/claim", {}).status_code == 403


def test_a_changed_pool_applies_at_the_next_request(api_client, reviewer, items):
    client = api_client(reviewer)
    profile = reviewer.reviewer_profile
    profile.domains = ["legal"]
    profile.save()
    assert client.post("/api/v1/queue/claim", {}).status_code == 204
    profile.domains = ["support"]
    profile.save()
    assert client.post("/api/v1/queue/claim", {}).status_code == 200


def test_a_page_request_reads_the_user_roles_and_pool_in_one_query(
    client, reviewer, django_assert_num_queries
):
    client.force_login(reviewer)
    client.get("/queue/decisions/")  # the session is cached from here on
    with django_assert_num_queries(2):  # the user (roles and pool joined); the decisions
        response = client.get("/queue/decisions/")
    assert response.status_code == 200
    assert response.wsgi_request.user.reviewer_profile.domains == ["support"]
