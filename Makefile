# One command per chore; CI (.ci/run) and people use the same ones.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
DEMO_RUN ?= runs/demo
DEMO_PORT ?= 8000

.PHONY: demo test lint bench schema docs screenshots clean mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,pandas,polars,spark,fast]'
	touch $(STAMP)

# A year of four simulated cities (about a minute), its report, then the service on 127.0.0.1 (Ctrl-C stops).
demo: $(STAMP)
	rm -rf $(DEMO_RUN)
	$(BIN)/socialcredit simulate scenarios/demo-year.yaml --out $(DEMO_RUN)
	$(BIN)/socialcredit report $(DEMO_RUN)
	$(BIN)/python -m socialcredit.cli.demo $(DEMO_RUN) --port $(DEMO_PORT)

# Browser tests drive Debian's Chromium (never a downloaded browser build).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null

# The Spark executor's tests need a Java 17 runtime (Debian's, never a downloaded JDK).
JAVA := /usr/bin/java
$(JAVA):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null

# two pytest-xdist workers, whatever the machine: a folder sharing a costly session fixture runs on one (tests/conftest.py)
TEST_WORKERS ?= 2
test: $(STAMP) $(CHROMIUM) $(JAVA)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=20

# The README's screenshots: the browser tests, writing into docs/screenshots instead of a temporary directory.
screenshots: $(STAMP) $(CHROMIUM)
	SOCIALCREDIT_SCREENSHOTS=docs $(BIN)/python -m pytest -q -m browser

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

WRK := /usr/bin/wrk
$(WRK):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

bench: $(STAMP) $(WRK)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/population.py
	$(BIN)/python benchmarks/decide.py
	$(BIN)/python benchmarks/writer.py
	$(BIN)/python benchmarks/reader.py

# Mutation testing with mutmut over the core, a score per module (hours in full; not run in CI):
# `make mutation MUTATION_SAMPLE=25` runs 25 mutants per module group (fixed seed), labelled as sampled;
# MUTATION_ARGS passes more (`--only audit`, `--json out.json`, `--children 1`).
MUTATION_SAMPLE ?=
MUTATION_ARGS ?=
mutation: $(STAMP)
	MUTATION_SAMPLE=$(MUTATION_SAMPLE) $(BIN)/python tests/mutation_run.py $(MUTATION_ARGS)

schema: $(STAMP)
	$(BIN)/socialcredit rulebook schema > src/socialcredit/rulebooks/rulebook.schema.json

clean:
	rm -rf $(VENV) $(DEMO_RUN) .pytest_cache .ruff_cache

docs: $(STAMP)
	$(BIN)/python -m socialcredit.reference docs
	$(BIN)/python -m socialcredit.cli.reference docs
