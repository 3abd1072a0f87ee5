"""POST /api/v1/queue/claim and /api/v1/items/{id}/decision."""

import pytest

from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def item():
    agent = AgentFactory(slug="support-bot", domain="support")
    return ReviewItemFactory(interaction=InteractionFactory(agent=agent, output="<b>hi</b>"))


def test_it_claims_the_next_item(api_client, reviewer, item):
    response = api_client(reviewer).post("/api/v1/queue/claim", {})
    assert response.status_code == 200
    body = response.json()
    assert body["item"]["id"] == item.pk
    assert body["item"]["interaction"]["output"] == "<b>hi</b>"
    assert body["item"]["status"] == "claimed"
    assert body["item"]["previous_reviews"] == []
    assert body["lease_expires_at"]


def test_it_answers_204_when_nothing_is_claimable(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/queue/claim", {})
    assert response.status_code == 204
    assert response.content == b""


def test_it_claims_without_a_body(api_client, reviewer, item):
    response = api_client(reviewer).post("/api/v1/queue/claim", b"")
    assert response.status_code == 200
    assert response.json()["item"]["id"] == item.pk
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == reviewer


def test_it_refuses_an_unknown_agent_filter(api_client, reviewer, item):
    response = api_client(reviewer).post("/api/v1/queue/claim", {"agent": "ghost"})
    assert response.status_code == 400
    assert response.json()["detail"] == "unknown agent 'ghost'"
    assert ReviewItem.objects.get(pk=item.pk).status == "pending"


def test_it_refuses_the_claim_to_non_reviewers(api_client, ml, item):
    forbidden = api_client(ml).post("/api/v1/queue/claim", {})
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"].startswith("this token's user needs one of the roles")
    anonymous = api_client().post("/api/v1/queue/claim", {})
    assert anonymous.status_code == 401
    assert anonymous.json() == {"detail": "Unauthorized"}
    assert ReviewItem.objects.get(pk=item.pk).status == "pending"


def test_it_decides_a_claimed_item(api_client, reviewer, item):
    client = api_client(reviewer)
    client.post("/api/v1/queue/claim", {})
    response = client.post(
        f"/api/v1/items/{item.pk}/decision", {"verdict": "approve", "seconds_spent": 9}
    )
    assert response.status_code == 200
    assert response.json() == {"id": item.pk, "status": "done"}
    assert Review.objects.get().seconds_spent == 9


def test_it_answers_409_without_the_lease(api_client, reviewer, other_reviewer, item):
    api_client(reviewer).post("/api/v1/queue/claim", {})
    response = api_client(other_reviewer).post(
        f"/api/v1/items/{item.pk}/decision", {"verdict": "approve"}
    )
    assert response.status_code == 409
    assert not Review.objects.exists()


def test_it_answers_400_with_field_errors(api_client, reviewer, item):
    client = api_client(reviewer)
    client.post("/api/v1/queue/claim", {})
    response = client.post(f"/api/v1/items/{item.pk}/decision", {"verdict": "correct"})
    assert response.status_code == 400
    assert "corrected_output" in response.json()["errors"]
    assert ReviewItem.objects.get().status == "claimed"


def test_it_answers_400_for_a_malformed_body(api_client, reviewer, item):
    client = api_client(reviewer)
    client.post("/api/v1/queue/claim", {})
    response = client.post(
        f"/api/v1/items/{item.pk}/decision", {"verdict": "approve", "seconds_spent": "soon"}
    )
    assert response.status_code == 400
    assert "seconds_spent" in response.json()["errors"]


def test_it_answers_404_for_an_unknown_item(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/items/999999/decision", {"verdict": "approve"})
    assert response.status_code == 404
    assert response.json()["detail"] == "no such item"
    assert not Review.objects.exists()
