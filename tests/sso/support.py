"""A real OpenID Connect provider for the tests (tests/sso/provider: the certified
`oidc-provider` package on Node.js, installed by `make install`), and a scripted browser for
its built-in login and consent pages."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from tests.support import free_port

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
INSTALLED = PROVIDER_DIR / "node_modules" / ".installed"
CLIENT_ID, CLIENT_SECRET = "coachdesk", "coachdesk-test-secret"
OTHER_CLIENT_ID, OTHER_CLIENT_SECRET = "other-app", "other-app-secret"
OTHER_REDIRECT_URI = "http://127.0.0.1:9/other/callback"
DOMAINS_CLAIM = "coachdesk_domains"
ROLE_MAP = {
    "coachdesk-reviewers": "reviewer",
    "coachdesk-admins": "admin",
    "coachdesk-ml": "ml",
}


def provider_required() -> None:
    """Skips (fails with COACHDESK_REQUIRE_SERVICES=1) when node or the package is missing."""
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed"
    elif not INSTALLED.exists():
        problem = "the test OIDC provider is not installed (make install-sso)"
    if problem:
        if os.environ.get("COACHDESK_REQUIRE_SERVICES") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


class Accounts:
    """The provider's accounts file (login → claims): it reads it again on every lookup."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reset({})

    def reset(self, accounts: dict[str, dict]) -> None:
        self.path.write_text(json.dumps(accounts))

    def set(self, login: str, **claims) -> None:
        accounts = json.loads(self.path.read_text())
        accounts[login] = {**accounts.get(login, {}), **claims}
        self.path.write_text(json.dumps(accounts))


class OidcProvider:
    """`node provider.mjs <port>` on loopback; `start()` waits for its ready line."""

    def __init__(
        self,
        *,
        accounts_path: Path,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str],
        id_token_ttl: int = 60,
        rp_logout: bool = True,
    ) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "OIDC_TEST_ACCOUNTS": str(accounts_path),
            "OIDC_TEST_CLIENT_ID": CLIENT_ID,
            "OIDC_TEST_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_TEST_REDIRECT_URIS": ",".join(redirect_uris),
            "OIDC_TEST_POST_LOGOUT_REDIRECT_URIS": ",".join(post_logout_redirect_uris),
            "OIDC_TEST_OTHER_CLIENT_ID": OTHER_CLIENT_ID,
            "OIDC_TEST_OTHER_CLIENT_SECRET": OTHER_CLIENT_SECRET,
            "OIDC_TEST_OTHER_REDIRECT_URIS": OTHER_REDIRECT_URI,
            "OIDC_TEST_ID_TOKEN_TTL": str(id_token_ttl),
            "OIDC_TEST_DOMAINS_CLAIM": DOMAINS_CLAIM,
            "OIDC_TEST_RP_LOGOUT": "1" if rp_logout else "0",
        }
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []

    def start(self) -> OidcProvider:
        self.process = subprocess.Popen(
            [shutil.which("node") or "node", "provider.mjs", str(self.port)],
            cwd=PROVIDER_DIR,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith("oidc-provider ready"):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.stop()
            raise RuntimeError("the OIDC provider did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def discovery(self) -> dict:
        return httpx.get(f"{self.issuer}/.well-known/openid-configuration").json()

    # --- driving it as a browser would ----------------------------------------------------

    def sign_in(self, browser: httpx.Client, url: str, login: str) -> str:
        """Follows `url` (an authorization request) through the provider's login and consent
        pages as `login`; returns the address it finally sends the browser to (the client's
        redirect URI with the code, or an error)."""
        for _ in range(20):
            response = browser.get(url)
            while response.is_redirect:
                url = urljoin(url, response.headers["location"])
                if not url.startswith(self.issuer):
                    return url
                response = browser.get(url)
            assert response.status_code == 200, response.text[:2000]
            page = response.text
            action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page).group(1))
            prompt = re.search(r'name="prompt" value="(\w+)"', page).group(1)
            data = {"prompt": prompt}
            if prompt == "login":
                data |= {"login": login, "password": "any password: devInteractions"}
            response = browser.post(urljoin(url, action), data=data)
            assert response.is_redirect, response.text[:2000]
            url = urljoin(url, response.headers["location"])
            if not url.startswith(self.issuer):
                return url
        raise AssertionError("the provider never sent the browser back")

    def tokens(
        self,
        login: str,
        *,
        nonce: str,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        redirect_uri: str = "http://testserver/oidc/callback/",
    ) -> dict:
        """A real token response of the provider for `login`, issued to `client_id` (the
        code flow run by hand: authorize, sign in, consent, exchange the code)."""
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email profile groups",
            "state": "state-of-a-test",
            "nonce": nonce,
        }
        with httpx.Client() as browser:
            back = self.sign_in(browser, f"{self.issuer}/auth?{urlencode(params)}", login)
        code = parse_qs(urlsplit(back).query)["code"][0]
        response = httpx.post(
            self.discovery()["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        response.raise_for_status()
        return response.json()
