"""`make test`: finds PostgreSQL and Redis, then runs pytest.

PostgreSQL / Redis come from DATABASE_URL / REDIS_URL, else the local defaults. When one does
not answer, the suite runs on SQLite with the tests that need it skipped, under a loud
banner; with COACHDESK_REQUIRE_SERVICES=1 (set by .ci/run) that is a failure instead.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/coachdesk"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def postgres_answers(url: str) -> str | None:
    import psycopg

    from config.env import database_from_url

    db = database_from_url(url)
    try:
        # The server's maintenance database: the test database does not exist yet.
        psycopg.connect(
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def redis_answers(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return str(exc)
    return None


def main() -> int:
    sys.path.insert(0, str(ROOT))
    env = os.environ
    pg_url = env.get("DATABASE_URL") or DEFAULT_PG
    redis_url = env.get("REDIS_URL") or DEFAULT_REDIS
    missing = []
    if pg_url.startswith("sqlite"):
        missing.append(f"PostgreSQL (DATABASE_URL is {pg_url})")
    elif problem := postgres_answers(pg_url):
        missing.append(f"PostgreSQL at {pg_url}: {problem}")
    if problem := redis_answers(redis_url):
        missing.append(f"Redis at {redis_url}: {problem}")

    env.setdefault("SECRET_KEY", "test-only-secret-key")
    env["COACHDESK_PLAIN_STATIC"] = "1"
    if any(m.startswith("PostgreSQL") for m in missing):
        env["DATABASE_URL"] = f"sqlite:///{ROOT / 'test.sqlite3'}"
    else:
        env["DATABASE_URL"] = pg_url
    # Celery runs eagerly in tests; tests that need a real worker use TEST_REDIS_URL.
    env.pop("REDIS_URL", None)
    if not any(m.startswith("Redis") for m in missing):
        env["TEST_REDIS_URL"] = redis_url
    env["COACHDESK_MISSING_SERVICES"] = "\n".join(missing)

    if missing:
        line = "!" * 78
        print(line, file=sys.stderr)
        print("!!  SERVICES MISSING: tests that need them are SKIPPED", file=sys.stderr)
        for m in missing:
            print(f"!!  - {m}", file=sys.stderr)
        if env.get("COACHDESK_REQUIRE_SERVICES") == "1":
            print("!!  COACHDESK_REQUIRE_SERVICES=1: that is a failure.", file=sys.stderr)
            print(line, file=sys.stderr)
            return 3
        print(
            "!!  The suite runs on SQLite. Start them for a full run (see README).", file=sys.stderr
        )
        print(line, file=sys.stderr)

    args = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    os.chdir(ROOT)
    os.execv(sys.executable, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
