# The two set-up commands of the README: `make run` and `make test`.
# Each bootstraps what it needs (a .venv with paymesh and its dev tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run mesh test bench protos lint interop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/paymesh simulate-day

mesh: $(STAMP)
	$(BIN)/paymesh up

bench: $(STAMP)
	$(BIN)/python bench/bench_mesh.py

test: $(STAMP)
	$(BIN)/python -m pytest

# The Node (@grpc/grpc-js) channel client against a real mesh alone (make test runs it too).
interop: $(STAMP)
	$(BIN)/python -m pytest -q tests/interop

protos: $(STAMP)
	$(BIN)/python -m paymesh_tools.protogen

# The protos (buf), the Python (ruff, then mypy's types) and the layout's contracts (import-linter);
# each one's settings are in pyproject.toml.
lint: $(STAMP)
	cd protos && ../$(BIN)/buf lint
	$(BIN)/ruff check .
	$(BIN)/mypy
	PYTHONPATH=.:gen $(BIN)/lint-imports

clean:
	rm -rf $(VENV) .paymesh
