# speakerverify: make demo | make test | make bench
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean browser postgres

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py --shared $(SHARED)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts

browser:
	bash scripts/install-debian.sh chromium /usr/bin/chromium || echo "chromium could not be installed: the browser tests will skip"

postgres:
	bash scripts/install-debian.sh postgresql '/usr/lib/postgresql/*/bin/initdb' || echo "PostgreSQL could not be installed: the PostgreSQL store tests will skip"

test: $(STAMP) lint browser postgres
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	bash scripts/bench.sh $(SHARED)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
