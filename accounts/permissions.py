"""Roles: one mechanism for pages and the API.

A user's roles are their Django group names among `Role`; superusers hold every role.
Pages use `@role_required(...)`; API operations declare `auth=RoleBearer(...)`
(below), which authenticates the token and checks the same roles.
"""

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import HttpBearer

from accounts.roles import ALL_ROLES, user_roles
from accounts.services import token_lookup

__all__ = ["ALL_ROLES", "RoleBearer", "has_role", "role_required", "user_roles"]


def has_role(user, roles: Iterable[str]) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """Page decorator: anonymous users go to the login page, the wrong role gets 403."""
    unknown = set(roles) - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.required_roles = frozenset(roles)  # type: ignore[attr-defined]
        return wrapped

    return decorator


class RoleBearer(HttpBearer):
    """`Authorization: Bearer <token>`; the token's user must hold one of `roles`.

    A missing, unknown or revoked token gives 401; a valid token without the role gives 403.
    Sets `request.auth` (by ninja) and `request.user` to the token's user and
    `request.api_token` to the token itself (its agent scope limits ingest).
    """

    def __init__(self, *roles: str) -> None:
        super().__init__()
        self.roles = frozenset(roles)

    def authenticate(self, request: HttpRequest, token: str):
        api_token = token_lookup(secret=token)
        if api_token is None:
            return None
        user = api_token.user
        if not has_role(user, self.roles):
            raise HttpError(
                403, f"this token's user needs one of the roles: {', '.join(sorted(self.roles))}"
            )
        request.user = user
        request.api_token = api_token  # type: ignore[attr-defined]
        return user
