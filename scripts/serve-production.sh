#!/usr/bin/env sh
# `make serve`: the production-like entry point for one box. Checks the environment, applies
# migrations, collects static files, then runs the Procfile (gunicorn, a Celery worker and
# Celery beat) under honcho; Ctrl-C stops all three.
set -e
HOST=${1:-127.0.0.1}; PORT=${2:-8000}
missing=""
for name in DATABASE_URL REDIS_URL SECRET_KEY; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || missing="$missing $name"
done
if [ -n "$missing" ]; then
    cat >&2 <<MSG
make serve needs:$missing
  DATABASE_URL  postgres://user:password@host:5432/coachdesk (or a pooler: also set
                DATABASE_POOLER=transaction)
  REDIS_URL     redis://host:6379/0 (Celery's broker and the cache)
  SECRET_KEY    a long random string, e.g. from: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'
Optional: DATABASE_REPLICA_URL, STORAGE_URL (several machines: see the README's deployment section).
For a quick look with demo data and nothing to set up, use: make run
MSG
    exit 2
fi
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py collectstatic --noinput -v 0
echo "Coachdesk: gunicorn on http://$HOST:$PORT/, a Celery worker and beat (Procfile)"
export HOST
exec .venv/bin/honcho start --procfile Procfile --app-root . --port "$PORT"
