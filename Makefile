# Coachdesk. `make run` serves the demo; `make test` runs the whole suite.
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint bench bench-smoke clean

install: $(STAMP)

# Re-installs only when the lock or the project metadata changed, so a second call is quick.
$(STAMP): requirements.lock pyproject.toml
	@set -e; \
	if [ ! -x $(PY) ]; then \
		BASE=$$(scripts/find-python.sh); \
		echo "Creating $(VENV) with $$BASE"; \
		"$$BASE" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.13,<0.14"; \
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock; \
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .; \
	touch $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	@scripts/serve.sh $(HOST) $(PORT)

test: install
	$(PY) scripts/run_tests.py $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/ingest.py

bench-smoke: install
	$(PY) bench/ingest.py --n 2000

clean:
	rm -rf $(VENV) db.sqlite3 media .pytest_cache
