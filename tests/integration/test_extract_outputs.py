"""Extract outputs end to end against the emulator: formats, object storage paths, failures, XCom, logs."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_netsuite.core import writers
from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteAPIError, NetSuiteTransientError
from airflow_provider_netsuite.core.suiteql import SuiteQLExtract, SuiteQLExtractError
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from tests.conftest import EMULATOR_DEFAULTS, own_emulator

pytestmark = pytest.mark.integration

QUERY = "SELECT id, entityid, companyname, isinactive, balance FROM customer WHERE id <= 2500"
XCOM_KEYS = {"path", "rows", "pages", "bytes", "strategy", "retries", "seconds"}


@pytest.fixture(scope="module")
def outputs_emulator(tmp_path_factory):
    """An emulator of this module's own (tests here delete rows and inject faults)."""
    with own_emulator(tmp_path_factory, "outputs") as instance:
        yield instance


@pytest.fixture
def emu(outputs_emulator, monkeypatch):
    """The module's emulator as ``netsuite_default``; its settings are restored after each test."""
    outputs_emulator.configure(**EMULATOR_DEFAULTS)
    connection = {"conn_type": "netsuite", "extra": outputs_emulator.extra}
    monkeypatch.setenv("AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps(connection))
    yield outputs_emulator
    outputs_emulator.configure(**EMULATOR_DEFAULTS)


@pytest.fixture(scope="module")
def expected(outputs_emulator) -> list[dict]:
    """The rows of ``QUERY`` exactly as the emulator sends them, in id order."""
    with NetSuiteClient(ConnectionConfig.from_extra(outputs_emulator.extra)) as client:
        items = []
        for offset in (0, 1000, 2000):
            query = f"SELECT * FROM ({QUERY}) ORDER BY id"  # noqa: S608 - constant query
            items += client.suiteql_page(query, offset=offset)["items"]
    return items


def extract(target, **options) -> dict:
    operator = NetSuiteSuiteQLOperator(task_id="extract", query=QUERY, output_path=target, **options)
    return operator.execute(context={})


def local(path) -> Path:
    return Path(str(path).removeprefix("file://"))


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".inprogress-" in p.name]


def check_summary(result: dict, target, expected_rows: int) -> None:
    assert XCOM_KEYS <= set(result)
    assert result["path"] == str(target)
    assert result["rows"] == expected_rows
    assert result["pages"] == 3
    assert result["strategy"] == "offset"
    assert result["retries"] == 0
    assert result["seconds"] >= 0
    assert result["bytes"] == local(target).stat().st_size
    json.dumps(result)  # XCom must be JSON-safe


# -- formats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_uri", [False, True], ids=["plain-path", "file-uri"])
def test_jsonl(emu, expected, tmp_path, as_uri):
    target = f"file://{tmp_path}/out/c.jsonl" if as_uri else str(tmp_path / "out" / "c.jsonl")
    if as_uri:
        target = ObjectStoragePath(target)

    result = extract(target)

    lines = local(target).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == expected
    check_summary(result, target, len(expected))
    assert leftovers(local(target).parent) == []


def test_jsonl_gzip(emu, expected, tmp_path):
    target = tmp_path / "c.jsonl.gz"

    result = extract(str(target), compression="gzip")

    text = gzip.decompress(target.read_bytes()).decode("utf-8")
    assert [json.loads(line) for line in text.splitlines()] == expected
    check_summary(result, str(target), len(expected))


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_csv(emu, expected, tmp_path, compression):
    target = ObjectStoragePath(f"file://{tmp_path}/c.csv")

    result = extract(target, output_format="csv", compression=compression)

    data = local(target).read_bytes()
    text = (gzip.decompress(data) if compression else data).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == ["id", "entityid", "companyname", "isinactive", "balance"]
    assert rows == [{k: item.get(k, "") for k in rows[0]} for item in expected]
    check_summary(result, target, len(expected))


def test_parquet(emu, expected, tmp_path):
    target = tmp_path / "c.parquet"

    result = extract(str(target), output_format="parquet")

    rows = pq.read_table(target).to_pylist()
    assert rows == [{k: item.get(k) for k in rows[0]} for item in expected]
    assert "links" not in rows[0]
    check_summary(result, str(target), len(expected))


# -- failures leave nothing incomplete --------------------------------------------------------------------


@pytest.fixture
def churn_table(emu):
    emu.admin("POST", "tables/generate", {"table": "outputchurn", "rows": 5000})
    emu.configure(faults={"seed": 5, "rate": 0, "mutate_rows": {"table": "outputchurn", "mode": "delete"}})
    return "SELECT id, companyname FROM outputchurn"


