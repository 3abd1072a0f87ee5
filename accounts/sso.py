"""Single sign-on with OpenID Connect (mozilla-django-oidc): the provider and the backend.

A login goes: /oidc/authenticate/ → the provider's login page → /oidc/callback/ (the code
flow with PKCE, state and nonce: mozilla-django-oidc) → `OidcBackend`, which checks the ID
token (signature, issuer, audience, expiry: the library itself checks only the signature and
expiry), reads the userinfo and calls `sso_login` (accounts/sso_services.py: users keyed by
the provider's (issuer, subject), roles mapped from a claim on every login).

Everything is configured by the environment (config/settings.py, "Single sign-on"); with
OIDC_ISSUER empty the backend answers None to everything and the SSO pages are 404s.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.shortcuts import resolve_url
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.roles import RoleAwareBackend
from accounts.sso_services import SsoRefused, sso_login

if TYPE_CHECKING:
    from django.http import HttpRequest

log = logging.getLogger(__name__)

# The discovery document is fetched once per process and kept this long (a provider that
# moves its endpoints is picked up without a restart).
DISCOVERY_SECONDS = 3600


class SsoUnavailable(Exception):
    """The provider's discovery document could not be read (down, or misconfigured)."""


def sso_enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


# --- provider configuration ---------------------------------------------------------------

_discovered: dict[str, tuple[float, dict]] = {}
_discovery_lock = threading.Lock()

# mozilla-django-oidc's endpoint settings → the discovery document's keys.
_ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def discovery() -> dict:
    """The issuer's discovery document (cached per issuer for DISCOVERY_SECONDS). Raises
    SsoUnavailable when it cannot be read or names another issuer (OpenID Connect Discovery
    §4.3: a document for another issuer must not be used)."""
    issuer = settings.OIDC_ISSUER
    cached = _discovered.get(issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_SECONDS:
        return cached[1]
    with _discovery_lock:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise SsoUnavailable(f"{url}: {exc}") from None
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            raise SsoUnavailable(f"{url} is not the discovery document of {issuer}")
        _discovered[issuer] = (time.monotonic(), document)
        return document


def sso_setting(name: str, *default: Any) -> Any:
    """mozilla-django-oidc's `get_settings`: an endpoint setting left empty is read from the
    discovery document; everything else from the settings."""
    if name in _ENDPOINTS:
        explicit = getattr(settings, name, "")
        if explicit:
            return explicit
        value = discovery().get(_ENDPOINTS[name])
        if not value:
            raise SsoUnavailable(f"the provider's discovery document has no {_ENDPOINTS[name]}")
        return value
    if default:
        return getattr(settings, name, default[0])
    return getattr(settings, name)


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where logging out sends the browser to end the provider's session too (RP-initiated
    logout, with the ID token of this session as hint), or None for a local logout only:
    no SSO session, or a provider without an end_session_endpoint (or not answering: a
    logout must never fail)."""
    id_token = request.session.get("oidc_id_token")
    if not sso_enabled() or not id_token:
        return None
    endpoint: str | None = settings.OIDC_OP_LOGOUT_ENDPOINT
    if not endpoint:
        try:
            endpoint = discovery().get("end_session_endpoint")
        except SsoUnavailable as exc:
            log.warning("local logout only, the provider does not answer: %s", exc)
            return None
    if not endpoint:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(
                resolve_url(settings.LOGOUT_REDIRECT_URL)
            ),
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def axes_whitelisted(request: HttpRequest, credentials: dict | None) -> bool:
    """AXES_WHITELIST_CALLABLE: the SSO callback (the only authenticate() call with a nonce)
    is no password guess. Counted, its failures would lock every SSO user behind the same
    address out under the empty username; the provider throttles its own login."""
    return credentials is not None and "nonce" in credentials


# --- the backend -----------------------------------------------------------------------------


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with the ID token checks it leaves out (audience,
    issuer, authorized party), endpoints from discovery, and users keyed by (issuer, sub).

    Django makes a backend per authenticate() call, password logins included: nothing here
    reads the provider until a callback actually arrives.
    """

    def __init__(self, *args, **kwargs) -> None:
        # Not the library's __init__: it reads (here: discovers) every endpoint up front.
        self.UserModel = get_user_model()

    get_settings = staticmethod(sso_setting)

    OIDC_RP_IDP_SIGN_KEY = None  # the keys come from the provider's JWKS

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 (the library's attribute names)
        return sso_setting("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return sso_setting("OIDC_OP_USER_ENDPOINT")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return sso_setting("OIDC_OP_JWKS_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:  # noqa: N802
        return settings.OIDC_RP_CLIENT_SECRET

    @property
    def OIDC_RP_SIGN_ALGO(self) -> str:  # noqa: N802
        return settings.OIDC_RP_SIGN_ALGO

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce; a password login (username, password) or an
        # SSO login with SSO off is not ours.
        if request is None or not sso_enabled() or "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, SsoUnavailable) as exc:
            # The token exchange failed (a reused or expired code, the provider down).
            log.warning("SSO login failed at the provider: %s", exc)
            request.sso_refusal = (
                f"{settings.OIDC_PROVIDER_NAME} did not complete the sign-in. Please try again."
            )
            return None

    def _header(self, token) -> dict:
        """The token's header, if its algorithm is the configured one: never the token's own
        choice ("none", or HS256 with the public key as secret)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from None
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"ID token refused: alg {header.get('alg')!r}")
        return header

    def retrieve_matching_jwk(self, token):
        # The library reads the header's kid unchecked (a KeyError, a 500, without one).
        if "kid" not in self._header(token) and self.get_settings("OIDC_VERIFY_KID", True):
            raise SuspiciousOperation("ID token refused: no kid")
        return super().retrieve_matching_jwk(token)

    def _verify_jws(self, payload, key):
        """The ID token's signature, issuer, audience and lifetime (OpenID Connect Core
        §3.1.3.7); anything wrong is a SuspiciousOperation (no user is logged in)."""
        self._header(payload)
        algorithm = self.OIDC_RP_SIGN_ALGO
        client_id = self.OIDC_RP_CLIENT_ID
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[algorithm],
                audience=client_id,
                issuer=settings.OIDC_ISSUER,
                leeway=settings.OIDC_LEEWAY_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        # Several audiences: the token must have been issued to us (azp); one: azp, if
        # present, must still be us.
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
            raise SuspiciousOperation("ID token refused: issued to another party (azp)")
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:
            # Core §5.3.2: userinfo about another subject than the ID token is not used.
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        # Some providers put groups in the ID token only, others in userinfo only.
        claims = {**payload, **userinfo}
        try:
            return sso_login(issuer=payload["iss"], subject=payload["sub"], claims=claims)
        except SsoRefused as exc:
            log.info("SSO login refused for %s at %s: %s", payload["sub"], payload["iss"], exc)
            self.request.sso_refusal = str(exc)
            return None

    def get_user(self, user_id):
        # The session's user of every request: with its roles and pool in one query.
        return RoleAwareBackend().get_user(user_id)
