"""Settings come from the environment, strictly parsed, with an embedded default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_from_url, env_bool, env_int

ROOT = Path(__file__).resolve().parents[2]


def test_it_parses_booleans_strictly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("X_FLAG", False)


def test_it_refuses_a_malformed_integer(monkeypatch):
    monkeypatch.setenv("X_INT", "12a")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("X_INT", 1)


def test_it_reads_a_postgres_url():
    db = database_from_url("postgres://me:s%40cret@db.example:6543/coach?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "me",
        "s@cret",
        "db.example",
        "6543",
        "coach",
    )
    assert db["OPTIONS"] == {"sslmode": "require", "prepare_threshold": 5, "options": "-c jit=off"}


def test_it_keeps_the_urls_startup_options_beside_jit_off():
    url = "postgres://db/coach?options=-c%20statement_timeout%3D5000"
    options = database_from_url(url)["OPTIONS"]["options"]
    assert options == "-c statement_timeout=5000 -c jit=off"
    explicit = database_from_url("postgres://db/coach?options=-c%20jit%3Don")["OPTIONS"]
    assert explicit["options"] == "-c jit=on"


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_apps_postgresql_connection_runs_without_jit():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)


def test_it_reads_sqlite_urls():
    assert database_from_url("sqlite:////abs/x.db")["NAME"] == "/abs/x.db"
    assert database_from_url("sqlite:///rel.db")["NAME"] == "rel.db"


def test_it_refuses_an_unknown_database_scheme():
    with pytest.raises(ImproperlyConfigured, match="not supported"):
        database_from_url("mysql://x/y")


def _settings_in_subprocess(env: dict[str, str], expr: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"}
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print(({expr},))",
        ],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_runs_embedded_with_no_environment():
    done = _settings_in_subprocess(
        {},
        "settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, "
        "settings.DEBUG",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('django.db.backends.sqlite3', True, True)"


def test_it_refuses_the_development_secret_key_in_production():
    done = _settings_in_subprocess({"DATABASE_URL": "postgres://x@127.0.0.1/y"}, "settings.DEBUG")
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_it_switches_to_redis_and_production_hardening():
    done = _settings_in_subprocess(
        {
            "DATABASE_URL": "postgres://x@127.0.0.1/y",
            "SECRET_KEY": "s",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        },
        "settings.CELERY_BROKER_URL, settings.CELERY_TASK_ALWAYS_EAGER, "
        "settings.SESSION_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS > 0",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('redis://127.0.0.1:6379/3', False, True, True)"
