"""SuiteQL extracts while NetSuite has a bad day: every row exactly once, and a file whole or absent.

One emulator serves this module. 30 % of its answers are transient faults of every kind (429, 500, 502,
503, a connection reset mid-body, a 200 whose JSON is cut short, an HTML page instead of JSON), drawn from
a fixed seed. The extracts run through the Airflow operator, as a DAG task would.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_netsuite.core.client import NetSuiteClient, RetryPolicy
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteConcurrencyLimitError, NetSuiteTransientError
from airflow_provider_netsuite.core.suiteql import SuiteQLExtract, SuiteQLExtractError
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from tests.conftest import TBA_EXTRA
from tests.reliability.conftest import ALL_KINDS, FAULT_MIX, PATIENT_RETRIES, files_in, use_connection

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_backoff")]

TABLE = "rel_extract"
ROWS = 150_000
FAST_RETRIES = {"max_retries": 2, "max_retry_wait": 1}


@pytest.fixture(scope="module")
def big_table(module_emulator) -> str:
    """A generated table with ids 1..150,000 (dense), the ground truth of these extracts."""
    module_emulator.admin("POST", "tables/generate", {"table": TABLE, "rows": ROWS})
    truth = module_emulator.query_db("SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM rel_extract")
    assert truth == [{"n": ROWS, "lo": 1, "hi": ROWS}]
    return TABLE


@pytest.fixture(autouse=True)
def faults_reset(module_emulator):
    """Each test starts with faults off and zeroed statistics, and leaves faults off."""
    module_emulator.configure(faults={}, latency_ms=0)
    module_emulator.admin("POST", "stats/reset")
    yield
    module_emulator.configure(faults={}, latency_ms=0)


def run_extract(monkeypatch, extra: dict, output: Path, query: str, **kwargs) -> dict:
    use_connection(monkeypatch, extra)
    operator = NetSuiteSuiteQLOperator(
        task_id="extract", query=query, output_path=str(output), output_format="jsonl", **kwargs
    )
    return operator.execute({})


def read_ids(path: Path) -> list[int]:
    with path.open() as lines:
        return [int(json.loads(line)["id"]) for line in lines]


def check_exactly_once(path: Path, expected: range) -> None:
    ids = read_ids(path)
    assert len(ids) == len(expected), f"{len(ids)} rows written, {len(expected)} expected"
    assert len(set(ids)) == len(ids), "a row was written twice"
    assert set(ids) == set(expected), "rows are missing"
    assert ids == sorted(ids), "rows are not in key order"


def test_10k_rows_under_30_percent_faults_arrive_exactly_once(
    monkeypatch, tmp_path, module_emulator, module_extra, big_table
):
    module_emulator.configure(faults=FAULT_MIX)
    output = tmp_path / "out" / "rows.jsonl"

    summary = run_extract(
        monkeypatch,
        {**module_extra, **PATIENT_RETRIES},
        output,
        "SELECT id, companyname FROM rel_extract WHERE id <= 10000",
    )

    check_exactly_once(output, range(1, 10_001))
    assert summary["rows"] == 10_000
    stats = module_emulator.stats()
    assert sum(stats["faults_injected"].values()) > 0
    assert summary["retries"] > 0
    assert files_in(output.parent) == ["rows.jsonl"]


def test_10k_rows_key_ordered_paging_under_faults(
    monkeypatch, tmp_path, module_emulator, module_extra, big_table
):
    module_emulator.configure(faults=FAULT_MIX)
    output = tmp_path / "rows.jsonl"

    summary = run_extract(
        monkeypatch,
        {**module_extra, **PATIENT_RETRIES},
        output,
        "SELECT id, companyname FROM rel_extract WHERE id <= 10000 ORDER BY companyname",
        strategy="keyset",
    )

    assert summary["strategy"] == "keyset"
    check_exactly_once(output, range(1, 10_001))


def test_150k_rows_past_the_offset_cap_under_faults_arrive_exactly_once(
    monkeypatch, tmp_path, module_emulator, module_extra, big_table
):
    module_emulator.configure(faults=FAULT_MIX)
    output = tmp_path / "rows.jsonl"

    extra = {**module_extra, **PATIENT_RETRIES}
    summary = run_extract(monkeypatch, extra, output, "SELECT id, companyname FROM rel_extract")

    check_exactly_once(output, range(1, ROWS + 1))
    assert summary["strategy"] in ("key_ranges", "keyset")
    injected = module_emulator.stats()["faults_injected"]
    assert set(ALL_KINDS) <= set(injected), f"not every kind of fault was met: {injected}"
    # The content is the emulator's, not the made-up page a reset or truncate fault carries.
    first = json.loads(output.open().readline())
    truth = module_emulator.query_db("SELECT companyname FROM rel_extract WHERE id = 1")[0]
    assert first["companyname"] == truth["companyname"]


@pytest.mark.parametrize(
    ("kind", "error", "cause"),
    [("503", NetSuiteTransientError, "503"), ("429", NetSuiteConcurrencyLimitError, "concurrency limit")],
)
def test_fault_outlasting_the_retry_budget_fails_cleanly_and_a_rerun_succeeds(
    monkeypatch, tmp_path, module_emulator, module_extra, big_table, kind, error, cause
):
    extra = {**module_extra, **FAST_RETRIES}
    output = tmp_path / "target" / "rows.jsonl"
    query = "SELECT id, companyname FROM rel_extract WHERE id <= 5000"
    module_emulator.configure(faults={"fail_next": 10_000, "kind": kind})

    with pytest.raises(error) as raised:
        run_extract(monkeypatch, extra, output, query)

    assert cause in str(raised.value)
    assert files_in(output.parent) == [], "a failed extract left a file behind"
    assert module_emulator.stats()["faults_injected"][kind] == 3  # max_retries=2: three attempts

    module_emulator.configure(faults={})
    run_extract(monkeypatch, extra, output, query)  # the task retry
    check_exactly_once(output, range(1, 5_001))
    assert files_in(output.parent) == ["rows.jsonl"]


def test_outage_in_the_middle_of_an_extract_leaves_no_partial_file(
    monkeypatch, tmp_path, module_emulator, module_extra, big_table
):
    """The outage starts after rows were already written to the temporary file: none of it survives."""
    extra = {**module_extra, **FAST_RETRIES}
    output = tmp_path / "target" / "rows.jsonl"
    output.parent.mkdir()
    output.write_text("yesterday's complete file\n")
    module_emulator.configure(latency_ms=20)
    outcome: dict = {}

    def extract() -> None:
        try:
            run_extract(
                monkeypatch, extra, output, "SELECT id, companyname FROM rel_extract", max_concurrency=2
            )
        except Exception as exc:  # the test inspects it below
            outcome["error"] = exc

    worker = threading.Thread(target=extract)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partial = [p for p in output.parent.iterdir() if ".inprogress-" in p.name and p.stat().st_size > 0]
        if partial:
            break
        time.sleep(0.02)
    assert partial, "the extract never started writing"
    module_emulator.configure(faults={"fail_next": 100_000, "kind": "503"})
    worker.join(120)

    assert isinstance(outcome.get("error"), NetSuiteTransientError), outcome
    assert "503" in str(outcome["error"])
    assert files_in(output.parent) == ["rows.jsonl"]
    assert output.read_text() == "yesterday's complete file\n"


def test_tokens_that_stop_working_early_lose_and_repeat_no_page(module_emulator, module_extra, big_table):
    """Tokens refused 1 s after minting (``expires_in`` still says 3600) during a long extract with faults."""
    # 80 pages of 250 rows, 100 ms each, 4 at a time: at least 2 s, so a token dies mid-extract however
    # fast the machine is.
    module_emulator.configure(
        latency_ms=100, faults={**FAULT_MIX, "rate": 0.1, "token_early_expiry_seconds": 1.0}
    )
    config = ConnectionConfig.from_extra(module_extra)
    retry = RetryPolicy(max_attempts=10, backoff_base=0.05, backoff_cap=0.5)
    with NetSuiteClient(config, max_concurrency=4, retry=retry) as client:
        extract = SuiteQLExtract(client, "SELECT id FROM rel_extract WHERE id <= 20000", page_size=250)
        ids = [int(row["id"]) for page in extract.pages() for row in page]
        stats = client.stats

    assert len(ids) == 20_000
    assert set(ids) == set(range(1, 20_001))
    assert module_emulator.stats()["faults_injected"].get("token_early_expiry", 0) > 0
    assert stats.unauthorized > 0
    assert stats.token_mints > 1


def test_rows_changing_during_an_extract_stop_it_instead_of_writing_a_wrong_file(
    monkeypatch, tmp_path, module_emulator, module_extra
):
    module_emulator.admin("POST", "tables/generate", {"table": "rel_moving", "rows": 5000})
    module_emulator.configure(
        faults={"seed": 3, "mutate_rows": {"table": "rel_moving", "every": 2, "mode": "insert"}}
    )
    output = tmp_path / "rows.jsonl"

    with pytest.raises(SuiteQLExtractError, match="changed"):
        run_extract(monkeypatch, module_extra, output, "SELECT id FROM rel_moving", max_concurrency=1)

    assert files_in(tmp_path) == []


def test_tba_concurrency_reported_as_login_errors_loses_and_repeats_no_page(module_emulator, big_table):
    """Under TBA, 30 % of answers are a plain 401 INVALID_LOGIN (how other tools see the limit there)."""
    credentials = module_emulator.register_tba({**TBA_EXTRA, "consumer_key": "ck-reliability"})
    config = ConnectionConfig.from_extra(
        {
            **credentials,
            "account_id": module_emulator.account_id,
            "base_url": module_emulator.base_url,
            **PATIENT_RETRIES,
        }
    )
    with NetSuiteClient(config, max_concurrency=4) as client:
        client.suiteql_page("SELECT id FROM rel_extract WHERE id = 1", limit=1)  # the credentials work
        module_emulator.configure(faults={"seed": 5, "rate": 0.3, "kinds": {"login": 1}})
        extract = SuiteQLExtract(client, "SELECT id FROM rel_extract WHERE id <= 20000", page_size=500)
        ids = [int(row["id"]) for page in extract.pages() for row in page]
        stats = client.stats

    assert ids == list(range(1, 20_001))
    injected = module_emulator.stats()["faults_injected"].get("login", 0)
    assert injected > 0
    assert stats.throttled == injected
