"""Pages of signed-in users (secrets, reviewed content, downloads) are never cached."""

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from tests.factories import ReviewItemFactory

pytestmark = pytest.mark.django_db


def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_it_sends_no_store_on_the_token_page(client, reviewer):
    client.force_login(reviewer)
    shown = client.post("/accounts/tokens/", {"name": "ci"})
    assert shown.context["secret"].encode() in shown.content
    assert no_store(shown) and "private" in shown["Cache-Control"]
    assert no_store(client.get("/accounts/tokens/"))


def test_it_sends_no_store_on_a_review_page(client, reviewer):
    item = ReviewItemFactory(claimed=True, claimed_by=reviewer)
    client.force_login(reviewer)
    response = client.get(f"/review/{item.pk}/")
    assert response.status_code == 200 and b"within 30 days" in response.content
    assert no_store(response)


def test_it_sends_no_store_on_a_console_page_and_its_csv(client, lead):
    client.force_login(lead)
    page = client.get("/console/audit/")
    assert page.status_code == 200 and no_store(page)
    csv = client.get("/console/audit/?format=csv")
    assert b"".join(csv.streaming_content).startswith(b"time,user,action")
    assert no_store(csv)


def test_it_keeps_a_cache_control_the_view_set_itself(reviewer):
    from core.middleware import NoStoreForUsersMiddleware

    request = RequestFactory().get("/")
    request.user = reviewer
    own = HttpResponse("x", headers={"Cache-Control": "max-age=60, private"})
    response = NoStoreForUsersMiddleware(lambda r: own)(request)
    assert response["Cache-Control"] == "max-age=60, private"
