# mevsuite — the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_TIMEOUT ?= 180
HYPOTHESIS_PROFILE ?= $(if $(CI),ci,dev)

.PHONY: setup demo test test-long bench lint format clean help

help:
	@echo "make setup   - create .venv ($(PYTHON)), install Python + node dependencies"
	@echo "make demo    - devnet with real Uniswap/Aave bytecode, block builder, traffic, a recording bot"
	@echo "make test    - the test suite (pytest, with timeouts)"
	@echo "make bench   - benchmarks, printed as tables"
	@echo "make lint    - ruff check + format --check, mypy --strict (chains, analytics, bots), import-linter layers"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; mevsuite needs Python 3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev,ml]"
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

setup: $(STAMP) $(NODE_STAMP)

demo: setup
	$(VENV)/bin/mevsuite demo

test: setup
	$(PY) -m pytest -p no:cacheprovider --timeout=$(PYTEST_TIMEOUT) --durations=30 \
		--hypothesis-profile=$(HYPOTHESIS_PROFILE) $(PYTEST_ARGS)

test-long: setup
	$(PY) -m pytest --timeout=900 --durations=30 --hypothesis-profile=long -m "slow or not slow" $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chains/ analytics/ bots/
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
