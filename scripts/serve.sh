#!/usr/bin/env sh
# Serves Coachdesk for `make run`. With REDIS_URL set, a Celery worker (with beat) runs beside
# the web server; without it, tasks run eagerly in the web process (the embedded default).
set -e
HOST=${1:-127.0.0.1}; PORT=${2:-8000}
# The development server starts a thread per request: a database connection kept after the
# request would outlive its thread and pile up (PostgreSQL's "too many clients already").
# Closed after each request, connections stay at most one per request in flight.
export DATABASE_CONN_MAX_AGE=${DATABASE_CONN_MAX_AGE:-0}
# A development server, whatever the database: DEBUG on unless set (so no SECRET_KEY is
# needed). `make serve` is the production-like entry point.
export DEBUG=${DEBUG:-1}
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo --if-empty
cat <<MSG

  Coachdesk is starting on http://$HOST:$PORT/
  Demo logins (password: coachdesk-demo):
    admin              - review lead: console, assignment, adjudication, KPIs
    lena, omar, priya  - reviewers, legal expertise (four-eyes)
    sam                - reviewer, support and product expertise
    jonas, ines / kai  - reviewers, support / product expertise
    mia                - ML engineer: exports and KPIs
  API docs:   http://$HOST:$PORT/api/v1/docs

MSG
if [ -n "${REDIS_URL:-}" ]; then
    .venv/bin/celery -A config worker -B --loglevel=INFO --concurrency=2 &
else
    # Embedded: tasks run in-process; this loop plays celery beat for the periodic ones.
    .venv/bin/python manage.py run_periodic &
fi
WORKER=$!
trap 'kill $WORKER 2>/dev/null' EXIT INT TERM
.venv/bin/python manage.py runserver "$HOST:$PORT"
