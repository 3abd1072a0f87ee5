"""Writes of the reviews app. Review item state transitions live here and only here."""

import secrets

from django.db import transaction
from django.utils import timezone

from reviews.models import ApiToken, AuditEvent

TOKEN_PREFIX = "cd_"  # noqa: S105 (a label, not a secret)


@transaction.atomic
def token_create(*, user, name: str, actor=None) -> tuple[ApiToken, str]:
    """Creates an API token and returns it with its secret, which is not stored anywhere:
    only its sha256 is kept, so it can be shown exactly once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=ApiToken.hash_key(secret), prefix=secret[:10]
    )
    AuditEvent.objects.create(
        actor=actor or user,
        action="token.created",
        target_type="api_token",
        target_id=token.pk,
        after={"user": user.username, "name": name, "prefix": token.prefix},
    )
    return token, secret


@transaction.atomic
def token_revoke(*, token: ApiToken, actor) -> None:
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        AuditEvent.objects.create(
            actor=actor,
            action="token.revoked",
            target_type="api_token",
            target_id=token.pk,
            after={"name": token.name, "prefix": token.prefix},
        )
