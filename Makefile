# Everything a fresh machine needs, from the project's own files.
# `make demo` and `make test` create the venv on first use and clean up what they start.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-crash test-unit test-integration test-e2e bench lint up down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/codereview demo

test: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not crash" tests

test-crash: $(STAMP)
	$(BIN)/pytest -q -m crash tests/e2e

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

bench: $(STAMP)
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/ingest.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy codereview schemas streams processors providers sinks sources ops

up: $(STAMP)
	$(BIN)/codereview up

down: $(STAMP)
	$(BIN)/codereview down

clean: down
	rm -rf .stack
