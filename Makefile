# The two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The twin runs 60x real time; short polls and error persistence keep the demo brisk.
demo: $(STAMP)
	AERODECK_POLL_INTERVAL_S=1 AERODECK_ERROR_PERSIST_S=10 AERODECK_VALIDATION_DURATION_S=15 \
		$(BIN)/aerodeck up --demo

test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Debian packages the tests drive for real: Prometheus, kubectl (Debian's kubernetes-client).
system-deps:
	bash .ci/system-deps

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
