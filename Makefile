# o2c — two commands: `make run` (the whole stack) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fmt typecheck test-unit test-workflow test-integration test-browser bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	env O2C_SANDBOX=1 $(BIN)/o2c dev

# The console's browser tests drive Debian's Chromium (installed when missing, as root).
test: $(STAMP)
	scripts/install-browser.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/api

test-workflow: $(STAMP)
	$(BIN)/python -m pytest -q tests/workflow

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

test-browser: $(STAMP)
	scripts/install-browser.sh
	$(BIN)/python -m pytest -q tests/browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy .

bench: $(STAMP)
	$(BIN)/python -m bench.erp
	$(BIN)/python -m bench.footprint
	$(BIN)/python -m bench.orders

clean:
	rm -rf $(VENV) .o2c build *.egg-info
