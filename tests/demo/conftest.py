"""The demo as `make run` seeds it (smaller): `seed_demo` run once per module and committed,
for the tests that only read it. Each test still runs in its own rolled-back transaction;
the database and storage are wiped after the module."""

import shutil
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

# Big enough that every verdict, a lead's adjudication and both batches appear.
N = 600
FAST_HASHING = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(*args: str, n: int = N) -> str:
    """`seed_demo --interactions n ARGS`; returns what it printed."""
    out = StringIO()
    call_command("seed_demo", "--interactions", str(n), *args, stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def seeded_demo(django_db_setup, django_db_blocker, tmp_path_factory):
    """What `seed_demo` printed; the demo itself is in the database (read it, do not change
    it outside the test's transaction)."""
    media = tmp_path_factory.mktemp("demo") / "media"
    with (
        django_db_blocker.unblock(),
        override_settings(
            MEDIA_ROOT=media, EXPORT_TMP_DIR=media / ".export-tmp", PASSWORD_HASHERS=FAST_HASHING
        ),
    ):
        try:
            yield seed()
        finally:
            call_command("flush", interactive=False, verbosity=0)
            shutil.rmtree(media, ignore_errors=True)
