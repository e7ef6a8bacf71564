"""`make demo` as a newcomer runs it: the example DAG through real Airflow against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_the_rows_it_extracted_and_matches_the_emulator(tmp_path):
    env = {**os.environ, "NETSUITE_DEMO_WORK": str(tmp_path / "demo")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = re.search(
        r"Rows in the output file: (\d+); rows the query selects in the emulator's data: (\d+)", result.stdout
    )
    assert counts, result.stdout
    written, expected = map(int, counts.groups())
    assert written == expected > 0
    sample = re.findall(r'^  \{"id": "?\d+"?, .*\}$', result.stdout, re.MULTILINE)
    assert len(sample) == min(5, written)
    assert str(tmp_path / "demo") in result.stdout
