# The two set-up commands of the README: `make run` and `make test`.
# Each bootstraps what it needs (a .venv with paymesh and its dev tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# make bench STORE=postgres: every store in a database of its own on a local PostgreSQL server.
STORE ?= sqlite

.PHONY: run mesh test bench protos lint interop clean lock sbom

# Exactly the locked versions, each file checked against its hash (requirements-dev.lock, made by
# `make lock`), then paymesh itself with no dependencies of its own choosing. pip check fails when
# pyproject.toml names a dependency the lock does not have yet.
$(STAMP): pyproject.toml requirements-dev.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check || { echo "requirements-dev.lock is behind pyproject.toml: run make lock"; exit 1; }
	touch $(STAMP)

# The lock files, from pyproject.toml, with every file's SHA-256 (pip-tools: it resolves with pip
# itself, so with this machine's pip configuration and indexes). requirements.lock is the image's
# (the runtime dependencies), requirements-dev.lock CI's and developers' (the same versions, plus
# [dev]), requirements-sbom.lock the image's SBOM stage. Pins already in a lock are kept; to move
# them all to the newest allowed: make lock LOCK_FLAGS=--upgrade. pip-tools lives in a venv of its
# own (.lock-tools), so this works when the project's venv cannot be built from a stale lock.
LOCK_TOOLS := .lock-tools
LOCK_FLAGS ?=
COMPILE = $(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links $(LOCK_FLAGS)

lock:
	test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) \
		&& $(LOCK_TOOLS)/bin/pip install --quiet pip-tools==7.6.2; }
	$(COMPILE) --output-file requirements.lock pyproject.toml
	$(COMPILE) --extra dev --constraint requirements.lock --output-file requirements-dev.lock pyproject.toml
	$(COMPILE) --constraint requirements-dev.lock --output-file requirements-sbom.lock requirements-sbom.in

# The CycloneDX SBOM of what the image runs: requirements.lock installed (hash-checked) into a venv
# of its own, then read by cyclonedx-py, as the Dockerfile's sbom stage does. Written to build/sbom/.
sbom: $(STAMP)
	rm -rf build/sbom && mkdir -p build/sbom
	$(PYTHON) -m venv build/sbom/runtime
	build/sbom/runtime/bin/pip install --quiet --require-hashes --no-deps -r requirements.lock
	build/sbom/runtime/bin/pip uninstall --quiet --yes pip setuptools  # as the image's venv: not shipped
	$(BIN)/cyclonedx-py environment --output-reproducible --of JSON --mc-type application \
		--pyproject pyproject.toml -o build/sbom/paymesh.cdx.json build/sbom/runtime
	rm -rf build/sbom/runtime
	@echo "SBOM: build/sbom/paymesh.cdx.json"

run: $(STAMP)
	$(BIN)/paymesh simulate-day

mesh: $(STAMP)
	$(BIN)/paymesh up

bench: $(STAMP)
	$(BIN)/python bench/bench_mesh.py --store $(STORE)

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
	rm -rf $(VENV) .paymesh build/sbom
