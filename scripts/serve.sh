#!/usr/bin/env sh
# Serves Coachdesk for `make run`. With REDIS_URL set, a Celery worker (with beat) runs beside
# the web server; without it, tasks run eagerly in the web process (the embedded default).
set -e
HOST=${1:-127.0.0.1}; PORT=${2:-8000}
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
