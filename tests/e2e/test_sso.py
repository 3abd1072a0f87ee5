"""Single sign-on in real Chromium: "Sign in with …" on our login page, the provider's own
login and consent pages (a real OpenID Connect provider on loopback, tests/sso/support.py),
back on Coachdesk signed in with the mapped role; logging out ends the provider's session."""

import re

import pytest
from playwright.sync_api import expect

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

pytestmark = pytest.mark.usefixtures("transactional_db")


@pytest.fixture
def provider(live_server, tmp_path):
    provider_required()
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.set(
        "alice",
        email="alice@example.com",
        email_verified=True,
        preferred_username="alice",
        groups=["coachdesk-reviewers"],
        **{DOMAINS_CLAIM: ["support"]},
    )
    started = OidcProvider(
        accounts_path=accounts.path,
        redirect_uris=[f"{live_server.url}/oidc/callback/"],
        post_logout_redirect_uris=[f"{live_server.url}/accounts/login/"],
    ).start()
    yield started
    started.stop()


@pytest.fixture
def sso(settings, provider):
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_PROVIDER_NAME = "Test IdP"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ROLE_MAP = dict(ROLE_MAP)
    settings.OIDC_DOMAINS_CLAIM = DOMAINS_CLAIM
    settings.PASSWORD_LOGIN = False
    # What config/settings.py adds for OIDC_ISSUER: the logout form may go on to it.
    csp = settings.SECURE_CSP
    settings.SECURE_CSP = {**csp, "form-action": [*csp["form-action"], provider.issuer]}
    sso_module._discovered.clear()
    return provider


def test_it_signs_in_through_the_providers_login_page(page, live_server, sso):
    page.goto(f"{live_server.url}/accounts/login/?next=/queue/")
    expect(page.locator("#id_password")).to_have_count(0)  # SSO only
    page.get_by_role("link", name="Sign in with Test IdP").click()

    # The provider's own pages: sign in, then allow Coachdesk.
    expect(page).to_have_url(re.compile(rf"^{re.escape(sso.issuer)}/interaction/"))
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", "any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(f"{live_server.url}/queue/")
    expect(page.locator(".who")).to_contain_text("alice")
    expect(page.locator(".who .badge")).to_have_text(["reviewer"])
    expect(page.get_by_role("link", name="My queue")).to_be_visible()

    # Logging out here ends the provider's session too, and comes back to our login page.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(sso.issuer)}/session/end"))
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("link", name="Sign in with Test IdP")).to_be_visible()
