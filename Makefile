# swr-replication-etl: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.installed-run
STAMP  := $(VENV)/.installed-test
# a second environment with DuckDB's httpfs extension (the [httpfs] extra pins DuckDB 1.5.5): tests/test_httpfs.py
HTTPFS := .venv-httpfs
HTTPFS_STAMP := $(HTTPFS)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# what `swr-etl` needs to run, and nothing else (the test toolchain is hundreds of MB more)
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

$(HTTPFS_STAMP): pyproject.toml
	$(PYTHON) -m venv $(HTTPFS)
	$(HTTPFS)/bin/pip install -q --upgrade pip
	$(HTTPFS)/bin/pip install -q -e '.[test-httpfs]'
	touch $(HTTPFS_STAMP)

venv: $(STAMP) ## create .venv and install the package with its test extras

run: $(RUNTIME) ## the demo: sandbox API on loopback, full pipeline, summary (runtime dependencies only)
	$(BIN)/swr-etl demo

test: $(STAMP) $(HTTPFS_STAMP) lint ## lint, type-check and run the whole test suite (on every core, at most 4)
	$(BIN)/pytest -q -n auto --maxprocesses=4
	SWR_ETL_TEST_HTTPFS=1 $(HTTPFS)/bin/pytest -q -p no:cacheprovider tests/test_httpfs.py

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check pipeline tests bench docs/examples
	$(BIN)/ruff format --check pipeline tests bench docs/examples
	$(BIN)/mypy

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format pipeline tests bench docs/examples
	$(BIN)/ruff check --fix pipeline tests bench docs/examples

bench: $(STAMP) ## benchmarks: prints figures and ratios (takes minutes)
	$(BIN)/python -m bench

docs: $(STAMP) ## regenerate docs/data-dictionary.md from the schemas and sql/
	$(BIN)/python -m pipeline.warehouse.dictionary > docs/data-dictionary.md

clean: ## remove caches (keeps .venv and data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info

.PHONY: help venv run test lint fmt bench docs clean
