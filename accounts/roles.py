"""A user's roles, loaded with the user in the same statement.

Every authenticated request needs the user's roles (the role checks of pages and the API)
and, for a reviewer, their pool (`reviewer_profile`). Asked separately, those are two more
round trips per request; here they come with the user's own row: the token lookup and the
session's user (`RoleAwareBackend`) select the profile with a join and the role names with
an array subquery (PostgreSQL). Nothing is cached across requests, so a changed group or
pool applies to the very next request, on every machine.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend, UserModel
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import OuterRef, QuerySet

from accounts.models import Role
from core import statements

ALL_ROLES = frozenset(Role.values)
ROLES_ATTR = "_coachdesk_roles"


def with_roles(qs: QuerySet, user: str = "pk") -> QuerySet:
    """`qs` with `role_names` (the user's role groups) on each row; `user` is the path to
    the user's id in `qs`. Only on PostgreSQL; elsewhere `user_roles` asks on first use."""
    if connection.vendor != "postgresql":
        return qs
    from django.contrib.postgres.expressions import ArraySubquery

    names = Group.objects.filter(user=OuterRef(user), name__in=ALL_ROLES).values("name")
    return qs.annotate(role_names=ArraySubquery(names))


def remember_roles(user, names) -> None:
    """Keeps the role names loaded by `with_roles` on `user` for `user_roles`."""
    if names is not None:
        setattr(user, ROLES_ATTR, ALL_ROLES if user.is_superuser else frozenset(names))


def user_roles(user) -> frozenset[str]:
    """The roles of a user (superusers hold every role), cached on the instance."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, ROLES_ATTR, None)
    if cached is None:
        if user.is_superuser:
            cached = ALL_ROLES
        else:
            cached = frozenset(
                user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True)
            )
        setattr(user, ROLES_ATTR, cached)
    return cached


# Every page request reads its user: compiled once per process (core.statements.Reused).
_SESSION_USER = statements.Reused(
    lambda pk: with_roles(
        get_user_model()._default_manager.select_related("reviewer_profile")
    ).filter(pk=pk)[:1],
    statements.MARKER_ID,
)


class RoleAwareBackend(ModelBackend):
    """Django's ModelBackend, whose per-request `get_user` also brings the user's roles and
    reviewer profile in its one query."""

    def get_user(self, user_id):
        user = _SESSION_USER.one(UserModel._meta.pk.to_python(user_id))
        if user is None or not self.user_can_authenticate(user):
            return None
        remember_roles(user, getattr(user, "role_names", None))
        return user
