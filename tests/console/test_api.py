"""GET /api/v1/items and POST /api/v1/items/{id}/assign (admin)."""

import pytest

from reviews.models import ReviewItem
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    agent = AgentFactory(slug="support-bot", domain="support")
    return [
        ReviewItemFactory(interaction=InteractionFactory(agent=agent, confidence=i / 10))
        for i in range(5)
    ]


def test_it_lists_open_items_in_queue_order(api_client, lead, queue):
    body = api_client(lead).get("/api/v1/items?agent=support-bot&limit=2").json()
    assert body["count"] == 5 and body["count_exact"] is True
    assert [i["id"] for i in body["items"]] == [queue[0].pk, queue[1].pk]
    assert body["next_offset"] == 2
    assert body["items"][0]["interaction"]["confidence"] == 0.0


def test_it_refuses_item_listing_to_reviewers(api_client, reviewer, queue):
    assert api_client(reviewer).get("/api/v1/items").status_code == 403


def test_it_validates_the_listing_filters(api_client, lead):
    assert api_client(lead).get("/api/v1/items?status=lost").status_code == 400
    assert api_client(lead).get("/api/v1/items?limit=0").status_code == 400
    assert api_client(lead).get("/api/v1/items?agent=nope").status_code == 400


def test_it_assigns_an_item(api_client, lead, reviewer, queue):
    response = api_client(lead).post(f"/api/v1/items/{queue[0].pk}/assign", {"username": "rita"})
    assert response.status_code == 200
    assert ReviewItem.objects.get(pk=queue[0].pk).assigned_to == reviewer
    listed = api_client(lead).get("/api/v1/items?assigned_to=rita").json()
    assert [i["id"] for i in listed["items"]] == [queue[0].pk]


def test_it_answers_409_when_the_item_cannot_go_to_that_reviewer(api_client, lead, ml, queue):
    response = api_client(lead).post(f"/api/v1/items/{queue[0].pk}/assign", {"username": "mo"})
    assert response.status_code == 409
    assert "outside the reviewer's domains" in response.json()["detail"]


def test_it_answers_404_and_400_on_assign(api_client, lead, queue):
    assert (
        api_client(lead).post("/api/v1/items/999999/assign", {"username": "rita"}).status_code
        == 404
    )
    assert (
        api_client(lead)
        .post(f"/api/v1/items/{queue[0].pk}/assign", {"username": "ghost"})
        .status_code
        == 400
    )
