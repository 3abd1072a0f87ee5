"""PASSWORD_LOGIN off: SSO only on the pages; API tokens keep working."""

import pytest

from accounts.services import token_create
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

PASSWORD = "pw-for-tests"  # tests/factories.UserFactory


@pytest.fixture
def sso_only(settings, sso):
    settings.PASSWORD_LOGIN = False
    return sso


def test_it_shows_only_the_sso_button(client, sso_only):
    page = client.get("/accounts/login/").content.decode()

    assert "Sign in with Test IdP" in page
    assert 'name="password"' not in page
    assert "Forgot your password?" not in page


def test_it_refuses_a_password_login(client, sso_only, reviewer):
    response = client.post("/accounts/login/", {"username": "rita", "password": PASSWORD})

    assert response.status_code == 403
    assert "Password sign-in is turned off" in response.content.decode()
    assert not client.get("/accounts/tokens/").wsgi_request.user.is_authenticated


def test_it_still_takes_a_password_login_while_on(client, sso, reviewer):
    response = client.post("/accounts/login/", {"username": "rita", "password": PASSWORD})

    assert response.status_code == 302
    assert client.get("/accounts/tokens/").wsgi_request.user == reviewer


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/some-token/",
        "/accounts/reset/done/",
    ],
)
def test_it_turns_the_password_reset_pages_off(client, sso_only, path):
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "rita@example.com"}).status_code == 404


def test_it_keeps_api_tokens_working(client, sso_only, api_client):
    AgentFactory(slug="support-bot", domain="support")
    password_user = UserFactory(username="rita", roles=["reviewer"], domains=["support"])

    response = api_client(password_user).get("/api/v1/agents/support-bot/rubric")

    assert response.status_code == 200
    assert response.json()["agent"] == "support-bot"


def test_it_keeps_api_tokens_of_sso_users_working(client, sso_only, sign_in, api_client):
    AgentFactory(slug="support-bot", domain="support")
    sign_in("alice")
    alice = client.get("/accounts/tokens/").wsgi_request.user
    client.logout()
    _, secret = token_create(user=alice, name="a script")

    response = api_client(secret=secret).get("/api/v1/agents/support-bot/rubric")

    assert response.status_code == 200
    assert (
        api_client(secret="cd_not-a-token").get("/api/v1/agents/support-bot/rubric").status_code
        == 401
    )
