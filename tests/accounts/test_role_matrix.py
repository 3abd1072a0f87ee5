"""Every URL of the project, for every role: generated from the URL resolver and the API's
routers, so a new page or endpoint is covered (and must declare its roles) the day it lands.

Pages declare roles with `accounts.permissions.role_required` (it marks the view with
`required_roles`); the few pages open to everyone or to any logged-in user are listed here.
API operations declare roles with `RoleBearer`.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import ApiToken
from accounts.permissions import RoleBearer
from accounts.services import token_create, token_revoke
from config.api import api
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory, UserFactory

PUBLIC = {
    "login",
    "admin-login",
    "logout",
    "healthz",
    "favicon",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    # Single sign-on: the start and the provider's redirect back (404 while SSO is off).
    "oidc_authentication_init",
    "oidc_authentication_callback",
}
ANY_USER = {"home", "tokens", "token-revoke", "password_change", "password_change_done"}
PERSONAS = {
    "anonymous": None,
    "reviewer": {"roles": ["reviewer"], "domains": ["support"]},
    "ml": {"roles": ["ml"]},
    "admin": {"roles": ["admin"], "is_staff": True},
    "agent": {"roles": ["agent"]},
}


def _walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if "ninja" in getattr(p.urlconf_module, "__name__", "") or str(p.pattern).startswith(
                "api/"
            ):
                continue  # the API is walked through its routers below
            if getattr(p, "app_name", None) == "admin":
                continue  # Django's admin: superusers only, checked separately
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), f"{namespace}{p.name}", p.callback


PAGES = sorted(
    {(route, name): cb for route, name, cb in _walk(get_resolver().url_patterns)}.items()
)


def _operations():
    for bound in api._get_bound_routers():
        for path, view in bound.path_operations.items():
            for operation in view.operations:
                roles = set()
                for callback in operation.auth_callbacks:
                    assert isinstance(callback, RoleBearer), f"{path}: API auth must be RoleBearer"
                    roles |= callback.roles
                for method in operation.methods:
                    yield f"/api/v1{path}", method, frozenset(roles)


OPERATIONS = sorted(set(_operations()))


def _page_roles(name, callback):
    if name.split(":")[-1] in PUBLIC:
        return "public"
    if name.split(":")[-1] in ANY_USER:
        return "any"
    roles = getattr(callback, "required_roles", None)
    assert roles, f"page {name} declares no roles: decorate it with role_required(...)"
    return roles


@pytest.fixture
def world(db):
    """Objects for every URL parameter, and one user per persona."""
    users = {
        name: UserFactory(username=f"p-{name}", **spec) for name, spec in PERSONAS.items() if spec
    }
    agent = AgentFactory(slug="support-bot", domain="support")
    other = UserFactory(username="someone-else", roles=["reviewer"], domains=["support"])
    item = ReviewItemFactory(
        interaction=InteractionFactory(agent=agent), claimed=True, claimed_by=other
    )
    token, _ = token_create(user=other, name="theirs")
    values = {
        "item_id": item.pk,
        "user_id": other.pk,
        "slug": agent.slug,
        "domain": "support",
        "token_id": token.pk,
        "pk": item.pk,
        "id": item.pk,
        "batch_id": 1,
        "export_id": 1,
    }
    return users, values


def _fill(route: str, values: dict) -> str:
    def sub(match):
        name = match.group(2)
        return str(values.get(name, 1))

    url = "/" + re.sub(r"<(?:(\w+):)?(\w+)>", sub, route)
    return url.replace("^", "").replace("$", "")


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and "/accounts/login/" in response.get("Location", "")


@pytest.mark.parametrize(
    ("route", "name"), [key for key, _ in PAGES], ids=[key[1] for key, _ in PAGES]
)
@pytest.mark.parametrize("persona", list(PERSONAS))
def test_it_enforces_page_roles(client, world, route, name, persona):
    callback = dict(PAGES)[(route, name)]
    users, values = world
    required = _page_roles(name, callback)
    url = _fill(route, values)
    if persona != "anonymous":
        client.force_login(users[persona])
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        status = response.status_code
        assert status < 500, f"{method.upper()} {url} as {persona}: {status}"
        if required == "public":
            continue
        if persona == "anonymous":
            # 405: the method is not served at all, so nothing was reached either.
            refused = _is_login_redirect(response) or status == 405
            assert refused, f"{method.upper()} {url} anonymous got {status}"
        elif required == "any" or set(PERSONAS[persona]["roles"]) & required:
            assert status not in (401, 403) and not _is_login_redirect(response), (
                f"{method.upper()} {url} as {persona} (roles {sorted(required)}) got {status}"
            )
        else:
            assert status in (403, 405), (
                f"{method.upper()} {url} as {persona} lacks {sorted(required)} but got {status}"
            )
            if status == 403:
                assert b"<h1>Not allowed</h1>" in response.content, f"{method.upper()} {url}"


@pytest.mark.parametrize(
    ("path", "method", "roles"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS]
)
@pytest.mark.parametrize("persona", [*PERSONAS, "revoked"])
def test_it_enforces_api_roles(client, world, path, method, roles, persona):
    users, values = world
    url = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), path)
    headers = {}
    if persona == "revoked":
        token, secret = token_create(user=users["admin"], name="old")
        token_revoke(token=token, actor=users["admin"])
        headers["Authorization"] = f"Bearer {secret}"
    elif persona != "anonymous":
        _, secret = token_create(user=users[persona], name="matrix")
        headers["Authorization"] = f"Bearer {secret}"
    response = client.generic(
        method, url, data="{}", content_type="application/json", headers=headers
    )
    status = response.status_code
    assert status < 500, f"{method} {url} as {persona}: {status}"
    if not roles:
        return  # an open endpoint (schema, docs)
    if persona in ("anonymous", "revoked"):
        assert status == 401, f"{method} {url} as {persona} got {status}"
        assert response.json() == {"detail": "Unauthorized"}
    elif set(PERSONAS[persona]["roles"]) & roles:
        assert status not in (401, 403), f"{method} {url} as {persona} got {status}"
    else:
        assert status == 403, f"{method} {url} as {persona} lacks {sorted(roles)} but got {status}"
        assert response.json()["detail"] == (
            f"this token's user needs one of the roles: {', '.join(sorted(roles))}"
        )
    assert ApiToken.objects.filter(revoked_at__isnull=True).exists() or persona in (
        "anonymous",
        "revoked",
    )


def test_it_keeps_django_admin_for_superusers(client, db):
    login = "/admin/login/?next=/admin/"
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == login
    client.force_login(UserFactory(username="lead", roles=["admin"], is_staff=True))
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"] == login
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"Coachdesk administration" in response.content


def test_it_found_the_pages_and_endpoints():
    names = {name for (_, name), _ in PAGES}
    assert {"reviews:queue", "reviews:review", "console:browser", "login"} <= names
    assert {"console:item", "console:pool", "console:pool_add", "console:pool_remove"} <= names
    assert ("/api/v1/interactions", "POST") in {(p, m) for p, m, _ in OPERATIONS}
