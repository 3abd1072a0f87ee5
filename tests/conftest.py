"""Shared fixtures: personas, API clients, and the service gate.

Tests marked `postgres` need PostgreSQL, tests marked `redis` need Redis. When a service is
missing they are skipped with a banner; with COACHDESK_REQUIRE_SERVICES=1 they fail instead.
"""

import os

import pytest
from django.db import connection

from tests import factories

MISSING = os.environ.get("COACHDESK_MISSING_SERVICES", "")
REQUIRE = os.environ.get("COACHDESK_REQUIRE_SERVICES") == "1"


def pytest_report_header(config):
    if MISSING:
        return ["!!! SERVICES MISSING, dependent tests skipped:", *MISSING.splitlines()]
    return ["services: PostgreSQL and Redis answer"]


def _gate(item, marker: str, available: bool, what: str) -> None:
    if item.get_closest_marker(marker) and not available:
        if REQUIRE:
            pytest.fail(f"{what} is required (COACHDESK_REQUIRE_SERVICES=1) but not available")
        pytest.skip(f"needs {what}")


def pytest_runtest_setup(item):
    _gate(item, "postgres", connection.vendor == "postgresql", "PostgreSQL")
    _gate(item, "redis", bool(os.environ.get("TEST_REDIS_URL")), "Redis")


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if MISSING:
        terminalreporter.write_sep("!", "SERVICES MISSING", red=True, bold=True)
        for line in MISSING.splitlines():
            terminalreporter.write_line(f"  {line}", red=True)
        terminalreporter.write_line(
            f"  {len(skipped)} tests skipped. Run .ci/run for the full suite.", red=True
        )


@pytest.fixture
def reviewer(db):
    return factories.UserFactory(username="rita", roles=["reviewer"], domains=["support"])


@pytest.fixture
def other_reviewer(db):
    return factories.UserFactory(username="oscar", roles=["reviewer"], domains=["support"])


@pytest.fixture
def lead(db):
    return factories.UserFactory(username="lee", roles=["admin"], is_staff=True)


@pytest.fixture
def ml(db):
    return factories.UserFactory(username="mo", roles=["ml"])


@pytest.fixture
def pipeline(db):
    """The agent pipeline's service account."""
    return factories.UserFactory(username="pipeline", roles=["agent"])


@pytest.fixture
def api_client(client):
    """Calls the API with a bearer token of a given user: api_client(user).post(...)."""
    from reviews.services import token_create

    class ApiClient:
        def __init__(self, user=None, secret: str | None = None):
            if user is not None:
                _, secret = token_create(user=user, name="test")
            self.headers = {"Authorization": f"Bearer {secret}"} if secret else {}

        def post(self, path: str, data, **kwargs):
            import json

            body = data if isinstance(data, (bytes, str)) else json.dumps(data)
            return client.post(
                path, body, content_type="application/json", headers=self.headers, **kwargs
            )

        def get(self, path: str, **kwargs):
            return client.get(path, headers=self.headers, **kwargs)

    return ApiClient
