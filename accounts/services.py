"""Writes of the accounts app: API tokens.

A token is 256 random bits shown once; only its sha256 is stored (`ApiToken.hash_key`).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from core.audit import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TOKEN_PREFIX = "cd_"  # noqa: S105 (a label, not a secret)

# last_used_at is refreshed at most this often, so authenticated requests do not each write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def token_authenticate(*, secret: str) -> User | None:
    """The active user behind a live token, or None. Records the use (coarsely)."""
    if not secret or len(secret) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash_key(secret), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


@transaction.atomic
def token_create(*, user: User, name: str, actor: User | None = None) -> tuple[ApiToken, str]:
    """Creates an API token and returns it with its secret, which is not stored anywhere:
    only its sha256 is kept, so it can be shown exactly once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=ApiToken.hash_key(secret), prefix=secret[:10]
    )
    audit_record(
        actor=actor or user,
        action="token.created",
        target_type="api_token",
        target_id=token.pk,
        after={"user": user.username, "name": name, "prefix": token.prefix},
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
