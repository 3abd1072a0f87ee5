"""Logging out of an SSO session ends the provider's session too (RP-initiated logout)."""

import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.sso.conftest import OUR_CALLBACK, OUR_LOGIN
from tests.sso.support import OidcProvider

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_it_sends_an_sso_logout_to_the_providers_end_session_endpoint(client, sign_in, sso):
    with httpx.Client() as browser:
        sign_in("alice", browser=browser)
        id_token = client.session["oidc_id_token"]

        response = client.post("/accounts/logout/")

        assert response.status_code == 302
        target = urlsplit(response["Location"])
        assert (
            f"{target.scheme}://{target.netloc}{target.path}"
            == (sso.discovery()["end_session_endpoint"])
        )
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        assert query == {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": OUR_LOGIN,
            "client_id": "coachdesk",
        }
        assert not client.get("/accounts/tokens/").wsgi_request.user.is_authenticated

        # The provider takes the request (hint and return address checked) and, confirmed,
        # ends its session and sends the browser back to our login page.
        confirm = browser.get(response["Location"])
        assert confirm.status_code == 200, confirm.text[:1000]
        form = re.search(r'<form[^>]*id="op.logoutForm"[^>]*action="([^"]+)"', confirm.text)
        fields = dict(
            re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', confirm.text)
        )
        done = browser.post(
            urljoin(str(confirm.url), html.unescape(form.group(1))),
            data={**fields, "logout": "yes"},
        )
        assert done.is_redirect
        assert done.headers["location"] == OUR_LOGIN
        assert "_session" not in {c.name for c in browser.cookies.jar if c.value}


@pytest.fixture
def provider_without_logout(accounts):
    """A second real provider, without RP-initiated logout (no end_session_endpoint)."""
    provider = OidcProvider(
        accounts_path=accounts.path,
        redirect_uris=[OUR_CALLBACK],
        post_logout_redirect_uris=[OUR_LOGIN],
        rp_logout=False,
    ).start()
    yield provider
    provider.stop()


def test_it_logs_out_locally_only_when_the_provider_has_no_end_session(
    client, sign_in, settings, provider_without_logout
):
    settings.OIDC_ISSUER = provider_without_logout.issuer
    assert "end_session_endpoint" not in provider_without_logout.discovery()
    sign_in("alice", provider=provider_without_logout)
    assert client.session["oidc_id_token"]

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert not client.get("/accounts/tokens/").wsgi_request.user.is_authenticated


def test_it_logs_a_password_session_out_locally(client, sso, reviewer):
    client.force_login(reviewer)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert not client.get("/accounts/tokens/").wsgi_request.user.is_authenticated


def test_it_takes_logout_by_post_only(client, sso, reviewer):
    client.force_login(reviewer)

    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/accounts/tokens/").wsgi_request.user.is_authenticated
