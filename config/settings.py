"""Coachdesk settings: every value from the environment, with a default that runs anywhere.

With no environment at all this is the embedded default: SQLite in the project folder and
Celery tasks executed eagerly in-process (no Redis). `DATABASE_URL` and `REDIS_URL` switch to
PostgreSQL and Redis. See `.env.example` for every variable.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    storage_from_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# The embedded default (no DATABASE_URL) is a development setup, so DEBUG defaults on there
# and off as soon as a real database is configured.
DATABASE_URL = env_str("DATABASE_URL", "")
DEBUG = env_bool("DEBUG", not DATABASE_URL)
DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (or set DEBUG=1).")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",
    "axes",
    # Bottom to top: an app imports only from the apps above it in this list (the import
    # contract in pyproject.toml checks it).
    "core",
    "accounts",
    "agents",
    "reviews",
    "retraining",
    "evals",
    "kpis",
    "ingest",
    "console",
    "demo",
    "backup",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.db.ReplicaPinMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.NoStoreForUsersMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_POOLER=transaction: DATABASE_URL points at a pooler in transaction mode
# (PgBouncer); see config/env.py and core/db.py for what changes.
DATABASE_POOLER = env_str("DATABASE_POOLER", "")
if DATABASE_POOLER not in {"", "transaction"}:
    raise ImproperlyConfigured(
        f"DATABASE_POOLER={DATABASE_POOLER!r}: use 'transaction' (a pooler in transaction "
        "mode, e.g. PgBouncer) or leave it empty (direct connections)"
    )
# Seconds a connection is kept between requests (direct connections only). `make run`'s
# development server sets 0: it starts a thread per request, and a kept connection would
# outlive its thread.
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60)
DATABASES = {
    "default": database_from_url(
        DATABASE_URL or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        pooled=bool(DATABASE_POOLER),
        conn_max_age=DATABASE_CONN_MAX_AGE,
    )
}
# An optional streaming replica: dashboards, KPI reads, the queue browser's counts and export
# reads go there (core/db.py); writes and reads of one's own writes stay on the primary.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = database_from_url(
        DATABASE_REPLICA_URL,
        pooled=env_bool("DATABASE_REPLICA_POOLED", False),
        conn_max_age=DATABASE_CONN_MAX_AGE,
    )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["core.db.ReplicaRouter"]
# After a request that may have written, that browser reads from the primary this long.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 10)
# An export build reads its rows from the replica once it has replayed the build's
# selection; it waits at most this long for that, then reads from the primary.
REPLICA_WAIT_SECONDS = env_int("REPLICA_WAIT_SECONDS", 5)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL + IMMEDIATE transactions: concurrent writers queue up instead of failing with
    # "database is locked" halfway through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Celery --------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    # Answers as an empty cache while Redis is down (core/cache.py): nothing cached here
    # must survive, and pages must keep working through a Redis outage.
    CACHES = {
        "default": {
            "BACKEND": "core.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
# Without a broker server, tasks run in the calling process so the embedded default works.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {}
# Several deployments (or test runs) can share one Redis with a queue each.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Publishing must fail fast when Redis is down: the outbox (core/outbox.py) keeps the
# message and a sweep sends it later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2}
# Messages of a worker that died mid-task are handed out again after this long (Redis
# transport); tasks are idempotent, and long builds also heartbeat on their own rows.
CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = env_int(
    "CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600
)

# --- Outbox (durable task delivery) ---------------------------------------------------------
# A message is first published right after its transaction commits; the sweep publishes
# what is left (broker down) once it is older than OUTBOX_GRACE_SECONDS.
OUTBOX_GRACE_SECONDS = env_int("OUTBOX_GRACE_SECONDS", 10)
OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 15)
# After a failed publish, this process stops trying for a while (the sweep takes over).
OUTBOX_BREAKER_SECONDS = env_int("OUTBOX_BREAKER_SECONDS", 5)
# /healthz says "degraded" when the oldest unsent message is older than this.
OUTBOX_STALE_SECONDS = env_int("OUTBOX_STALE_SECONDS", 120)
CELERY_BEAT_SCHEDULE["core.outbox-sweep"] = {
    "task": "core.tasks.outbox_sweep",
    "schedule": float(OUTBOX_SWEEP_SECONDS),
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes' backend first: it refuses attempts of a locked-out username and address on
# every login form (ours and the admin's) before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "accounts.roles.RoleAwareBackend",  # ModelBackend, loading roles with the user
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- I18n, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` fills it; production serves it (whitenoise) with hashed names.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"
# Batch files and backups: the local folder MEDIA_ROOT, or object storage (S3 API) by
# STORAGE_URL (s3://bucket/prefix?endpoint_url=…&region_name=…) or AWS_STORAGE_BUCKET_NAME
# with django-storages' usual AWS_* variables. Several machines need object storage.
STORAGE_URL = env_str("STORAGE_URL", "")
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", "")
if STORAGE_URL:
    DEFAULT_STORAGE = storage_from_url(STORAGE_URL)
elif AWS_STORAGE_BUCKET_NAME:
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "location": env_str("AWS_LOCATION", ""),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
            "file_overwrite": False,
            "default_acl": None,
            "signature_version": env_str("AWS_S3_SIGNATURE_VERSION", "s3v4"),
        },
    }
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
# Downloads of batch files: streamed through the app (default), or, with object storage, a
# redirect to a presigned address valid this many seconds (the role is checked first).
STORAGE_PRESIGNED_DOWNLOADS = env_bool("STORAGE_PRESIGNED_DOWNLOADS", False)
STORAGE_PRESIGNED_SECONDS = env_int("STORAGE_PRESIGNED_SECONDS", 60)
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or env_bool("COACHDESK_PLAIN_STATIC", False)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Coachdesk ------------------------------------------------------------------------------
# Ingest limits (also stated in the API docs and in error messages).
INGEST_MAX_ITEMS_PER_REQUEST = env_int("INGEST_MAX_ITEMS_PER_REQUEST", 5000)
INGEST_MAX_TEXT_CHARS = env_int("INGEST_MAX_TEXT_CHARS", 20_000)
INGEST_BATCH_SIZE = env_int("INGEST_BATCH_SIZE", 5000)

# --- Production hardening (DEBUG off) -------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# Sessions are read from the cache (Redis, else this process) and written through to the
# database: no session query on a request whose session did not change.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG and env_bool("COACHDESK_HTTPS", True):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"quiet_403": {"()": "core.logging.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["quiet_403"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

# --- Review workflow ------------------------------------------------------------------------
REVIEW_LEASE_SECONDS = env_int("REVIEW_LEASE_SECONDS", 15 * 60)
# How often the periodic sweep returns expired leases to the queue (Celery beat).
LEASE_SWEEP_SECONDS = env_int("LEASE_SWEEP_SECONDS", 60)
# "My queue" counts a domain's open items once per this many seconds for all its reviewers
# (each reviewer's own reviews and assignments are applied exactly on every view); 0: always.
QUEUE_COUNTS_SECONDS = env_int("QUEUE_COUNTS_SECONDS", 5)
CELERY_BEAT_SCHEDULE["reviews.expire-leases"] = {
    "task": "reviews.tasks.expire_leases",
    "schedule": float(LEASE_SWEEP_SECONDS),
}
# Pairwise comparisons hold with the same lease and are swept at the same pace.
CELERY_BEAT_SCHEDULE["evals.expire-comparison-leases"] = {
    "task": "evals.tasks.expire_comparison_leases",
    "schedule": float(LEASE_SWEEP_SECONDS),
}

# --- Content security policy (Django's built-in CSP) --------------------------------------
# No inline scripts anywhere: every script is a static file. Inline *styles* are allowed
# because htmx and Chart.js set style attributes.
from django.utils.csp import CSP  # noqa: E402

MIDDLEWARE.insert(1, "django.middleware.csp.ContentSecurityPolicyMiddleware")
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Login throttling (django-axes) ---------------------------------------------------------
# After LOGIN_MAX_FAILURES failures of one username from one address, that pair is refused
# for LOGIN_LOCKOUT_SECONDS; a successful login or a password reset clears it. Attempts are
# rows in the database (not the cache), so they hold through a Redis outage and in tests.
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60)
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = LOGIN_MAX_FAILURES
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "accounts.throttle.login_username"
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
# Sign-ins are logged (axes' AccessLog: time, address, browser) and kept this many days.
LOGIN_LOG_DAYS = env_int("LOGIN_LOG_DAYS", 90)
CELERY_BEAT_SCHEDULE["accounts.prune-login-logs"] = {
    "task": "accounts.tasks.prune_login_logs",
    "schedule": 6 * 3600.0,
}
# Reverse proxies in front of the app that append to X-Forwarded-For (0: the header is
# ignored and REMOTE_ADDR is the client; see accounts/throttle.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# --- Single sign-on (OpenID Connect, issue 16) ----------------------------------------------
# mozilla-django-oidc through accounts/sso.py. OIDC_ISSUER empty: SSO off (its pages 404).
# The endpoints come from the issuer's /.well-known/openid-configuration (fetched once per
# process, cached); the OIDC_OP_* variables override single ones. Roles are mapped from the
# claim OIDC_ROLES_CLAIM through OIDC_ROLE_MAP ("<group>=<role>,…") on every login;
# OIDC_DOMAINS_CLAIM (optional) sets a reviewer's pool domains.
OIDC_ISSUER = env_str("OIDC_ISSUER", "")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "")
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "openid email profile groups")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_OP_LOGOUT_ENDPOINT = env_str("OIDC_OP_LOGOUT_ENDPOINT", "")  # else end_session_endpoint
OIDC_ROLES_CLAIM = env_str("OIDC_ROLES_CLAIM", "groups")
OIDC_ROLE_MAP: dict[str, str] = {}
for _pair in env_list(
    "OIDC_ROLE_MAP", ["coachdesk-reviewers=reviewer", "coachdesk-admins=admin", "coachdesk-ml=ml"]
):
    _group, _, _role = (part.strip() for part in _pair.partition("="))
    if not _group or _role not in {"reviewer", "admin", "ml"}:  # accounts.models.Role, not agent
        raise ImproperlyConfigured(
            f"OIDC_ROLE_MAP: {_pair!r} is not <group>=<role> with role reviewer, admin or ml"
        )
    OIDC_ROLE_MAP[_group] = _role
OIDC_DOMAINS_CLAIM = env_str("OIDC_DOMAINS_CLAIM", "")
# Off by default: linking a first SSO login to an existing user by e-mail lets whoever
# controls that address at the provider take the account over (accounts/sso_services.py).
OIDC_LINK_BY_EMAIL = env_bool("OIDC_LINK_BY_EMAIL", False)
OIDC_LEEWAY_SECONDS = env_int("OIDC_LEEWAY_SECONDS", 30)  # clock skew allowed on exp / iat
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 5)
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider logout
# Off: the login page offers only SSO, password POSTs and password resets are refused; API
# tokens keep working.
PASSWORD_LOGIN = env_bool("PASSWORD_LOGIN", True)
if not PASSWORD_LOGIN and not OIDC_ISSUER:
    raise ImproperlyConfigured("PASSWORD_LOGIN=0 needs single sign-on (set OIDC_ISSUER)")
AUTHENTICATION_BACKENDS.append("accounts.sso.OidcBackend")  # inert while OIDC_ISSUER is empty
# Logging out of an SSO session redirects the logout form's POST on to the provider's
# end_session_endpoint, and browsers hold a form's redirects to form-action.
_form_action = SECURE_CSP["form-action"]
assert isinstance(_form_action, list)
for _url in (OIDC_ISSUER, OIDC_OP_LOGOUT_ENDPOINT):
    if _url:
        _parts = urlsplit(_url)
        _form_action.append(f"{_parts.scheme}://{_parts.netloc}")
# The SSO callback is not a password guess: its failures must not count towards (or be
# refused by) the password lockout of the caller's address.
AXES_WHITELIST_CALLABLE = "accounts.sso.axes_whitelisted"

# --- Mail (password reset) ------------------------------------------------------------------
# Development prints mails on the console; production sets the SMTP backend and its server.
# (Django 6.1's MAILERS: the EMAIL_* settings are deprecated; tests swap in locmem.)
EMAIL_BACKEND_PATH = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND_PATH, "OPTIONS": {}}}
if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER", ""),
        "password": env_str("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
    }
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Coachdesk <coachdesk@localhost>")


# --- Exports --------------------------------------------------------------------------------
def _env_float(name: str, default: float, *, below: float) -> float:
    raw = env_str(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not 0 <= value < below:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least 0 and below {below}")
    return value


# Share of inputs (by a stable hash of the input text) in the validation split.
EXPORT_VALIDATION_SHARE = _env_float("EXPORT_VALIDATION_SHARE", 0.1, below=1)
# Rows fetched per query while streaming a batch from the database (memory stays flat).
EXPORT_CHUNK_SIZE = env_int("EXPORT_CHUNK_SIZE", 5000)
EXPORT_PARQUET_ROW_GROUP_ROWS = env_int("EXPORT_PARQUET_ROW_GROUP_ROWS", 10_000)
# A building batch renews its lease at least every few seconds while it streams; one silent
# for longer than this lost its worker and is taken over (or failed after the last attempt).
EXPORT_BUILD_LEASE_SECONDS = env_int("EXPORT_BUILD_LEASE_SECONDS", 300)
EXPORT_MAX_ATTEMPTS = env_int("EXPORT_MAX_ATTEMPTS", 3)
# A queued batch nobody started for this long is enqueued again (a lost broker message).
EXPORT_REQUEUE_SECONDS = env_int("EXPORT_REQUEUE_SECONDS", 600)
EXPORT_SWEEP_SECONDS = env_int("EXPORT_SWEEP_SECONDS", 60)
# Local folder for files being built; on the same filesystem as MEDIA_ROOT the finished file
# is renamed into place.
EXPORT_TMP_DIR = Path(env_str("EXPORT_TMP_DIR", str(MEDIA_ROOT / ".export-tmp")))
EXPORT_PAGE_SIZE = env_int("EXPORT_PAGE_SIZE", 20)
# Testing only: sleep this long after every chunk, so a test can kill a worker mid-build.
EXPORT_TEST_CHUNK_DELAY_SECONDS = _env_float("EXPORT_TEST_CHUNK_DELAY_SECONDS", 0.0, below=60)
CELERY_BEAT_SCHEDULE["retraining.sweep-batches"] = {
    "task": "retraining.tasks.sweep_batches",
    "schedule": float(EXPORT_SWEEP_SECONDS),
}
# Per-user limits on batches queued or building at once (issue 17): how many, and how many
# rows in all (estimated at request; one batch alone may be larger). Over them: 429.
EXPORT_MAX_ACTIVE_PER_USER = env_int("EXPORT_MAX_ACTIVE_PER_USER", 3)
EXPORT_MAX_ACTIVE_ROWS_PER_USER = env_int("EXPORT_MAX_ACTIVE_ROWS_PER_USER", 5_000_000)

# --- Evals ----------------------------------------------------------------------------------
# Share of inputs (the same stable hash as the export split) held out of training as the
# regression set: corrected and rejected items in it are what a new version is tested on.
REGRESSION_HOLDOUT_SHARE = _env_float("REGRESSION_HOLDOUT_SHARE", 0.1, below=1)

# --- KPIs -----------------------------------------------------------------------------------
# The periodic recompute of the days touched since the last run (Celery beat), in seconds.
KPI_RECOMPUTE_SECONDS = env_int("KPI_RECOMPUTE_SECONDS", 300)
# A row inserted before a run but committed after it is still read if it commits within
# this long (ids are taken at insert, visible at commit): see kpis.models.KpiCursor.
KPI_CURSOR_OVERLAP_SECONDS = env_int("KPI_CURSOR_OVERLAP_SECONDS", 600)
# Once a day, every day of the last KPI_SETTLE_DAYS is recomputed whatever the cursors say.
KPI_SETTLE_DAYS = env_int("KPI_SETTLE_DAYS", 3)
KPI_RUN_STALE_SECONDS = env_int("KPI_RUN_STALE_SECONDS", 3600)  # a run this old is dead
KPI_RUN_RETENTION_DAYS = env_int("KPI_RUN_RETENTION_DAYS", 30)
KPI_MAX_RANGE_DAYS = env_int("KPI_MAX_RANGE_DAYS", 366)  # longest range of a page / API call
# A recompute aggregates its agents together, this many agent-days per pass at most.
KPI_CHUNK_AGENT_DAYS = env_int("KPI_CHUNK_AGENT_DAYS", 5000)
# Alerts: optional webhook POST of every raised / resolved alert, retried with backoff.
KPI_ALERT_WEBHOOK_URL = env_str("KPI_ALERT_WEBHOOK_URL", "")
KPI_ALERT_WEBHOOK_TIMEOUT = env_int("KPI_ALERT_WEBHOOK_TIMEOUT", 5)
KPI_ALERT_WEBHOOK_ATTEMPTS = env_int("KPI_ALERT_WEBHOOK_ATTEMPTS", 5)
KPI_ALERT_WEBHOOK_BACKOFF_SECONDS = env_int("KPI_ALERT_WEBHOOK_BACKOFF_SECONDS", 30)
CELERY_BEAT_SCHEDULE["kpis.recompute"] = {
    "task": "kpis.tasks.recompute",
    "schedule": float(KPI_RECOMPUTE_SECONDS),
}
CELERY_BEAT_SCHEDULE["kpis.settle"] = {
    "task": "kpis.tasks.settle",
    "schedule": 86_400.0,
}
CELERY_BEAT_SCHEDULE["kpis.deliver-due-alerts"] = {
    "task": "kpis.tasks.deliver_due_alerts",
    "schedule": 60.0,
}

# --- Review deadlines (SLA, issue 16) -------------------------------------------------------
# Deadlines are set per agent / domain in the console; "working hours" count only this
# window on these days, in this time zone (DST-correct). Items with SLA_NEAR_SHARE of their
# deadline left get their priority raised by SLA_NEAR_BOOST once, and by SLA_BREACH_BOOST
# once more when past due (the sweep, every SLA_SWEEP_SECONDS); a breach alerts the leads
# (webhook SLA_ALERT_WEBHOOK_URL, default the KPI alerts' one, and e-mail). A daily digest
# goes to each lead at SLA_DIGEST_HOUR (SLA time zone).
SLA_TIME_ZONE = env_str("SLA_TIME_ZONE", "Europe/London" if TIME_ZONE == "UTC" else TIME_ZONE)
SLA_WORKDAY_START = env_str("SLA_WORKDAY_START", "09:00")
SLA_WORKDAY_END = env_str("SLA_WORKDAY_END", "17:00")
SLA_WORKDAYS = env_str("SLA_WORKDAYS", "mon-fri")
SLA_NEAR_SHARE = _env_float("SLA_NEAR_SHARE", 0.25, below=1)
SLA_NEAR_BOOST = env_int("SLA_NEAR_BOOST", 10)
SLA_BREACH_BOOST = env_int("SLA_BREACH_BOOST", 10)
SLA_SWEEP_SECONDS = env_int("SLA_SWEEP_SECONDS", 60)
SLA_ALERT_WEBHOOK_URL = env_str("SLA_ALERT_WEBHOOK_URL", KPI_ALERT_WEBHOOK_URL)
SLA_DIGEST_HOUR = env_int("SLA_DIGEST_HOUR", 8)
try:  # fail at start, not at the first routed item
    from reviews.deadlines import working_hours as _sla_week

    _sla_week(SLA_TIME_ZONE, SLA_WORKDAY_START, SLA_WORKDAY_END, SLA_WORKDAYS)
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"SLA working hours: {exc}") from None
if not 0 <= SLA_DIGEST_HOUR <= 23:
    raise ImproperlyConfigured("SLA_DIGEST_HOUR must be between 0 and 23")
CELERY_BEAT_SCHEDULE["kpis.sla-sweep"] = {
    "task": "kpis.tasks.sla_sweep",
    "schedule": float(SLA_SWEEP_SECONDS),
}
# Every 15 minutes: the task sends today's digests once the digest hour has come (so a
# beat that was down at the hour still sends them, once).
CELERY_BEAT_SCHEDULE["kpis.sla-digest"] = {
    "task": "kpis.tasks.sla_digest",
    "schedule": 900.0,
}

# --- Request limits (issue 7) ---------------------------------------------------------------
# Bodies are refused from their Content-Length before they are read (core/limits.py): the
# bulk ingest endpoints take up to INGEST_MAX_BODY_BYTES (5,000 items), everything else
# MAX_BODY_BYTES (the largest page form, a policy with long guidelines or a correction, is
# far below it; bulk console actions post at most a page of ids).
MAX_BODY_BYTES = env_int("MAX_BODY_BYTES", 1024 * 1024)
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 32 * 1024 * 1024)
if MAX_BODY_BYTES < 1024 or INGEST_MAX_BODY_BYTES < MAX_BODY_BYTES:
    raise ImproperlyConfigured(
        "MAX_BODY_BYTES must be at least 1024 and INGEST_MAX_BODY_BYTES at least MAX_BODY_BYTES"
    )
# Form posts of the pages (url-encoded): the largest legitimate one, a 20,000-character
# correction with its notes, is under 320 KiB even when every character is percent-encoded
# 4-byte UTF-8; decoding a 1 MiB form alone costs ~150 ms of CPU (bench/free_text.py).
FORM_MAX_BODY_BYTES = env_int("FORM_MAX_BODY_BYTES", 320 * 1024)
# Django's own cap when a body is read: the largest body any path accepts. It also bounds a
# body without Content-Length under ASGI (spooled first); under WSGI such a body is refused.
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES
# JSON bodies of the API: nesting depth (the root array or object is level 1) and the
# longest string or key; field limits (INGEST_MAX_TEXT_CHARS, ...) are checked per field.
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 32)
JSON_MAX_STRING_CHARS = env_int("JSON_MAX_STRING_CHARS", 1024 * 1024)
# Requests per minute per API token on POST /api/v1/interactions and /feedback (fixed
# window in the cache; fails open while the cache is down). 0 turns the limit off.
INGEST_RATE_LIMIT_PER_MINUTE = env_int("INGEST_RATE_LIMIT_PER_MINUTE", 1200)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "core.limits.RequestSizeLimitMiddleware",
)
