"""Reads of the console: an item's audit trail, the pools."""

import pytest

from console import selectors
from tests.factories import AgentFactory, AuditEventFactory, ReviewerFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db


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
