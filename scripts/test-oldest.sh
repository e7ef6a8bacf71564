#!/usr/bin/env bash
# Run the test suite on the oldest Airflow release the provider claims to support (see
# docs/compatibility.md). `make test` proves the newest release from requirements/lock.txt; this script proves
# the lower end of the `apache-airflow>=...` range in pyproject.toml from requirements/lock-oldest.txt.
#
#   scripts/test-oldest.sh              build .build/venv-oldest (once per lock change) and run the suite
#   scripts/test-oldest.sh -k records   extra arguments go to pytest
#   scripts/test-oldest.sh lock         regenerate requirements/lock-oldest.txt (needs .venv for uv)
#
# Browser tests are excluded (`-m "not browser"`) because they assert what only the newest UI renders:
# Airflow's UI shows an extra field declared with `"format": "password"` as a masked input from 3.3.2 on;
# 3.2.x renders the same fields, labels, drop-down and Test button, but secret inputs in clear text.
# `make test` runs them on the newest release. Everything else runs here, with nothing skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest supported release: keep it equal to the lower bound of apache-airflow in pyproject.toml.
OLDEST_AIRFLOW=3.2.0
LOCK=requirements/lock-oldest.txt
VENV=.build/venv-oldest
BIN=$VENV/bin
STAMP=$VENV/.installed

if [[ "${1:-}" == "lock" ]]; then
    # A fixed path, so the lock's "via" comments stay the same from one run to the next.
    constraints=.build/oldest-constraints.txt
    mkdir -p .build
    # With fastapi 0.137 or newer, Airflow 3.2.0's execution API cannot build its TIStateUpdate model
    # (PydanticUserError about its discriminator), so every task run fails. Airflow 3.3 caps fastapi the same.
    printf '%s\n' "apache-airflow==$OLDEST_AIRFLOW" "fastapi<0.137" >"$constraints"
    .venv/bin/uv pip compile pyproject.toml --universal --python-version 3.10 \
        --extra test --extra emulator --extra parquet --extra bench \
        --constraint "$constraints" --custom-compile-command "scripts/test-oldest.sh lock" -o "$LOCK"
    exit 0
fi

# The claim and the proof must agree: pyproject.toml's lower bound is the release this script tests.
if ! grep -q "\"apache-airflow>=$OLDEST_AIRFLOW,<4\"" pyproject.toml; then
    echo "pyproject.toml must require \"apache-airflow>=$OLDEST_AIRFLOW,<4\", the release tested here" >&2
    exit 1
fi
if ! grep -q "^apache-airflow==$OLDEST_AIRFLOW\$" "$LOCK"; then
    echo "$LOCK does not pin apache-airflow==$OLDEST_AIRFLOW; run: scripts/test-oldest.sh lock" >&2
    exit 1
fi

# Build the environment the way the Makefile builds .venv, rebuilding when the lock or pyproject changes.
if [[ ! -f $STAMP || $LOCK -nt $STAMP || pyproject.toml -nt $STAMP ]]; then
    rm -rf "$VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$BIN/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
    "$BIN/uv" pip install --quiet --python "$BIN/python" -r "$LOCK"
    "$BIN/uv" pip install --quiet --python "$BIN/python" --no-deps -e .
    touch "$STAMP"
fi

installed=$("$BIN/python" -c "from importlib.metadata import version; print(version('apache-airflow'))")
if [[ "$installed" != "$OLDEST_AIRFLOW" ]]; then
    echo "$VENV has apache-airflow $installed, expected $OLDEST_AIRFLOW" >&2
    exit 1
fi
echo "Testing on apache-airflow $installed ($VENV)"

# Each Airflow release has its own metadata database schema: never share the newest suite's AIRFLOW_HOME.
# Start it empty every time, as on a fresh clone: assets and DAG runs left by earlier runs change outcomes.
export AIRFLOW_HOME="$PWD/.build/airflow-test-oldest"
rm -rf "$AIRFLOW_HOME"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# Tests that start `airflow` (or anything else by name) must get this venv's, never .venv's.
export PATH="$PWD/$BIN:$PATH"
"$BIN/python" -m pytest -q -p no:cacheprovider -rs -m "not browser" "$@"
