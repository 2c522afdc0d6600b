# One command per chore; CI (.ci/run) and people use the same ones.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
DEMO_DB ?= demo.duckdb

.PHONY: demo test lint bench schema docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -f $(DEMO_DB) $(DEMO_DB).wal
	SOCIALCREDIT_DB=$(DEMO_DB) $(BIN)/socialcredit init
	SOCIALCREDIT_DB=$(DEMO_DB) $(BIN)/socialcredit sample
	SOCIALCREDIT_DB=$(DEMO_DB) $(BIN)/python -m socialcredit.demo

# Browser tests drive Debian's Chromium (never a downloaded browser build).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/population.py

schema: $(STAMP)
	$(BIN)/socialcredit rulebook schema > src/socialcredit/rulebooks/rulebook.schema.json

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB).wal .pytest_cache .ruff_cache

docs: $(STAMP)
	$(BIN)/python -m socialcredit.reference docs
