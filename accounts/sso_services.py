"""The writes of single sign-on (accounts/sso.py verifies the provider's tokens and calls
`sso_login`): the user behind an (issuer, subject), made on the first login; their name,
e-mail, roles and, optionally, pool domains taken from the claims on every login. Each
change is an audit event.

Users are keyed by the provider's (issuer, subject) (`Identity`), never by e-mail unless
OIDC_LINK_BY_EMAIL says so. Roles follow the provider at every login, and since roles are
read on every request, a role taken away there is gone from every open session of that user
at their next login.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Identity, ReviewerProfile, Role
from accounts.roles import ROLES_ATTR
from core.audit import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# A domain is matched against ReviewItem.domain (100 characters); repeated from the console
# (`console.services.MAX_DOMAIN`), which sits above accounts.
MAX_DOMAIN = 100
MAX_DOMAINS = 100
NO_ROLE = (
    "Your account at {provider} gives you no Coachdesk role. Ask your administrator to add "
    "you to one of the Coachdesk groups there, then sign in again."
)
DISABLED = "This Coachdesk account is disabled. Ask a Coachdesk administrator."


class SsoRefused(Exception):
    """A sign-in the provider vouched for, refused by Coachdesk; the message is for the user."""


def _strings(value: Any) -> list[str]:
    """A claim's values: a JSON list of strings, or one string of comma/space separated ones."""
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, list | tuple):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def claimed_roles(claims: dict) -> set[str]:
    """The roles OIDC_ROLE_MAP gives the values of the claim OIDC_ROLES_CLAIM."""
    mapping = settings.OIDC_ROLE_MAP
    return {mapping[v] for v in _strings(claims.get(settings.OIDC_ROLES_CLAIM)) if v in mapping}


def claimed_domains(claims: dict) -> list[str] | None:
    """The reviewer's domains from OIDC_DOMAINS_CLAIM, sorted; None when that is not
    configured or the claim is absent (the domains then stay as the console set them)."""
    name = settings.OIDC_DOMAINS_CLAIM
    if not name or name not in claims:
        return None
    domains = sorted({d for d in _strings(claims[name]) if len(d) <= MAX_DOMAIN})
    return domains[:MAX_DOMAINS]


def sso_login(*, issuer: str, subject: str, claims: dict) -> User:
    """The user behind a verified (issuer, subject), created on the first login, their
    name, e-mail, roles and (for a reviewer, optionally) domains updated from `claims`.

    Raises SsoRefused when the claims map to no role (a new user is then not created; an
    existing one loses the roles the provider no longer grants, and that is kept) or the
    user is disabled. Locks the identity row for the update."""
    roles = claimed_roles(claims)
    with transaction.atomic():
        user, identity = _identity_user(
            issuer=issuer, subject=subject, claims=claims, may_create=bool(roles)
        )
        if user is None or identity is None:
            raise SsoRefused(NO_ROLE.format(provider=settings.OIDC_PROVIDER_NAME))
        if not user.is_active:
            raise SsoRefused(DISABLED)
        _details_update(user, claims)
        roles_sync(user=user, roles=roles)
        domains = claimed_domains(claims)
        if domains is not None and Role.REVIEWER in roles:
            domains_sync(user=user, domains=domains)
        Identity.objects.filter(pk=identity.pk).update(last_login_at=timezone.now())
    if not roles:
        raise SsoRefused(NO_ROLE.format(provider=settings.OIDC_PROVIDER_NAME))
    return user


