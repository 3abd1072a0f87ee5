"""GET /api/v1/items, GET /api/v1/items/{id} and POST /api/v1/items/{id}/assign (admin)."""

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


def test_it_leaves_bulky_interaction_fields_out_of_a_list(api_client, lead, queue):
    interaction = queue[0].interaction
    interaction.context = {"documents": ["d" * 1000]}
    interaction.steps = [{"name": "search", "input": "q"}]
    interaction.metadata = {"channel": "web"}
    interaction.save()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        body = api_client(lead).get("/api/v1/items?agent=support-bot&limit=1").json()
    listed = body["items"][0]["interaction"]
    assert listed["external_id"] == interaction.external_id and "input" in listed
    assert not {"context", "steps", "metadata"} & set(listed)
    assert not any('"context"' in q["sql"] for q in queries.captured_queries)

    detail = api_client(lead).get(f"/api/v1/items/{queue[0].pk}").json()
    assert detail["id"] == queue[0].pk
    assert detail["interaction"]["context"] == {"documents": ["d" * 1000]}
    assert detail["interaction"]["steps"] == [{"name": "search", "input": "q"}]
    assert detail["interaction"]["metadata"] == {"channel": "web"}


def test_it_answers_404_for_an_unknown_item(api_client, lead, reviewer, queue):
    assert api_client(lead).get("/api/v1/items/999999").status_code == 404
    assert api_client(reviewer).get(f"/api/v1/items/{queue[0].pk}").status_code == 403


def test_it_refuses_item_listing_to_reviewers(api_client, reviewer, queue):
    response = api_client(reviewer).get("/api/v1/items")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("this token's user needs one of the roles")


def test_it_validates_the_listing_filters(api_client, lead):
    for query, field in (("status=lost", "status"), ("limit=0", "limit")):
        response = api_client(lead).get(f"/api/v1/items?{query}")
        assert response.status_code == 400
        assert list(response.json()["errors"]) == [field]
    response = api_client(lead).get("/api/v1/items?agent=nope")
    assert response.status_code == 400
    assert response.json()["detail"] == "unknown agent 'nope'"


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
    unknown = api_client(lead).post("/api/v1/items/999999/assign", {"username": "rita"})
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no such item"
    ghost = api_client(lead).post(f"/api/v1/items/{queue[0].pk}/assign", {"username": "ghost"})
    assert ghost.status_code == 400
    assert ghost.json()["detail"] == "no active user 'ghost'"
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()


def test_it_names_the_agent_field_when_the_agent_is_unknown(api_client, lead, queue):
    response = api_client(lead).get(f"/api/v1/items?agent={queue[0].agent_id}")
    assert response.status_code == 400
    assert response.json()["errors"] == {"agent": f"unknown agent '{queue[0].agent_id}'"}
