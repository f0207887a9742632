# Everything a fresh machine needs, from the project's own files.
# `make demo` and `make test` create the venv on first use and clean up what they start.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Tools whose dependencies clash with the workers' (semgrep, llama.cpp's server).
TOOLS       := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp

.PHONY: demo test test-slow test-crash test-unit test-integration test-e2e bench lint up down clean tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(TOOLS_STAMP): requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet -r requirements-tools.txt
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

demo: $(STAMP)
	$(BIN)/codereview demo

test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest -q -m "not slow and not crash" tests

# A real local model (Gemma 3 270M on llama.cpp's server) through the pipeline.
test-slow: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/pytest -q -s -m slow tests/slow

test-crash: $(STAMP)
	$(BIN)/pytest -q -m crash tests/e2e

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

bench: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/triage.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy codereview schemas streams processors providers sinks sources ops

up: $(STAMP)
	$(BIN)/codereview up

down: $(STAMP)
	$(BIN)/codereview down

clean: down
	rm -rf .stack