def _identity_user(
    *, issuer: str, subject: str, claims: dict, may_create: bool
) -> tuple[User | None, Identity | None]:
    found = (
        Identity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if found is not None:
        return found.user, found
    # A login that will be refused (no role) links and creates nothing.
    linkable = settings.OIDC_LINK_BY_EMAIL and may_create
    user = _user_by_verified_email(issuer, claims) if linkable else None
    if user is not None:
        identity = Identity.objects.create(user=user, issuer=issuer, subject=subject)
        audit_record(
            actor=user,
            action="sso.identity_linked",
            target_type="user",
            target_id=user.pk,
            after={"issuer": issuer, "subject": subject, "email": user.email},
        )
        return user, identity
    if not may_create:
        return None, None
    User = get_user_model()  # noqa: N806
    try:
        # A savepoint: a concurrent first login of the same subject (or a username taken
        # meanwhile) fails here and is answered from the row that won.
        with transaction.atomic():
            user = User.objects.create_user(
                _new_username(issuer, subject, claims), email=claims.get("email") or ""
            )  # no password: this user signs in through the provider only
            identity = Identity.objects.create(user=user, issuer=issuer, subject=subject)
    except IntegrityError:
        winner = (
            Identity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        )
        if winner is None:
            raise
        return winner.user, winner
    audit_record(
        actor=user,
        action="sso.user_created",
        target_type="user",
        target_id=user.pk,
        after={"username": user.username, "issuer": issuer, "subject": subject},
    )
    return user, identity


def _user_by_verified_email(issuer: str, claims: dict) -> User | None:
    """OIDC_LINK_BY_EMAIL: the one existing user with the claimed e-mail, if the provider
    says it verified it. Off by default because it hands an existing account, password users
    and admins included, to whoever holds that address at the provider: the provider must
    be trusted to verify addresses and never to reassign them. A user already linked to
    another subject of this provider is never taken over."""
    email = claims.get("email")
    if not email or claims.get("email_verified") is not True:
        return None
    users = list(
        get_user_model()
        .objects.filter(email__iexact=email, is_active=True)
        .exclude(identities__issuer=issuer)[:2]
    )
    return users[0] if len(users) == 1 else None


def _new_username(issuer: str, subject: str, claims: dict) -> str:
    """A readable username (preferred_username, else the e-mail's local part); when taken, a
    suffix from the (issuer, subject) makes it unique without matching the other user."""
    raw = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0]
    base = re.sub(r"[^\w.@+-]", "", str(raw))[:130] or "user"
    if not get_user_model().objects.filter(username=base).exists():
        return base
    return f"{base}-{hashlib.sha256(f'{issuer} {subject}'.encode()).hexdigest()[:10]}"


def _details_update(user: User, claims: dict) -> None:
    """E-mail and name follow the provider as it says now (a claim it does not send leaves
    the field as it is), written only when changed."""
    sources = {
        "email": ("email", 254),
        "first_name": ("given_name" if "given_name" in claims else "name", 150),
        "last_name": ("family_name", 150),
    }
    wanted = {
        field: str(claims[claim])[:limit]
        for field, (claim, limit) in sources.items()
        if isinstance(claims.get(claim), str) and claims[claim]
    }
    changed = [f for f, v in wanted.items() if getattr(user, f) != v]
    if changed:
        for field in changed:
            setattr(user, field, wanted[field])
        user.save(update_fields=changed)


def roles_sync(*, user: User, roles: set[str]) -> bool:
    """Gives `user` exactly `roles` among the roles SSO manages (those OIDC_ROLE_MAP maps
    to; others, e.g. the pipeline's agent role, are left alone). Audits `sso.roles_changed`
    with the roles before and after; False when nothing changed."""
    managed = set(settings.OIDC_ROLE_MAP.values())
    before = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    wanted = roles & managed
    if before == wanted:
        return False
    added, removed = wanted - before, before - wanted
    if added:
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in sorted(added)))
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    user.__dict__.pop(ROLES_ATTR, None)  # roles cached on this instance are stale now
    audit_record(
        actor=user,
        action="sso.roles_changed",
        target_type="user",
        target_id=user.pk,
        before={"roles": sorted(before)},
        after={"roles": sorted(wanted)},
    )
    return True


def domains_sync(*, user: User, domains: list[str]) -> bool:
    """Sets the reviewer's pool domains to `domains` (the profile is made if missing). Locks
    the profile row, like the console's pool changes, so neither loses the other's write.
    Audits `sso.domains_changed`; False when they were already these."""
    profile, _ = ReviewerProfile.objects.select_for_update().get_or_create(user=user)
    before = list(profile.domains or [])
    if sorted(before) == domains:
        return False
    profile.domains = domains
    profile.save(update_fields=["domains"])
    audit_record(
        actor=user,
        action="sso.domains_changed",
        target_type="user",
        target_id=user.pk,
        before={"domains": before},
        after={"domains": domains},
    )
    return True
