# Coachdesk. `make run` serves the demo; `make test` runs the whole suite.
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run serve test install install-e2e install-sso lint bench bench-smoke bench-load clean

AXE := tests/e2e/axe/node_modules/.installed
SSO_PROVIDER := tests/sso/provider/node_modules/.installed

# Also the SSO tests' OpenID Connect provider, where npm is there: `make run` needs no Node.js,
# `make test` does (it installs the provider itself).
install: $(STAMP)
	@if command -v npm >/dev/null 2>&1; then $(MAKE) -s --no-print-directory install-sso; \
	else echo "npm not found: the SSO test provider is not installed (make test needs it)"; fi

# axe-core (npm) for the browser tests' accessibility checks; only `make test` needs it.
install-e2e: $(AXE)

$(AXE): tests/e2e/axe/package.json tests/e2e/axe/package-lock.json
	npm ci --prefix tests/e2e/axe --no-audit --no-fund --loglevel=error
	touch $(AXE)

# The OpenID Connect provider (npm: oidc-provider) that the single sign-on tests start on
# loopback (tests/sso/provider); the stamp makes a second call quick.
install-sso: $(SSO_PROVIDER)

$(SSO_PROVIDER): tests/sso/provider/package.json tests/sso/provider/package-lock.json
	npm ci --prefix tests/sso/provider --no-audit --no-fund --loglevel=error
	touch $(SSO_PROVIDER)

# Re-installs only when the lock or the project metadata changed, so a second call is quick.
# The Python client (clients/python, `import coachdesk`) is installed too, for its tests;
# its one dependency (httpx) is in the lock.
$(STAMP): requirements.lock pyproject.toml clients/python/pyproject.toml
	@set -e; \
	if [ ! -x $(PY) ]; then \
		BASE=$$(scripts/find-python.sh); \
		echo "Creating $(VENV) with $$BASE"; \
		"$$BASE" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"; \
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock; \
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .; \
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e clients/python; \
	touch $(STAMP)

# The development server with demo data (migrates and seeds first); whatever DATABASE_URL
# points at, it keeps no connection between requests (scripts/serve.sh).
run: install
	@scripts/serve.sh $(HOST) $(PORT)

# Production-like, one box: gunicorn, a Celery worker and beat from the Procfile (honcho).
# Needs DATABASE_URL, REDIS_URL and SECRET_KEY; see the README's deployment section.
serve: install
	@scripts/serve-production.sh $(HOST) $(PORT)

test: install install-e2e install-sso
	$(PY) scripts/run_tests.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# Full-size benchmarks (minutes each); every script prints its figures as one JSON line.
bench: install
	$(PY) bench/ingest.py
	$(PY) bench/otlp.py
	$(PY) bench/claim.py
	$(PY) bench/console.py
	$(PY) bench/kpis.py
	$(PY) bench/export.py
	$(PY) bench/diff.py
	$(PY) bench/capacity.py
	$(PY) bench/reviewer_loop.py
	$(PY) bench/redaction.py

bench-smoke: install
	$(PY) bench/ingest.py --n 2000
	$(PY) bench/otlp.py --spans 1024
	$(PY) bench/claim.py --n 20000 --pending 4000 --claims 50 --screen-samples 20
	$(PY) bench/console.py --n 20000 --pending 4000 --assign 1000 --rounds 3
	$(PY) bench/kpis.py --n 3000 --days 7
	$(PY) bench/export.py --n 2000
	$(PY) bench/diff.py --n 2000 --before-timeout 2 --repeat 1
	$(PY) bench/capacity.py --smoke
	$(PY) bench/reviewer_loop.py --smoke
	$(PY) bench/redaction.py --n 2000

# Load test (issue 7): 50 reviewers on the real pages + 500 interactions/s for 120 s against
# gunicorn, PostgreSQL, Redis and Celery (database coachdesk_load, Redis DB 7); ARGS to resize.
# The highest ingest rate with page p95 < 300 ms: make bench-load ARGS=--find-max-rate
bench-load: install
	$(PY) bench/load.py $(ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 media .pytest_cache tests/e2e/axe/node_modules \
		tests/sso/provider/node_modules
