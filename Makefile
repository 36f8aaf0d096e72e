# Two commands for a newcomer: `make demo` and `make test`. Everything else is a helper of theirs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgresql://postgres@127.0.0.1:5432
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: demo test install install-dev apt-deps lint typecheck check pytest-pg pytest-sqlite bench clean

$(VENV)/.base-installed: requirements/base.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/dev.txt $(VENV)/.base-installed
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

install: $(VENV)/.base-installed
install-dev: $(VENV)/.dev-installed

# Debian packages the tests use; installed only when missing, so repeat runs stay offline.
APT_PACKAGES := chromium chromium-driver
apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: install
	mkdir -p var
	@# The embedded demo runs in DEBUG; .env makes every later manage.py command agree.
	@test -f .env || printf '# Written by make demo: the embedded demo runs in development mode.\nDEBUG=1\n' > .env
	$(PY) manage.py migrate --noinput
	@if [ ! -f var/.demo-seeded ]; then \
		$(PY) manage.py seed_demo && touch var/.demo-seeded; \
	fi
	@echo "Demo accounts:"; $(PY) manage.py demo_accounts
	@echo "Serving on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(PY) manage.py runserver 127.0.0.1:8000

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-dev
	$(VENV)/bin/mypy .

check: install-dev
	DJANGO_SETTINGS_MODULE=tests.settings DATABASE_URL=sqlite:///$(CURDIR)/var/check.sqlite3 $(PY) manage.py check --fail-level WARNING
	DJANGO_SETTINGS_MODULE=tests.settings DATABASE_URL=sqlite:///$(CURDIR)/var/check.sqlite3 $(PY) manage.py makemigrations --check --dry-run

# The suite runs twice: once with PostgreSQL as the application database, once with SQLite.
# Warehouse tests seed both a SQLite and a PostgreSQL warehouse in each run.
pytest-pg: install-dev
	DATABASE_URL=$(PG_URL)/hisplatform REDIS_TEST_URL=$(REDIS_URL) $(PY) -m pytest -p no:cacheprovider

pytest-sqlite: install-dev
	DATABASE_URL=sqlite:///$(CURDIR)/var/test-app.sqlite3 REDIS_TEST_URL=$(REDIS_URL) \
		$(PY) -m pytest -p no:cacheprovider

test: apt-deps install-dev lint typecheck check pytest-pg pytest-sqlite

bench: install-dev
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) var
