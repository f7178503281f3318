# One entry point for everything; targets that need the venv build it first, so `make test`
# works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format format-check check bench train sweep ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,dask]'
	touch $(STAMP)

install: $(STAMP)

# Most tests wait on real processes (mgrun, MLflow servers, workers): one pytest worker per core,
# each taking whole files so that a file's shared fixtures (a Dask cluster, a store) start once.
TEST_JOBS ?= auto
test: install
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .

format-check: install
	$(BIN)/ruff format --check .

check: lint format-check test

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m tests.bench

train: install
	$(BIN)/mgrun train configs/moons.yaml

sweep: install
	$(BIN)/mgrun sweep experiments/moons_grid.yaml

ui: install
	$(BIN)/mgrun ui

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
