"""A reviewer whose hold ended (someone else holds the item now) gets their own text back and
nothing else: no other reviewer's review or note, no agent text, no current state."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, ApiTokenFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
SECRET_NOTE = "Oscar's private note"
SECRET_CORRECTION = "Oscar's own rewrite"
AGENT_OUTPUT = "Agent answer nobody else may read"


@pytest.fixture
def moved_on(reviewer, other_reviewer):
    """Rita held a four-eyes item; her hold ended; Oscar claimed it and sent the first
    review; Tom holds it now for the second review."""
    agent = AgentFactory(slug="support-bot", domain="support", required_reviews=2)
    ReviewItemFactory(interaction__agent=agent, interaction__output=AGENT_OUTPUT)
    item = services.item_claim(reviewer=reviewer)
    rita_version = item.version
    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    services.leases_expire()
    item = services.item_claim(reviewer=other_reviewer)
    decision = services.decision_validate(
        item=item, verdict="correct", corrected_output=SECRET_CORRECTION, notes=SECRET_NOTE
    )
    services.review_submit(item=item, reviewer=other_reviewer, decision=decision)
    tom = UserFactory(username="tom", roles=["reviewer"], domains=["support"])
    item = services.item_claim(reviewer=tom)
    return item, rita_version


def assert_nothing_leaks(html: str) -> None:
    # The apostrophes are escaped in HTML: look for the rest of each text.
    secrets = ("private note", "own rewrite", "oscar", "tom", "Second review", AGENT_OUTPUT)
    assert [s for s in secrets if s in html] == []
    assert "Earlier reviews" not in html
    assert 'name="verdict"' not in html  # nothing to decide here


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_it_gives_a_former_holder_only_their_text_on_an_invalid_decision(
    client, reviewer, moved_on, headers
):
    item, version = moved_on
    client.force_login(reviewer)
    response = client.post(
        f"/review/{item.pk}/decide",
        {"verdict": "correct", "version": version, "corrected_output": "", "notes": "Rita's N"},
        **headers,
    )
    html = response.content.decode()
    assert response.status_code == (200 if headers else 400)
    assert "Your hold on this item ended" in html
    assert "Rita&#x27;s N" in html
    assert_nothing_leaks(html)


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_it_gives_a_former_holder_only_their_text_on_a_refused_decision(
    client, reviewer, moved_on, headers
):
    item, version = moved_on
    client.force_login(reviewer)
    response = client.post(
        f"/review/{item.pk}/decide",
        {"verdict": "correct", "version": version, "corrected_output": "Rita's rewrite"},
        **headers,
    )
    html = response.content.decode()
    assert response.status_code == (200 if headers else 409)
    assert "Rita&#x27;s rewrite" in html and "Claim again" in html
    assert f'<input type="hidden" name="item" value="{item.pk}">' in html
    assert_nothing_leaks(html)
    assert Review.objects.filter(reviewer=reviewer).count() == 0


def test_it_gives_a_former_holder_no_diff_of_the_agent_text(client, reviewer, moved_on):
    item, _ = moved_on
    client.force_login(reviewer)
    response = client.post(f"/review/{item.pk}/diff", {"corrected_output": "x"}, **HTMX)
    assert response.status_code == 404
    assert_nothing_leaks(response.content.decode())


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_it_tells_a_former_holder_renewing_only_that_the_hold_ended(
    client, reviewer, moved_on, headers
):
    item, _ = moved_on
    client.force_login(reviewer)
    response = client.post(f"/review/{item.pk}/lease", **headers, follow=not headers)
    html = response.content.decode()
    assert "hold on this item has ended" in html
    assert_nothing_leaks(html)


def test_it_gives_a_former_holder_nothing_through_the_api(client, reviewer, moved_on):
    item, version = moved_on
    token = ApiTokenFactory(user=reviewer)
    response = client.post(
        f"/api/v1/items/{item.pk}/decision",
        {"verdict": "correct", "corrected_output": "", "version": version},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token.secret}",
    )
    assert response.status_code == 409
    assert_nothing_leaks(response.content.decode())
