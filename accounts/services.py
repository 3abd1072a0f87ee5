"""Writes of the accounts app: API tokens, and the sweep of old login records.

A token is 256 random bits shown once; only its sha256 is stored (`ApiToken.hash_key`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from accounts.roles import remember_roles, with_roles
from core import statements
from core.audit import audit_record
from core.slugs import SLUG_RE

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TOKEN_PREFIX = "cd_"  # noqa: S105 (a label, not a secret)

# A token limited to agents names at most this many (without a list it is valid for all).
MAX_TOKEN_AGENTS = 100

# The ingest API's agent slug (ingest/api.py); repeated here: accounts sits below ingest.

# last_used_at is refreshed at most this often, so authenticated requests do not each write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


# One statement, compiled once per process: the token, its user, the user's pool and roles
# (`accounts.roles`). Every API request runs it.
_LIVE_TOKEN = statements.Reused(
    lambda key_hash: with_roles(
        ApiToken.objects.select_related("user", "user__reviewer_profile"), "user_id"
    ).filter(key_hash=key_hash, revoked_at__isnull=True)[:1],
    "\x00key-hash",  # no hash looks like this: where the real one goes
)


def token_authenticate(*, secret: str) -> User | None:
    """The active user behind a live token, or None. Records the use (coarsely)."""
    token = token_lookup(secret=secret)
    return token.user if token is not None else None


def token_lookup(*, secret: str) -> ApiToken | None:
    """The live token of an active user for `secret` (its `user` loaded), or None. Records
    the use (coarsely)."""
    if not secret or len(secret) > 200:
        return None
    token = _LIVE_TOKEN.one(ApiToken.hash_key(secret))
    if token is None or not token.user.is_active:
        return None
    remember_roles(token.user, getattr(token, "role_names", None))
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def token_create(
    *,
    user: User,
    name: str,
    actor: User | None = None,
    agent_slugs: Iterable[str] = (),
) -> tuple[ApiToken, str]:
    """Creates an API token and returns it with its secret, which is not stored anywhere:
    only its sha256 is kept, so it can be shown exactly once. With `agent_slugs` the token
    may ingest only for those agents; without, for every agent. Repeated slugs count once.
    Raises ValueError for a slug that is not a valid agent slug, or for more than
    MAX_TOKEN_AGENTS distinct slugs (checked as they are read, so a huge list stops early)."""
    seen: set[str] = set()
    for raw in agent_slugs:
        slug = raw.strip()
        if not slug or slug in seen:
            continue
        if not SLUG_RE.match(slug):
            raise ValueError(f"not an agent slug: {slug[:64]!r}")
        seen.add(slug)
        if len(seen) > MAX_TOKEN_AGENTS:
            raise ValueError(
                f"{MAX_TOKEN_AGENTS} agents at most per token; "
                "leave the agents out for a token valid for every agent"
            )
    slugs = sorted(seen)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        key_hash=ApiToken.hash_key(secret),
        prefix=secret[:10],
        agent_slugs=slugs,
    )
    audit_record(
        actor=actor or user,
        action="token.created",
        target_type="api_token",
        target_id=token.pk,
        after={
            "user": user.username,
            "name": name,
            "prefix": token.prefix,
            "agent_slugs": slugs,
        },
    )
    return token, secret


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: User | None) -> None:
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        audit_record(
            actor=actor,
            action="token.revoked",
            target_type="api_token",
            target_id=token.pk,
            after={"name": token.name, "prefix": token.prefix},
        )


def login_logs_prune(*, now: datetime | None = None) -> int:
    """Deletes django-axes' login log rows (one per sign-in, with address and browser) older
    than LOGIN_LOG_DAYS; returns how many. Failed attempts need no sweep: axes deletes
    those past their cool-off on every login event."""
    from axes.models import AccessLog

    cutoff = (now or timezone.now()) - timedelta(days=settings.LOGIN_LOG_DAYS)
    deleted, _ = AccessLog.objects.filter(attempt_time__lt=cutoff).delete()
    return deleted
