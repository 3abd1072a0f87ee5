"""Fixtures of the Python client's tests, which run against a real Coachdesk server.

The server is pytest-django's `live_server`: the project's Django app served by a thread
of this process on the test database (so `settings` changes apply to it, and the tests read
what arrived with the ORM). In front of it, `proxy` is a TCP proxy the test controls: it can
be down (nothing listens on its port), paused (connections hang), lose a response, and come
back up. Run from the project folder: `scripts/run_tests.py clients/python/tests`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
try:  # `make install` installs the client; a bare checkout still runs its tests
    import coachdesk  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(SRC))

from client_support import Proxy, make_user_token  # noqa: E402

from coachdesk import Coachdesk  # noqa: E402

REQUIRE = os.environ.get("COACHDESK_REQUIRE_SERVICES") == "1"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents and "live_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def _require_postgres() -> None:
    """The live server writes from its own threads: PostgreSQL, as in production (the
    suite's SQLite fallback shares one in-memory connection between threads)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        if REQUIRE:
            pytest.fail("PostgreSQL is required (COACHDESK_REQUIRE_SERVICES=1)")
        pytest.skip("needs PostgreSQL")


@pytest.fixture
def server(live_server, transactional_db) -> str:
    """The base URL of the live Coachdesk server."""
    _require_postgres()
    return live_server.url


@pytest.fixture
def agent_token(transactional_db) -> str:
    """A token of the agent pipeline's service account (may ingest)."""
    return make_user_token("pipeline", ["agent"])


@pytest.fixture
def ml_token(transactional_db) -> str:
    """A token of an ML engineer (may read KPIs and export batches)."""
    return make_user_token("mo", ["ml"])


@pytest.fixture
def make_client() -> Iterator[Callable[..., Coachdesk]]:
    """make_client(url, token, **options): a sync client, closed after the test (so no
    sender thread outlives it and writes into the next test's database)."""
    made: list[Coachdesk] = []

    def make(url: str, token: str, **options: Any) -> Coachdesk:
        options.setdefault("flush_interval", 0.05)
        options.setdefault("backoff_base", 0.05)
        options.setdefault("max_backoff", 0.5)
        options.setdefault("timeout", 5.0)
        client = Coachdesk(url, token, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)


@pytest.fixture
def proxy(live_server, transactional_db) -> Iterator[Proxy]:
    """A proxy in front of the live server, starting down (see Proxy)."""
    from urllib.parse import urlsplit

    _require_postgres()
    parts = urlsplit(live_server.url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 80))
    yield proxy
    proxy.close()
