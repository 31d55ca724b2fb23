# Every target sets itself up: a local virtualenv in .venv, installed from the hash-pinned dev
# lock and refreshed when a lock or pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_LOCK := requirements/runtime.lock
DEV_LOCK := requirements/dev.lock

# The locks are made by uv against PyPI alone (uv reads no pip configuration, so a machine's
# local indexes or find-links never leak in), for Python 3.11 on every platform. uv lives in
# its own virtualenv, outside the project's environment. `make lock` keeps the current pins
# where pyproject.toml still allows them; `make lock LOCK_ARGS=--upgrade` moves every pin to
# the newest release.
UV_VERSION := 0.13.9
UV := build/uv-$(UV_VERSION)/bin/uv
LOCK_ARGS ?=
UV_COMPILE := $(UV) pip compile pyproject.toml --quiet --generate-hashes --universal \
	--python-version 3.11 --default-index https://pypi.org/simple \
	--custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: demo test test-quick lint format bench lock lock-check clean

$(STAMP): pyproject.toml $(RUNTIME_LOCK) $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ideogram-bot demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-quick: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot storage adapters

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The dev lock is constrained by the runtime lock, so both pin a shared package alike.
lock: $(UV)
	$(UV_COMPILE) -o $(RUNTIME_LOCK)
	$(UV_COMPILE) --extra dev -c $(RUNTIME_LOCK) -o $(DEV_LOCK)

lock-check: $(STAMP)
	$(BIN)/python tools/check_lock.py

$(UV):
	$(PYTHON) -m venv build/uv-$(UV_VERSION)
	build/uv-$(UV_VERSION)/bin/python -m pip install --quiet uv==$(UV_VERSION)

clean:
	rm -rf $(VENV) build/uv-* .pytest_cache .mypy_cache .ruff_cache out data/demo
