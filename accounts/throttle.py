"""How django-axes sees a login attempt: whose username, from which address.

Failures are counted per (username, client address) (settings: AXES_LOCKOUT_PARAMETERS), so
an attacker elsewhere cannot lock a user out and one person's typos do not lock out their
colleagues behind the same address.
"""

import unicodedata

from django.conf import settings
from django.http import HttpRequest


def login_username(request: HttpRequest, credentials: dict | None) -> str:
    """The username as authentication resolves it (AXES_USERNAME_CALLABLE).

    AuthenticationForm strips the field and NFKC-normalises it (UsernameField), and
    ModelBackend matches it exactly: " rita" and the full-width "ｒｉｔａ" are the account
    "rita" and must share its budget. Case is kept because the backend is case-sensitive:
    "Rita" is another (possibly nonexistent) account, and guesses against it never open
    "rita".
    """
    field = settings.AXES_USERNAME_FORM_FIELD
    raw = (credentials or {}).get(field)
    if raw is None:
        raw = getattr(request, "POST", {}).get(field) or ""
    return unicodedata.normalize("NFKC", str(raw).strip())[:150]


def client_ip(request: HttpRequest) -> str:
    """The client's address (AXES_CLIENT_IP_CALLABLE) with TRUSTED_PROXY_COUNT proxies in
    front of the app.

    Each trusted proxy appends the address it saw to X-Forwarded-For, so the client is the
    TRUSTED_PROXY_COUNT-th entry from the right; everything left of it was written by the
    client and is ignored (the rule of Django REST framework's NUM_PROXIES). With no
    trusted proxy (the default) the header is ignored and REMOTE_ADDR is the client.
    django-ipware is not used: its proxy count does not count the proxy that connects to
    us, and without `strict` it picks a position a client can fill with a forged entry.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if not forwarded:
        return remote
    return forwarded[-min(proxies, len(forwarded))]
