"""Due times on the reviewer's pages: the queue (next due, overdue count) and the review
screen (due time, overdue badge)."""

from datetime import UTC, datetime, timedelta

import pytest

from reviews import services
from tests import factories


@pytest.mark.django_db
def test_it_shows_the_next_due_and_the_overdue_count_on_the_queue(client, reviewer):
    now = datetime.now(UTC)
    agent = factories.AgentFactory(slug="help-bot", domain="support")
    for due in (
        now - timedelta(hours=1),
        now - timedelta(hours=2),
        now + timedelta(hours=2, minutes=10),
    ):
        factories.ReviewItemFactory(
            interaction__agent=agent, interaction__domain="support", due_at=due
        )
    client.force_login(reviewer)
    body = client.get("/queue/").content.decode()
    assert '<strong class="overdue">2 overdue</strong>' in body
    assert "next due" in body
    assert "(in 2 h)" in body


@pytest.mark.django_db
def test_it_shows_the_due_time_and_an_overdue_badge_on_the_review_screen(client, reviewer):
    agent = factories.AgentFactory(slug="help-bot", domain="support")
    item = factories.ReviewItemFactory(
        interaction__agent=agent,
        interaction__domain="support",
        due_at=datetime.now(UTC) - timedelta(minutes=30),
    )
    services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)
    body = client.get(f"/review/{item.pk}/").content.decode()
    assert f'id="due-{item.pk}"' in body
    assert "30 min overdue" in body and "overdue-badge" in body
