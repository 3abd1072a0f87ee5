"""The console's "Deadlines" page and the due times in the queue browser and item page."""

from datetime import UTC, datetime, timedelta

import pytest

from core.models import AuditEvent
from reviews.models import Deadline
from tests import factories


@pytest.fixture
def law_bot(db):
    return factories.AgentFactory(slug="law-bot", domain="legal")


@pytest.mark.django_db
def test_it_sets_a_deadline_and_audits_it(client, lead, law_bot):
    client.force_login(lead)
    response = client.post(
        "/console/deadlines/",
        {"agent": "law-bot", "domain": "legal", "hours": "4", "working_hours": "on"},
    )
    assert response.status_code == 302
    rule = Deadline.objects.get()
    assert (rule.agent, rule.domain, rule.hours, rule.working_hours) == (law_bot, "legal", 4, True)
    event = AuditEvent.objects.get(action="deadline.set")
    assert event.actor == lead and event.after["hours"] == 4.0
    # Setting the same scope again replaces it.
    client.post("/console/deadlines/", {"agent": "law-bot", "domain": "legal", "hours": "2"})
    rule = Deadline.objects.get()
    assert (rule.hours, rule.working_hours) == (2, False)
    page = client.get("/console/deadlines/")
    assert f'id="deadline-{rule.pk}"' in page.content.decode()
    client.post(f"/console/deadlines/{rule.pk}/remove")
    assert not Deadline.objects.exists()
    assert AuditEvent.objects.filter(action="deadline.removed").count() == 1


@pytest.mark.django_db
def test_it_refuses_a_deadline_without_a_scope(client, lead):
    client.force_login(lead)
    response = client.post("/console/deadlines/", {"hours": "4"})
    assert response.status_code == 400
    assert not Deadline.objects.exists()


@pytest.mark.django_db
def test_it_keeps_reviewers_out(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/console/deadlines/").status_code == 403
    assert client.post("/console/deadlines/", {"domain": "x", "hours": "1"}).status_code == 403


@pytest.mark.django_db
def test_it_shows_due_times_in_the_browser_and_sorts_by_them(
    client, lead, law_bot, django_assert_max_num_queries
):
    now = datetime.now(UTC)
    late = factories.ReviewItemFactory(
        interaction__agent=law_bot, due_at=now - timedelta(hours=3, minutes=5)
    )
    soon = factories.ReviewItemFactory(interaction__agent=law_bot, due_at=now + timedelta(hours=2))
    factories.ReviewItemFactory(interaction__agent=law_bot)  # no deadline
    client.force_login(lead)
    with django_assert_max_num_queries(12):
        body = client.get("/console/", {"sort": "due"}).content.decode()
    assert body.index(f'id="item-{late.pk}"') < body.index(f'id="item-{soon.pk}"')
    assert body.count('class="row-link"') == 2  # "due" lists the items with a deadline
    assert "3 h overdue" in body and "in 2 h" in body
    item_page = client.get(f"/console/items/{late.pk}/").content.decode()
    assert 'id="item-due"' in item_page and "3 h overdue" in item_page
