"""Every example DAG imports cleanly; the ones owned here run whole through ``airflow dags test``."""

from __future__ import annotations

import ast
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.emulator.dataset import ACCOUNT_TIME_ZONE
from tests.conftest import ROOT

EXAMPLE_DAGS = ROOT / "example_dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
PARTITIONED = "netsuite_partitioned_extract.py"
# `dags test` logs this when a task deferred and its trigger now runs in the same process.
DEFERRAL_MARKER = "[DAG TEST] running trigger in line"


def dag_ids_in(path: Path) -> set[str]:
    """Return the ``dag_id`` literals of a DAG file, read without importing it."""
    ids = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "dag_id" and isinstance(node.value, ast.Constant):
            ids.add(node.value.value)
    return ids


def test_every_example_dag_file_imports_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    files = sorted(EXAMPLE_DAGS.glob("*.py"))
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))

    assert files
    assert bag.import_errors == {}
    loaded_files = {Path(dag.fileloc).name for dag in bag.dags.values()}
    assert loaded_files == {path.name for path in files}
    for path in files:
        assert dag_ids_in(path) <= set(bag.dag_ids), path.name


def airflow_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "NETSUITE_OUTPUT_ROOT": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **extra,
    }


def dags_test_command(dag_id: str, file_name: str, *args: str) -> list[str]:
    """Return ``airflow dags test`` for one DAG, parsing only its own file (faster than the folder)."""
    return [AIRFLOW, "dags", "test", dag_id, *args, "--dagfile-path", str(EXAMPLE_DAGS / file_name)]


def dags_test(dag_id: str, file_name: str, env: dict[str, str], *args: str) -> str:
    command = dags_test_command(dag_id, file_name, *args)
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def result_line(output: str, marker: str) -> dict:
    line = next(line for line in output.splitlines() if marker in line)
    return ast.literal_eval(line.split(marker, 1)[1].strip())


@pytest.mark.airflow
@pytest.mark.integration
def test_daily_extract_dag_runs(emulator, airflow_conn_env, airflow_db, tmp_path):
    output = dags_test(
        "netsuite_customers_daily", "netsuite_customers_daily.py", airflow_env(tmp_path), "2026-06-15"
    )

    result = result_line(output, "NETSUITE_EXTRACT_RESULT")
    rows = Path(result["path"].removeprefix("file://")).read_text(encoding="utf-8").splitlines()
    assert len(rows) == result["rows"]
    start, end = (datetime.fromisoformat(result[key]) for key in ("window_start", "window_end"))
    assert end - start == timedelta(days=1)
    assert f"dt={start.date().isoformat()}" in result["path"]


@pytest.mark.airflow
@pytest.mark.integration
def test_partitioned_extract_dag_maps_one_task_per_partition(
    emulator, airflow_conn_env, airflow_db, tmp_path
):
    env = airflow_env(tmp_path, NETSUITE_PARTITIONS="3")

    result = result_line(
        dags_test("netsuite_partitioned_extract", PARTITIONED, env), "NETSUITE_PARTITIONS_RESULT"
    )

    files = [Path(path) for path in result["files"]]
    assert [path.name for path in files] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    ids = [int(json.loads(line)["id"]) for path in files for line in path.read_text().splitlines()]
    truth = sorted(row["id"] for row in emulator.query_db("SELECT id FROM customer"))
    assert sorted(ids) == truth
    assert result["rows"] == len(truth)
    assert json.loads(Path(result["manifest"]).read_text())["rows"] == len(truth)

    consumer = result_line(
        dags_test("netsuite_customers_full_consumer", PARTITIONED, env), "NETSUITE_CONSUMER_RESULT"
    )
    assert consumer == {"manifest": result["manifest"], "rows": len(truth)}


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@pytest.mark.airflow
@pytest.mark.integration
def test_wait_for_new_records_dag_defers_then_extracts(
    emulator, airflow_conn_env, netsuite_extra, airflow_db, tmp_path
):
    since = (datetime.now(ZoneInfo(ACCOUNT_TIME_ZONE)) + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    external_id = f"NEW-{uuid.uuid4().hex[:12]}"
    process = subprocess.Popen(
        dags_test_command(
            "netsuite_wait_for_new_records",
            "netsuite_wait_for_new_records.py",
            "--conf",
            json.dumps({"since": since}),
        ),
        env=airflow_env(tmp_path, NETSUITE_POKE_INTERVAL="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    output: list[str] = []
    created = False
    try:
        deadline = time.monotonic() + 240
        while (line := lines.get(timeout=max(1.0, deadline - time.monotonic()))) is not None:
            output.append(line)
            if not created and DEFERRAL_MARKER in line:
                with NetSuiteClient(ConnectionConfig.from_extra(netsuite_extra)) as client:
                    client.request(
                        "PUT",
                        f"/services/rest/record/v1/customer/eid:{external_id}",
                        json={"companyName": "New"},
                    )
                created = True
        assert process.wait(timeout=60) == 0, "".join(output)[-4000:]
    finally:
        if process.poll() is None:
            process.kill()

    assert created, "the sensor never deferred:\n" + "".join(output)[-4000:]
    result = result_line("".join(output), "NETSUITE_NEW_CUSTOMERS_RESULT")
    rows = [json.loads(line) for line in Path(result["path"]).read_text().splitlines()]
    assert result["counted"] == 1
    assert [row["companyname"] for row in rows] == ["New"]
