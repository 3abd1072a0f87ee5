"""Strict environment parsing for settings: a malformed value is an error, not a default."""

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use one of 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


def database_from_url(url: str, *, pooled: bool = False, conn_max_age: int = 60) -> dict:
    """`postgres://user:pass@host:port/name?opt=v` or `sqlite:///path` → DATABASES['default'].

    `pooled`: the URL points at a connection pooler in transaction mode (PgBouncer): no
    persistent connections (the pooler keeps the server connections), no prepared
    statements and no startup options (a pooler refuses or drops them). Server-side cursors
    stay on, but only ever inside a transaction (core.db.chunked), where they are declared
    WITHOUT HOLD and the pooler keeps them on one server connection; turning them off would
    load a whole backup table or KPI scan into memory at once.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        options: dict = dict(parse_qsl(parts.query))
        # No JIT: the app's queries are short, and PostgreSQL's JIT compiled the workload
        # page's 15 ms query for ~900 ms. Startup options of the URL's `options` are kept (an
        # explicit `-c jit=...` there wins). Behind a pooler in transaction mode, which does
        # not forward startup options, `ALTER ROLE <app role> SET jit = off` does the same.
        if pooled:
            if "options" in options:
                raise ImproperlyConfigured(
                    "DATABASE_URL: a pooler in transaction mode does not forward `options`; "
                    "set them on the role instead (ALTER ROLE ... SET ...)"
                )
            options["prepare_threshold"] = None  # psycopg: never prepare (Django's default)
        else:
            # A statement run this many times on a connection through a psycopg cursor is
            # prepared (core.statements.preparing_cursor: the claim). Django's own cursors
            # bind on the client and never prepare, whatever this says.
            options.setdefault("prepare_threshold", 5)
            if "jit=" not in options.get("options", "").replace(" ", ""):
                options["options"] = " ".join(filter(None, [options.get("options"), "-c jit=off"]))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "coachdesk",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 0 if pooled else conn_max_age,
            "CONN_HEALTH_CHECKS": not pooled,
        }
    if scheme == "sqlite":
        path = unquote(parts.path)
        # sqlite:///relative.db → "relative.db"; sqlite:////abs/path.db → "/abs/path.db"
        name = path[1:]
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or ":memory:"}
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {scheme!r} is not supported (postgres or sqlite)"
    )


_S3_OPTIONS = {
    "endpoint_url",
    "region_name",
    "addressing_style",
    "signature_version",
    "default_acl",
    "use_ssl",
    "verify",
}


def storage_from_url(url: str) -> dict:
    """`s3://bucket/optional/prefix?endpoint_url=…&region_name=…` → STORAGES['default'] for
    django-storages' S3 backend (any S3-compatible service: AWS S3, MinIO, R2, …).
    Credentials come from the usual AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment
    (or the instance's role), never from the URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3":
        raise ImproperlyConfigured(f"STORAGE_URL scheme {parts.scheme!r} is not supported (s3)")
    if not parts.hostname:
        raise ImproperlyConfigured("STORAGE_URL names no bucket (s3://BUCKET/prefix?…)")
    if parts.username or parts.password:
        raise ImproperlyConfigured(
            "STORAGE_URL must not carry credentials: use AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        )
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - _S3_OPTIONS)
    if unknown:
        raise ImproperlyConfigured(
            f"STORAGE_URL: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_S3_OPTIONS))})"
        )
    options: dict = {
        "bucket_name": parts.hostname,
        "location": unquote(parts.path).strip("/"),
        # Like the local folder: a name in use gets a new one, nothing is overwritten.
        "file_overwrite": False,
        "default_acl": query.pop("default_acl", None),
        # Signature V4: what every current S3 service takes (also for presigned addresses).
        "signature_version": query.pop("signature_version", "s3v4"),
    }
    for flag in ("use_ssl", "verify"):
        if flag in query:
            options[flag] = query.pop(flag).lower() in _TRUE
    options.update(query)
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
