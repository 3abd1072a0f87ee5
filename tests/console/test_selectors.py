"""Reads of the console: the queue browser's rows, an item's audit trail, the pools."""

from datetime import timedelta

import pytest
from django.utils import timezone

from console import selectors
from tests.factories import AgentFactory, AuditEventFactory, ReviewerFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


def _page(f=selectors.QueueFilter()):  # noqa: B008 (frozen: a shared default is safe)
    return selectors.browser_page(selectors.browser_rows(f)[:50])


def test_it_works_out_every_cell_of_a_browser_row(reviewer, other_reviewer):
    now = timezone.now()
    item = ReviewItemFactory(
        claimed=True,
        claimed_by=other_reviewer,
        lease_expires_at=now + timedelta(minutes=15, seconds=30),
        assigned_to=reviewer,
        four_eyes=True,
        priority=-3,
        reason="audit_sample",
        interaction__agent=AgentFactory(slug="legal-bot"),
        interaction__domain="legal",
        interaction__confidence=0.125,
        interaction__created_at=now - timedelta(days=2, hours=3, minutes=1),
        interaction__input="Can I " + "x" * 300,
    )
    [row] = _page()
    assert row == {
        "pk": str(item.pk),
        "url": f"/console/items/{item.pk}/",
        "agent": "legal-bot",
        "domain": "legal",
        "preview": "Can I " + "x" * 194,  # 200 characters
        "reason": "Audit Sample",
        "status": "claimed",
        "status_label": "Claimed",
        "four_eyes": True,
        "priority": "-3",
        "confidence": "0.13",  # floatformat:2 rounds half up
        "age": "2\xa0days, 3\xa0hours",
        "assigned": "rita",
        "claimed_by": "oscar",
        "lease": "15\xa0minutes",
        "due": "",  # no deadline
        "due_relative": "",
        "overdue": False,
    }


def test_it_leaves_the_claim_cells_of_an_unclaimed_row_empty():
    ReviewItemFactory(interaction__confidence=0.5)
    [row] = _page()
    assert (row["assigned"], row["claimed_by"], row["lease"]) == ("", None, "")
    assert (row["reason"], row["status_label"], row["four_eyes"]) == (
        "Low Confidence",
        "Pending",
        False,
    )
    assert row["confidence"] == "0.50"


def test_it_reads_a_browser_page_in_two_queries(django_assert_num_queries):
    ReviewItemFactory.create_batch(3)
    rows = selectors.browser_rows(selectors.QueueFilter())[:50]
    with django_assert_num_queries(2):  # the rows, then their questions
        assert len(selectors.browser_page(rows)) == 3


def test_it_shows_no_rows_and_runs_no_query_for_unreadable_filters(django_assert_num_queries):
    ReviewItemFactory()
    with django_assert_num_queries(0):
        assert _page(None) == []


def test_it_gives_the_latest_events_of_an_item_oldest_first(lead):
    events = AuditEventFactory.create_batch(5, actor=lead, target_id=7)
    AuditEventFactory(actor=lead, target_id=8)
    AuditEventFactory(actor=lead, target_type="user", target_id=7)
    shown, older = selectors.item_audit_trail(7, limit=3)
    assert [e.pk for e in shown] == [e.pk for e in events[2:]]
    assert older is True
    assert selectors.item_audit_trail(7, limit=5)[1] is False


def test_it_finds_a_pool_for_every_domain_worked_on_or_routed_to(reviewer):
    away = ReviewerFactory(username="abe", domains=["legal"])
    away.reviewer_profile.active = False
    away.reviewer_profile.save()
    AgentFactory(slug="legal-bot", domain="legal", review_domains=["fraud"])
    ReviewItemFactory.create_batch(2, interaction__domain="legal")
    ReviewItemFactory(interaction__domain="legal", done=True)
    pools = {p.domain: p for p in selectors.pools()}
    assert sorted(pools) == ["fraud", "legal", "support"]
    legal = pools["legal"]
    assert ([u.username for u in legal.members], legal.active, legal.waiting) == (["abe"], 0, 2)
    assert pools["fraud"].agents == ["legal-bot"] and pools["fraud"].members == []
    assert pools["support"].active == 1


def test_it_offers_the_active_reviewers_outside_a_pool(reviewer):
    ReviewerFactory(username="lena", domains=["legal"])
    ReviewerFactory(username="gone", domains=["support"], is_active=False)
    pool, candidates = selectors.pool_detail("legal")
    assert [u.username for u in pool.members] == ["lena"]
    assert [u.username for u in candidates] == ["rita"]
    empty, everyone = selectors.pool_detail("nowhere")
    assert (empty.members, [u.username for u in everyone]) == ([], ["lena", "rita"])


def test_the_workload_shows_a_superuser_who_reviewed_as_in_no_pool_not_away(reviewer):
    from django.contrib.auth import get_user_model

    from tests.factories import ReviewFactory

    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "x" * 20)
    ReviewFactory(reviewer=boss)
    away = ReviewerFactory(username="abe", domains=["legal"])
    away.reviewer_profile.active = False
    away.reviewer_profile.save()

    rows = {r["username"]: r for r in selectors.reviewer_workload()}

    assert (rows["boss"]["pooled"], rows["boss"]["active"]) == (False, True)
    assert (rows["abe"]["pooled"], rows["abe"]["active"]) == (True, False)
    assert (rows[reviewer.username]["pooled"], rows[reviewer.username]["active"]) == (True, True)
