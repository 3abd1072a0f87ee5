"""The reviewer pools pages: every pool, one pool (add and remove a reviewer), a reviewer's
settings."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import ReviewerProfile
from core.models import AuditEvent
from tests.factories import AgentFactory, ReviewerFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, lead):
    client.force_login(lead)
    return client


def domains_of(user) -> list[str]:
    return ReviewerProfile.objects.get(user=user).domains


# --- every pool -------------------------------------------------------------------------------


def test_it_lists_the_pools_of_reviewers_agents_and_waiting_items(admin_client, reviewer):
    ReviewerFactory(username="lena", domains=["legal", "support"])
    AgentFactory(slug="shop-recs", domain="retail")
    ReviewItemFactory.create_batch(3, interaction__domain="billing")
    response = admin_client.get("/console/pools/")
    pools = {p.domain: p for p in response.context["pools"]}
    assert list(pools) == ["billing", "legal", "retail", "support"]
    assert [u.username for u in pools["support"].members] == ["lena", "rita"]
    assert (pools["billing"].waiting, pools["billing"].members) == (3, [])
    assert pools["retail"].agents == ["shop-recs"]
    html = response.content.decode()
    assert '<a href="/console/pools/billing/" dir="auto">billing</a>' in html
    assert '<span class="error">nobody</span>' in html


def test_it_keeps_the_pools_page_queries_flat(admin_client, reviewer, django_assert_num_queries):
    with CaptureQueriesContext(connection) as few:
        admin_client.get("/console/pools/")
    for i in range(8):
        ReviewerFactory(username=f"r{i}", domains=[f"d{i}", "support"])
        AgentFactory(slug=f"bot-{i}", domain=f"d{i}")
        ReviewItemFactory(interaction__domain=f"d{i}")
    with django_assert_num_queries(len(few)):
        response = admin_client.get("/console/pools/")
    assert len(response.context["pools"]) == 9


def test_it_opens_a_pool_by_its_domain(admin_client):
    response = admin_client.get("/console/pools/?domain=+legal+")
    assert response.status_code == 302 and response["Location"] == "/console/pools/legal/"


def test_it_shows_the_pools_whatever_else_the_query_string_holds(admin_client):
    assert admin_client.get("/console/pools/?from=menu").status_code == 200


def test_it_asks_for_the_domain_of_a_pool_to_open(admin_client):
    response = admin_client.get("/console/pools/?domain=")
    html = response.content.decode()
    assert response.status_code == 400
    assert '<ul class="field-errors" id="id_domain_error"><li>Give the domain' in html
    assert 'aria-invalid="true"' in html


# --- one pool -------------------------------------------------------------------------------


def test_it_shows_a_pool_with_its_members_and_who_may_join(admin_client, reviewer):
    ReviewerFactory(username="lena", domains=["legal"])
    UserFactory(username="mo", roles=["ml"])
    html = admin_client.get("/console/pools/support/").content.decode()
    assert 'Reviewers in this pool <span class="muted">(1)</span>' in html
    assert 'name="reviewer" value="rita"' in html  # rita's Remove button
    assert '<label for="id_reviewer">Reviewer</label>' in html
    assert '<option value="lena">lena</option>' in html
    assert 'value="rita">' not in html.split('id="add-title"')[1]  # a member is not offered
    # Not a reviewer (as an option: a bare "mo" may turn up in the random CSRF token).
    assert 'value="mo"' not in html.split('id="add-title"')[1]


def test_it_adds_a_reviewer_to_a_pool(admin_client, reviewer, lead):
    response = admin_client.post(
        "/console/pools/add", {"domain": "legal", "reviewer": "rita"}, follow=True
    )
    assert response.redirect_chain == [("/console/pools/legal/", 302)]
    assert '<li class="msg-success">Added rita to the legal pool.</li>' in response.content.decode()
    assert domains_of(reviewer) == ["legal", "support"]
    event = AuditEvent.objects.get(action="pool.member_added")
    assert (event.actor, event.target_id) == (lead, reviewer.pk)
    assert event.after == {"domains": ["legal", "support"], "pool": "legal"}


def test_it_asks_which_reviewer_to_add(admin_client, reviewer):
    response = admin_client.post("/console/pools/add", {"domain": "legal", "reviewer": ""})
    html = response.content.decode()
    assert response.status_code == 400
    assert (
        '<ul class="field-errors" id="id_reviewer_error"><li>Choose the reviewer to add.</li>'
        in html
    )
    assert domains_of(reviewer) == ["support"] and not AuditEvent.objects.exists()


def test_it_says_when_the_reviewer_is_in_the_pool_already(admin_client, reviewer):
    response = admin_client.post("/console/pools/add", {"domain": "support", "reviewer": "rita"})
    assert response.status_code == 400
    assert "<li>rita is already in the support pool.</li>" in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_it_adds_only_reviewers_to_a_pool(admin_client, ml):
    response = admin_client.post("/console/pools/add", {"domain": "legal", "reviewer": "mo"})
    assert response.status_code == 400
    assert "<li>There is no reviewer named mo.</li>" in response.content.decode()
    assert not ReviewerProfile.objects.filter(user=ml).exists()


def test_it_removes_a_reviewer_from_a_pool(admin_client, reviewer):
    reviewer.reviewer_profile.domains = ["legal", "support"]
    reviewer.reviewer_profile.save()
    response = admin_client.post(
        "/console/pools/remove", {"domain": "legal", "reviewer": "rita"}, follow=True
    )
    assert response.redirect_chain == [("/console/pools/legal/", 302)]
    html = response.content.decode()
    assert '<li class="msg-success">Removed rita from the legal pool.</li>' in html
    assert domains_of(reviewer) == ["support"]
    event = AuditEvent.objects.get(action="pool.member_removed")
    assert event.before == {"domains": ["legal", "support"]}


def test_it_says_which_assigned_items_stay_with_a_removed_reviewer(admin_client, reviewer):
    ReviewItemFactory.create_batch(2, interaction__domain="support", assigned_to=reviewer)
    ReviewItemFactory(interaction__domain="support", assigned_to=reviewer, done=True)
    response = admin_client.post(
        "/console/pools/remove", {"domain": "support", "reviewer": "rita"}, follow=True
    )
    assert "2 open support items stay assigned to them" in response.content.decode()


def test_it_says_when_the_reviewer_is_not_in_the_pool(admin_client, reviewer):
    response = admin_client.post("/console/pools/remove", {"domain": "legal", "reviewer": "rita"})
    assert response.status_code == 400
    assert "rita is not in the legal pool." in response.content.decode()
    assert domains_of(reviewer) == ["support"] and not AuditEvent.objects.exists()


def test_it_refuses_a_pool_change_without_a_domain(admin_client, reviewer):
    response = admin_client.post("/console/pools/add", {"reviewer": "rita"}, follow=True)
    assert response.redirect_chain == [("/console/pools/", 302)]
    assert "That pool cannot be changed: Give the domain" in response.content.decode()
    assert domains_of(reviewer) == ["support"]


def test_it_handles_a_domain_that_is_not_a_slug(admin_client, reviewer):
    response = admin_client.post(
        "/console/pools/add", {"domain": "EU legal/tax", "reviewer": "rita"}
    )
    assert response["Location"] == "/console/pools/EU%20legal/tax/"
    assert admin_client.get(response["Location"]).context["pool"].domain == "EU legal/tax"
    assert domains_of(reviewer) == ["EU legal/tax", "support"]


@pytest.mark.parametrize("path", ["/console/pools/add", "/console/pools/remove"])
def test_it_refuses_pool_changes_to_reviewers(client, reviewer, path):
    client.force_login(reviewer)
    response = client.post(path, {"domain": "legal", "reviewer": "rita"})
    assert response.status_code == 403
    assert domains_of(reviewer) == ["support"]


def test_it_refuses_to_show_a_pool_change_form_on_get(admin_client):
    assert admin_client.get("/console/pools/add").status_code == 405


# --- a reviewer's settings ------------------------------------------------------------------


def test_it_offers_every_known_pool_as_a_box(admin_client, reviewer):
    AgentFactory(slug="legal-bot", domain="legal")
    html = admin_client.get(f"/console/reviewers/{reviewer.pk}/").content.decode()
    assert 'type="checkbox" name="domains" value="legal"' in html
    assert 'type="checkbox" name="domains" value="support" id="id_domains_1" checked' in html


def test_it_edits_a_reviewer_s_pool_settings(admin_client, reviewer):
    AgentFactory(slug="legal-bot", domain="legal")
    response = admin_client.post(
        f"/console/reviewers/{reviewer.pk}/",
        {"domains": ["legal", "support"], "daily_capacity": 50},
    )
    assert response.status_code == 302 and response["Location"] == "/console/pools/"
    profile = ReviewerProfile.objects.get(user=reviewer)
    assert (profile.domains, profile.daily_capacity, profile.active) == (
        ["legal", "support"],
        50,
        False,
    )
    assert AuditEvent.objects.filter(action="reviewer.updated", target_id=reviewer.pk).exists()


def test_it_explains_an_invalid_reviewer_setting_and_saves_nothing(admin_client, reviewer):
    response = admin_client.post(
        f"/console/reviewers/{reviewer.pk}/",
        {"domains": ["nowhere"], "daily_capacity": -1, "active": "on"},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert '<a href="#id_daily_capacity">Daily capacity</a>: Ensure this value' in html
    assert '<a href="#id_domains">Pools</a>: Select a valid choice. nowhere' in html
    assert domains_of(reviewer) == ["support"] and not AuditEvent.objects.exists()
