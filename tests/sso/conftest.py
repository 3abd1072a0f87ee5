"""Single sign-on against a real OpenID Connect provider (tests/sso/support.py), started once
per session on loopback; Django's test client plays the browser on our side, httpx on the
provider's (its login and consent pages), and our backend talks to the provider over HTTP."""

import copy
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from accounts import sso as sso_module
from tests.sso.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    DOMAINS_CLAIM,
    ROLE_MAP,
    Accounts,
    OidcProvider,
    provider_required,
)

OUR_CALLBACK = "http://testserver/oidc/callback/"
OUR_LOGIN = "http://testserver/accounts/login/"

ACCOUNTS = {
    "alice": {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "preferred_username": "alice",
        "groups": ["coachdesk-reviewers", "book-club"],
        DOMAINS_CLAIM: ["support", "legal"],
    },
    "bob": {
        "email": "bob@example.com",
        "email_verified": True,
        "preferred_username": "bob",
        "groups": ["coachdesk-admins"],
    },
    "carol": {
        "email": "carol@example.com",
        "email_verified": True,
        "preferred_username": "carol",
        "groups": ["marketing"],
    },
}


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    provider_required()
    accounts = Accounts(tmp_path_factory.mktemp("oidc") / "accounts.json")
    provider = OidcProvider(
        accounts_path=accounts.path,
        redirect_uris=[OUR_CALLBACK],
        post_logout_redirect_uris=[OUR_LOGIN],
    ).start()
    provider.accounts = accounts
    yield provider
    provider.stop()


@pytest.fixture
def accounts(oidc_provider) -> Accounts:
    oidc_provider.accounts.reset(copy.deepcopy(ACCOUNTS))
    return oidc_provider.accounts


@pytest.fixture
def sso(settings, oidc_provider, accounts):
    """SSO configured against the test provider, as the environment would configure it."""
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ROLES_CLAIM = "groups"
    settings.OIDC_ROLE_MAP = dict(ROLE_MAP)
    settings.OIDC_DOMAINS_CLAIM = DOMAINS_CLAIM
    settings.OIDC_LINK_BY_EMAIL = False
    settings.PASSWORD_LOGIN = True
    sso_module._discovered.clear()
    return oidc_provider


@pytest.fixture
def sign_in(client, sso):
    """sign_in("alice") runs the whole code flow for that provider account: our
    /oidc/authenticate/, the provider's login and consent pages, our callback. Returns our
    callback's response; `browser` (httpx) keeps the provider's cookies between calls."""

    def run(
        login: str,
        *,
        next_url: str = "/",
        browser: httpx.Client | None = None,
        provider: OidcProvider | None = None,
    ):
        start = client.get("/oidc/authenticate/", {"next": next_url})
        assert start.status_code == 302, start
        own = browser is None
        browser = browser or httpx.Client()
        try:
            back = (provider or sso).sign_in(browser, start["Location"], login)
        finally:
            if own:
                browser.close()
        parts = urlsplit(back)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == OUR_CALLBACK, back
        return client.get(parts.path, dict(parse_qsl(parts.query)))

    return run