@pytest.mark.parametrize("output_format", ["jsonl", "csv", "parquet"])
def test_failure_mid_extract_publishes_nothing(emu, churn_table, tmp_path, output_format):
    target = tmp_path / f"churn.{output_format}"
    operator = NetSuiteSuiteQLOperator(
        task_id="churn", query=churn_table, output_path=str(target), output_format=output_format
    )

    with pytest.raises(SuiteQLExtractError):
        operator.execute(context={})

    assert emu.stats()["faults_injected"].get("mutate_rows", 0) >= 1
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_failure_leaves_an_existing_target_untouched(emu, churn_table, tmp_path):
    target = ObjectStoragePath(f"file://{tmp_path}/churn.jsonl")
    local(target).write_text('{"id": "from yesterday"}\n', encoding="utf-8")

    with pytest.raises(SuiteQLExtractError):
        NetSuiteSuiteQLOperator(task_id="churn", query=churn_table, output_path=target).execute(context={})

    assert local(target).read_text(encoding="utf-8") == '{"id": "from yesterday"}\n'
    assert leftovers(tmp_path) == []


def test_emulator_gone_mid_extract_leaves_nothing(tmp_path_factory, tmp_path, monkeypatch):
    """The service disappears while pages are still being fetched: nothing is published."""
    with own_emulator(tmp_path_factory, "doomed", timeout=5) as instance:
        monkeypatch.setenv(
            "AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": instance.extra})
        )
        target = tmp_path / "gone.jsonl"
        written: list[int] = []
        real_write = writers.JsonlWriter.write_page

        def write_page(self, rows):
            real_write(self, rows)
            written.append(len(rows))
            if len(written) == 2:  # two pages are in the temporary file: now the service goes away
                instance.process.kill()
                instance.process.wait()

        monkeypatch.setattr(writers.JsonlWriter, "write_page", write_page)
        monkeypatch.setattr("airflow_provider_netsuite.core.client.RetryPolicy.backoff", lambda self, n: 0.01)
        operator = NetSuiteSuiteQLOperator(
            task_id="gone", query="SELECT id FROM customer", output_path=str(target), max_concurrency=1
        )

        with pytest.raises(NetSuiteTransientError, match="connection error"):
            operator.execute(context={})

        assert len(written) >= 2
        assert not target.exists()
        assert leftovers(tmp_path) == []


# -- NetSuite's limits as the client sees them ------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "offset", "parameter"),
    [(1001, 0, "limit"), (0, 0, "limit"), (1000, 1500, "offset"), (1000, 100_000, "offset")],
)
def test_emulator_refuses_what_netsuite_refuses(emu, limit, offset, parameter):
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra)) as client:
        with pytest.raises(NetSuiteAPIError) as info:
            client.suiteql_page("SELECT id FROM customer", limit=limit, offset=offset)

    assert info.value.status == 400
    assert info.value.code == "INVALID_PARAMETER"
    assert info.value.error_query_param == parameter


def test_extract_refuses_a_page_size_netsuite_would_refuse(emu):
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra)) as client:
        with pytest.raises(ValueError, match="page_size"):
            SuiteQLExtract(client, "SELECT id FROM customer", page_size=1001)


# -- progress ---------------------------------------------------------------------------------------------


def test_progress_lines_and_summary(emu, caplog):
    emu.configure(latency_ms=60)
    logger = logging.getLogger("tests.extract.progress")
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra), max_concurrency=2) as client:
        run = SuiteQLExtract(client, QUERY, max_concurrency=1, progress_interval=0.05, logger=logger)
        with caplog.at_level(logging.INFO, logger="tests.extract.progress"):
            rows = sum(len(page) for page in run.pages())

    messages = [record.getMessage() for record in caplog.records if record.name == logger.name]
    assert rows == 2500
    assert any(m.startswith("SuiteQL extract plan: strategy offset, totalResults 2500") for m in messages)
    progress = [m for m in messages if m.startswith("SuiteQL extract: ") and " of 2500 rows" in m]
    assert progress
    assert all("rows/s" in m and "s left" in m for m in progress)
    assert messages[-1].startswith("SuiteQL extract done: 2500 rows, 3 pages")


def test_operator_logs_plan_summary_and_written_file(emu, tmp_path, caplog, capsys):
    target = tmp_path / "logged.jsonl"

    extract(str(target))

    text = caplog.text + capsys.readouterr().out
    assert "SuiteQL extract plan: strategy offset" in text
    assert "SuiteQL extract done: 2500 rows, 3 pages" in text
    assert f"Wrote 2500 rows ({target.stat().st_size} bytes) to {target}" in text
