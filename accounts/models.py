"""Who may do what: roles (Django groups), reviewer profiles and API tokens.

The tables were created by the reviews app and keep their names (`reviews_*`).
"""

import hashlib

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    """Django group names; a user may hold several."""

    REVIEWER = "reviewer"
    ADMIN = "admin"
    ML = "ml"
    AGENT = "agent"


class ReviewerProfile(models.Model):
    """A reviewer's pool membership: the domains they may review and their capacity."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    domains = models.JSONField(
        default=list, blank=True, help_text="Domains this reviewer may review."
    )
    daily_capacity = models.PositiveIntegerField(default=200)
    active = models.BooleanField(default=True, help_text="Away reviewers get no new assignments.")

    class Meta:
        db_table = "reviews_reviewerprofile"

    def __str__(self) -> str:
        return f"{self.user} ({', '.join(self.domains) or 'no domains'})"


class ApiToken(models.Model):
    """A named API credential. Only the sha256 of the token is stored; the token itself is
    shown once. Tokens are 256-bit random, so a fast hash is enough (no brute force)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Slugs, not a relation: accounts may not depend on the agents app (same layer).
    agent_slugs = models.JSONField(
        default=list,
        blank=True,
        help_text="Agents this token may ingest for; empty (the default, and every token "
        "made before scopes existed) means every agent.",
    )

    class Meta:
        db_table = "reviews_apitoken"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def agent_scope(self) -> frozenset[str] | None:
        """The agents this token may write for, or None for every agent."""
        return frozenset(self.agent_slugs) if self.agent_slugs else None

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class Identity(models.Model):
    """A user's account at an OpenID Connect provider (single sign-on, accounts/sso.py).

    The provider's (issuer, subject) pair is the only stable, unique key it gives: e-mail
    addresses and usernames can be changed or reassigned at the provider, so they never
    decide which Coachdesk user signs in.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="identity_issuer_subject")
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
