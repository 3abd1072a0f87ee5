"""Signing in through the provider: users made on first login, roles and domains from claims
on every login, refusals with a page that says why."""

import pytest
from axes.models import AccessAttempt, AccessLog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.models import Identity, ReviewerProfile
from accounts.roles import user_roles
from core.models import AuditEvent
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

User = get_user_model()


def signed_in_user(client):
    """The user of the test client's session, as the next request loads it."""
    return client.get("/").wsgi_request.user


def test_it_creates_the_user_with_the_mapped_role_on_first_login(client, sign_in, sso):
    response = sign_in("alice", next_url="/accounts/tokens/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/tokens/"
    user = signed_in_user(client)
    assert user.is_authenticated and user.username == "alice"
    assert (user.email, user.first_name, user.last_name) == (
        "alice@example.com",
        "Alice",
        "Example",
    )
    assert user_roles(user) == {"reviewer"}  # book-club maps to nothing
    assert not user.has_usable_password()
    identity = Identity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (sso.issuer, "alice")
    assert identity.last_login_at is not None
    events = AuditEvent.objects.filter(target_type="user", target_id=user.pk)
    created = events.get(action="sso.user_created")
    assert created.after == {"username": "alice", "issuer": sso.issuer, "subject": "alice"}
    assert events.get(action="sso.roles_changed").after == {"roles": ["reviewer"]}
    assert AccessLog.objects.filter(username="alice").count() == 1  # django-axes' sign-in log


def test_it_shows_the_mapped_role_on_the_page_after_login(client, sign_in):
    sign_in("bob")

    page = client.get("/accounts/tokens/").content.decode()

    assert 'bob <span class="badge">admin</span>' in page
    assert "Console" in page


def test_it_changes_the_role_when_the_group_claim_changed_at_next_login(client, sign_in, accounts):
    sign_in("alice")
    alice = User.objects.get(username="alice")
    client.logout()
    accounts.set("alice", groups=["coachdesk-ml", "coachdesk-admins"])

    sign_in("alice")

    user = signed_in_user(client)
    assert user.pk == alice.pk  # the same user: keyed by (issuer, sub)
    assert user_roles(user) == {"ml", "admin"}
    change = AuditEvent.objects.filter(action="sso.roles_changed", target_id=alice.pk).latest("pk")
    assert (change.before, change.after) == ({"roles": ["reviewer"]}, {"roles": ["admin", "ml"]})
    assert User.objects.filter(identities__isnull=False).count() == 1


def test_it_leaves_roles_sso_does_not_map_alone(client, sign_in):
    sign_in("alice")
    alice = User.objects.get(username="alice")
    alice.groups.add(Group.objects.get_or_create(name="agent")[0])
    client.logout()

    sign_in("alice")

    assert user_roles(signed_in_user(client)) == {"reviewer", "agent"}


def test_it_takes_a_reviewers_domains_from_the_claim(client, sign_in, accounts):
    sign_in("alice")
    alice = User.objects.get(username="alice")
    assert ReviewerProfile.objects.get(user=alice).domains == ["legal", "support"]
    client.logout()
    accounts.set("alice", coachdesk_domains=["billing"])

    sign_in("alice")

    assert ReviewerProfile.objects.get(user=alice).domains == ["billing"]
    change = AuditEvent.objects.filter(action="sso.domains_changed").latest("pk")
    assert (change.before, change.after) == (
        {"domains": ["legal", "support"]},
        {"domains": ["billing"]},
    )


def test_it_keeps_the_domains_when_the_claim_is_absent(client, sign_in, accounts, settings):
    sign_in("alice")
    alice = User.objects.get(username="alice")
    client.logout()
    ReviewerProfile.objects.filter(user=alice).update(domains=["set-in-the-console"])
    accounts.set("alice", coachdesk_domains=None)
    settings.OIDC_DOMAINS_CLAIM = "not_sent_by_the_provider"

    sign_in("alice")

    assert ReviewerProfile.objects.get(user=alice).domains == ["set-in-the-console"]


def test_it_refuses_a_user_without_a_mapped_role_with_a_page(client, sign_in):
    response = sign_in("carol")

    assert response.status_code == 403
    page = response.content.decode()
    assert "Your account at Test IdP gives you no Coachdesk role" in page
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(email="carol@example.com").exists()
    # An SSO refusal is no password guess: nothing counts towards a lockout.
    assert not AccessAttempt.objects.exists()


def test_it_removes_the_roles_of_a_user_whose_groups_were_all_taken_away(client, sign_in, accounts):
    sign_in("alice")
    alice = User.objects.get(username="alice")
    client.logout()
    accounts.set("alice", groups=[])

    response = sign_in("alice")

    assert response.status_code == 403
    assert not signed_in_user(client).is_authenticated
    assert user_roles(User.objects.get(pk=alice.pk)) == set()
    change = AuditEvent.objects.filter(action="sso.roles_changed").latest("pk")
    assert change.after == {"roles": []}


def test_it_refuses_a_disabled_user(client, sign_in):
    sign_in("alice")
    client.logout()
    User.objects.filter(username="alice").update(is_active=False)

    response = sign_in("alice")

    assert response.status_code == 403
    assert "disabled" in response.content.decode()
    assert not signed_in_user(client).is_authenticated


def test_it_does_not_take_over_a_user_with_the_same_email(client, sign_in):
    existing = UserFactory(username="alice", email="alice@example.com", roles=["admin"])

    sign_in("alice")

    user = signed_in_user(client)
    assert user.pk != existing.pk
    assert user.username.startswith("alice-")
    assert user_roles(user) == {"reviewer"}
    assert not Identity.objects.filter(user=existing).exists()


def test_it_links_an_existing_user_by_verified_email_when_allowed(client, sign_in, settings):
    settings.OIDC_LINK_BY_EMAIL = True
    existing = UserFactory(username="alice.local", email="Alice@Example.com", roles=["admin"])

    sign_in("alice")

    user = signed_in_user(client)
    assert user.pk == existing.pk
    assert user_roles(user) == {"reviewer"}  # the provider decides the roles it maps
    assert AuditEvent.objects.filter(action="sso.identity_linked", target_id=existing.pk).exists()


def test_it_does_not_link_by_an_unverified_email(client, sign_in, settings, accounts):
    settings.OIDC_LINK_BY_EMAIL = True
    accounts.set("alice", email_verified=False)
    existing = UserFactory(username="alice.local", email="alice@example.com", roles=["admin"])

    sign_in("alice")

    assert signed_in_user(client).pk != existing.pk


def test_it_answers_a_callback_without_a_started_login_with_a_page(client, sso):
    response = client.get("/oidc/callback/", {"code": "made-up", "state": "made-up"})

    assert response.status_code == 403
    assert "Please start again" in response.content.decode()
    assert not signed_in_user(client).is_authenticated


def test_it_says_the_provider_does_not_answer(client, sso, settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there

    response = client.get("/oidc/authenticate/")

    assert response.status_code == 503
    assert "Test IdP does not answer right now" in response.content.decode()


def test_it_has_no_sso_pages_while_sso_is_off(client, settings):
    settings.OIDC_ISSUER = ""

    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/", {"code": "c", "state": "s"}).status_code == 404
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()


def test_it_offers_the_provider_on_the_login_page(client, sso):
    page = client.get("/accounts/login/", {"next": "/console/"}).content.decode()

    assert 'href="/oidc/authenticate/?next=/console/"' in page
    assert "Sign in with Test IdP" in page
    assert 'name="password"' in page  # password login still on


def test_it_reads_a_group_claim_sent_as_one_string(client, sign_in, accounts):
    accounts.set("alice", groups="coachdesk-ml, coachdesk-reviewers")

    sign_in("alice")

    assert user_roles(signed_in_user(client)) == {"ml", "reviewer"}


def test_it_keeps_the_name_when_the_provider_sends_none(client, sign_in, accounts):
    sign_in("alice")
    client.logout()
    accounts.set("alice", given_name=None, family_name=None, name=None)

    sign_in("alice")

    user = signed_in_user(client)
    assert (user.first_name, user.last_name) == ("Alice", "Example")


def test_a_superuser_sees_and_can_unlink_identities_in_djangos_admin(client, sign_in, sso):
    sign_in("alice")
    identity = Identity.objects.get(subject="alice")
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client.force_login(root)

    listing = client.get("/admin/accounts/identity/")
    deleted = client.post(f"/admin/accounts/identity/{identity.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and b"alice" in listing.content
    assert deleted.status_code == 302
    assert not Identity.objects.filter(pk=identity.pk).exists()
