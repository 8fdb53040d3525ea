# The two set-up commands of the README: `make run` and `make test`.
# Each bootstraps what it needs (a .venv with paymesh and its dev tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run mesh test bench protos lint clean

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

protos: $(STAMP)
	$(BIN)/python -m paymesh_tools.protogen

lint: $(STAMP)
	cd protos && ../$(BIN)/buf lint

clean:
	rm -rf $(VENV) .paymesh
