# Two commands for a fresh clone: `make run` and `make test`. Only python3 is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The suite runs on PostgreSQL; pytest-django creates and drops test_<name> (test_<name>_gw0, _gw1: one
# per pytest-xdist process). Two processes keep both cores busy while tests wait on workers and browsers.
TEST_PROCESSES ?= 2
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/trama

.PHONY: run test lint format venv clean chromium js-test bench

venv: $(VENV)/.dev

# `make run` needs only the runtime packages; the tools for tests and lint come on top.
$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# `make run PORT=8010` binds another port; callback URLs follow it unless TRAMA_PUBLIC_URL is set.
PORT ?= 8000

# Local use calls services on this machine: allow loopback explicitly (the default refuses it).
# trama_dev checks the port, database and queue, migrates, collects static files, then starts.
run: export TRAMA_EGRESS_ALLOW ?= 127.0.0.1,localhost
run: $(VENV)/.runtime
	$(BIN)/python manage.py trama_dev --addr 127.0.0.1:$(PORT)

# mypy checks the state machine and its vocabulary (files: [tool.mypy] in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo  # import contracts in pyproject.toml: no cycles, apps import only downwards
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv lint js-test chromium
	DATABASE_URL=$(TEST_DATABASE_URL) TRAMA_DB_POOL_SIZE=0 $(BIN)/python manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) TRAMA_DB_POOL_SIZE=0 $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -n $(TEST_PROCESSES) $(PYTEST_ARGS)

# The pure functions of the page scripts (layout, timeline, the model edits) under node's own test
# runner: no browser, no npm packages (package.json only says the scripts are ES modules). .ci/run
# installs node when it is missing; elsewhere these tests are skipped without it (failed when CI is set).
js-test:
	@if command -v node >/dev/null 2>&1; then node --test tests/js/*.test.js; \
	elif [ "$(CI)" = "true" ]; then echo "node is missing: the JavaScript tests cannot run" >&2; exit 1; \
	else echo "node is missing: the JavaScript tests are skipped (apt-get install nodejs)" >&2; fi

# The browser tests (marked `browser`; fixtures in tests/support/browser.py) drive Debian's chromium
# through Playwright (never `playwright install`). Installed with apt when missing; without it (not
# root) those tests skip, or fail when CI is set (tests/conftest.py).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "chromium could not be installed: the browser tests will be skipped (failed under CI)" >&2

# Benchmarks (bench/, docs/benchmarks.md): PostgreSQL and Redis on this machine; BENCH_ARGS=--quick for a few minutes.
bench: venv
	$(BIN)/pip install --quiet -r bench/requirements-bench.txt || echo "DBOS not installed: its peer scenario will report why" >&2
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .import_linter_cache
