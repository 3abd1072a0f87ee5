"""Changing one's password, and resetting a forgotten one by email."""

import re

import pytest
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-new-Passphrase-42"


def logs_in(username, password) -> bool:
    client = Client()
    client.post("/accounts/login/", {"username": username, "password": password})
    return "_auth_user_id" in client.session


def test_it_links_the_login_page_to_the_password_reset(client):
    response = client.get("/accounts/login/")
    assert b'href="/accounts/password_reset/">Forgot your password?</a>' in response.content


def test_it_links_the_token_page_to_the_password_change(client, reviewer):
    client.force_login(reviewer)
    response = client.get("/accounts/tokens/")
    assert b'href="/accounts/password_change/">Change password</a>' in response.content


def test_it_resets_a_forgotten_password_through_the_emailed_link(client, reviewer, settings):
    form = client.get("/accounts/password_reset/")
    assert b"Reset your password" in form.content and b'class="card narrow"' in form.content
    sent = client.post("/accounts/password_reset/", {"email": "rita@example.com"})
    assert sent.status_code == 302 and sent["Location"] == "/accounts/password_reset/done/"
    assert b"Check your email" in client.get(sent["Location"]).content
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["rita@example.com"]
    assert mail.outbox[0].from_email == settings.DEFAULT_FROM_EMAIL
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    set_password = client.get(link, follow=True)
    assert b"Choose a new password" in set_password.content
    done = client.post(
        set_password.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert b"Your password has been set" in client.get(done["Location"]).content
    assert logs_in("rita", NEW_PASSWORD) and not logs_in("rita", "pw-for-tests")


def test_it_sends_no_mail_for_an_unknown_address(client, reviewer):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/accounts/password_reset/done/"  # no hint either way
    assert mail.outbox == []


def test_it_unlocks_a_locked_out_login_when_the_password_is_reset(client, reviewer, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        client.post("/accounts/login/", {"username": "rita", "password": "wrong"})
    client.post("/accounts/password_reset/", {"email": "rita@example.com"})
    link = re.search(r"(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    set_password = client.get(link, follow=True)
    client.post(
        set_password.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    response = client.post("/accounts/login/", {"username": "rita", "password": NEW_PASSWORD})
    assert response.status_code == 302


def test_it_changes_the_password_of_the_signed_in_user(client, reviewer):
    client.force_login(reviewer)
    form = client.get("/accounts/password_change/")
    assert b"Change your password" in form.content and b'class="card narrow"' in form.content
    wrong = client.post(
        "/accounts/password_change/",
        {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200 and b"Your old password was entered incorrectly" in (
        wrong.content
    )
    done = client.post(
        "/accounts/password_change/",
        {
            "old_password": "pw-for-tests",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/password_change/done/"
    assert b"Your password was changed" in client.get(done["Location"]).content
    assert "_auth_user_id" in client.session  # still signed in
    assert logs_in("rita", NEW_PASSWORD) and not logs_in("rita", "pw-for-tests")


def test_it_asks_for_a_login_before_changing_a_password(client):
    response = client.get("/accounts/password_change/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/password_change/"
