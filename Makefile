# Everything a newcomer needs: `make demo` runs the example DAG against the emulator, `make test` runs the
# suite. Both build the virtual environment first from the pinned lock file.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: venv demo test test-oldest lint bench bench-upsert bench-token-cache soak browser-deps lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/lock.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

test: venv browser-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The suite on the oldest Airflow the package claims (docs/compatibility.md); browser tests excluded.
test-oldest:
	bash scripts/test-oldest.sh $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/python benchmarks/extract.py

bench-upsert: venv
	$(BIN)/python benchmarks/upsert.py

bench-token-cache: venv
	$(BIN)/python benchmarks/token_cache.py

soak: venv
	$(BIN)/python benchmarks/soak.py

# Debian's Chromium for the browser test (apt; Playwright drives it, no browser download).
browser-deps:
	bash scripts/install-browser.sh

# Regenerate the pinned set after changing dependencies in pyproject.toml.
lock:
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.10 \
		--extra test --extra emulator --extra parquet --extra bench -o requirements/lock.txt

clean:
	rm -rf $(VENV) .build demo-output
