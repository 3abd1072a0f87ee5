"""Login, CSRF, and the API token pages (login throttling: test_login_throttle.py)."""

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_it_logs_in_and_follows_next(client, reviewer):
    response = client.post(
        "/accounts/login/?next=/accounts/tokens/",
        {"username": "rita", "password": "pw-for-tests", "next": "/accounts/tokens/"},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/tokens/"


def test_it_refuses_a_post_without_csrf_token(reviewer):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(reviewer)
    response = strict.post("/accounts/tokens/", {"name": "sneaky"})
    assert response.status_code == 403
    assert not ApiToken.objects.exists()


def test_it_shows_a_new_token_once_and_stores_its_hash(client, reviewer):
    client.force_login(reviewer)
    response = client.post("/accounts/tokens/", {"name": "my tool"})
    secret = response.context["secret"]
    assert secret.encode() in response.content
    token = ApiToken.objects.get()
    assert token.key_hash == ApiToken.hash_key(secret) and secret not in token.key_hash
    assert secret.encode() not in client.get("/accounts/tokens/").content


def test_it_revokes_a_token_so_the_api_refuses_it(client, api_client, pipeline):
    client.force_login(pipeline)
    secret = client.post("/accounts/tokens/", {"name": "ci"}).context["secret"]
    api = api_client(secret=secret)
    ok = api.post("/api/v1/interactions", [])
    assert ok.status_code == 200
    token = ApiToken.objects.get()
    client.post(f"/accounts/tokens/{token.pk}/revoke")
    token.refresh_from_db()
    assert token.revoked_at is not None
    refused = api.post("/api/v1/interactions", [])
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Unauthorized"}


def test_it_does_not_let_a_user_revoke_someone_elses_token(client, reviewer, pipeline):
    from accounts.services import token_create

    token, _ = token_create(user=pipeline, name="theirs")
    client.force_login(reviewer)
    assert client.post(f"/accounts/tokens/{token.pk}/revoke").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_sends_a_content_security_policy(client, reviewer):
    client.force_login(reviewer)
    policy = client.get("/accounts/tokens/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_it_creates_a_token_limited_to_agents_and_shows_its_scope(client, pipeline):
    client.force_login(pipeline)
    client.post("/accounts/tokens/", {"name": "ci", "agents": "support-bot, sales-bot"})
    assert ApiToken.objects.get().agent_slugs == ["sales-bot", "support-bot"]
    page = client.get("/accounts/tokens/").content.decode()
    assert "sales-bot, support-bot" in page


def test_it_refuses_a_token_for_more_agents_than_the_cap(client, pipeline):
    client.force_login(pipeline)
    agents = " ".join(f"bot-{n}" for n in range(101))
    response = client.post("/accounts/tokens/", {"name": "ci", "agents": agents}, follow=True)
    assert "Agents: 100 agents at most per token" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_it_counts_a_repeated_agent_once(client, pipeline):
    client.force_login(pipeline)
    agents = " ".join(["support-bot"] * 150 + ["sales-bot"])
    client.post("/accounts/tokens/", {"name": "ci", "agents": agents})
    assert ApiToken.objects.get().agent_slugs == ["sales-bot", "support-bot"]
