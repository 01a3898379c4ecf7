# The front door: `make run` starts a server with the examples deployed; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench format clean bytecode

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# fnserve is installed editable, so pip compiled none of it; every replica would compile it again on start
# (with PYTHONDONTWRITEBYTECODE set, as on CI, nothing is ever cached). Only changed files are compiled again.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src

run: bytecode  ## start a server on 127.0.0.1:8000 with the examples deployed
	$(BIN)/fnserve run examples/greeter.py examples/counter.py examples/users.py

test: bytecode  ## the whole suite
	$(BIN)/pytest

check: $(STAMP)  ## formatting, lint, types
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

# The first run installs the peers (LitServe, BentoML, Ray Serve) into venvs under ~/.cache/fnserve-bench (~1 GB).
bench: bytecode  ## load tests beside a bare ASGI app and the peers, the job queue, cold starts, environments, batching, handles: benchmarks/*RESULTS.md
	@command -v wrk >/dev/null || bash benchmarks/setup.sh
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/jobs.py
	$(BIN)/python benchmarks/cold_start.py
	$(BIN)/python benchmarks/envs.py
	$(BIN)/python benchmarks/batching.py
	$(BIN)/python benchmarks/composition.py

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
	find src -name __pycache__ -prune -exec rm -rf {} +
