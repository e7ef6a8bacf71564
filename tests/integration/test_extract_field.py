"""SuiteQL extracts end to end against the emulator over HTTP: field cases 7 to 13.

The module runs its own emulator, because it generates a 150,000-row table, deletes rows and changes the
concurrency limit; every test puts the settings back as it found them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteConcurrencyLimitError
from airflow_provider_netsuite.core.suiteql import SuiteQLExtract, SuiteQLExtractError, wrap_query
from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from tests.conftest import EMULATOR_DEFAULTS, dags_test_result, own_emulator

pytestmark = pytest.mark.integration

BIG_TABLE = "bigcustomer"
BIG_ROWS = 150_000
CHURN_TABLE = "churncustomer"
ACCOUNT_ZONE = "America/Los_Angeles"
TYPED_QUERY = (
    "SELECT id, entityid, companyname, isperson, isinactive, balance, creditlimit, currency, "
    "TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS lastmodified, lastmodifieddate "
    "FROM customer WHERE id <= 2500"
)


@pytest.fixture(scope="module")
def extract_emulator(tmp_path_factory):
    """An emulator of this module's own, with a 150,000-row table and a small table to delete from."""
    with own_emulator(tmp_path_factory, "extract", timezone=ACCOUNT_ZONE) as instance:
        instance.admin("POST", "tables/generate", {"table": BIG_TABLE, "rows": BIG_ROWS})
        yield instance


@pytest.fixture
def emu(extract_emulator):
    """The module's emulator; its settings are restored after each test."""
    extract_emulator.configure(**EMULATOR_DEFAULTS)
    yield extract_emulator
    extract_emulator.configure(**EMULATOR_DEFAULTS)


@pytest.fixture
def conn_env(emu, monkeypatch) -> dict:
    """Expose the module's emulator to Airflow as ``netsuite_default``; return the extras."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": emu.extra})
    )
    return emu.extra


@pytest.fixture
def client_spy(monkeypatch) -> list[NetSuiteClient]:
    """Collect the clients the operator's hooks build, to read their governor afterwards."""
    clients: list[NetSuiteClient] = []
    original = NetSuiteHook.get_conn

    def get_conn(self):
        client = original(self)
        clients.append(client)
        return client

    monkeypatch.setattr(NetSuiteHook, "get_conn", get_conn)
    return clients


def db_rows(emulator, sql: str) -> list[dict]:
    """Run SQLite SQL on the emulator's database directly: the ground truth to compare with."""
    connection = sqlite3.connect(f"file:{emulator.state_dir / 'netsuite.db'}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(sql)]
    finally:
        connection.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line, parse_float=Decimal) for line in path.read_text(encoding="utf-8").splitlines()]


def logged(caplog, capsys) -> str:
    """Everything logged: core loggers reach ``caplog``, the operator's task logger prints to stdout."""
    return caplog.text + capsys.readouterr().out


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".inprogress-" in p.name]


# -- Field case 7: the 100,000-result cap -----------------------------------------------------------------


def test_150k_rows_extracted_whole_each_id_once(conn_env, emu, tmp_path):
    target = tmp_path / "big.jsonl"
    operator = NetSuiteSuiteQLOperator(
        task_id="big", query="SELECT id, companyname FROM bigcustomer", output_path=str(target)
    )
    before = emu.stats()["by_status"]

    result = operator.execute(context={})

    ids = [json.loads(line)["id"] for line in target.read_text(encoding="utf-8").splitlines()]
    truth = db_rows(emu, "SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM bigcustomer")[0]
    assert truth["n"] == BIG_ROWS
    assert len(ids) == len(set(ids)) == BIG_ROWS
    assert {int(i) for i in ids} == set(range(truth["lo"], truth["hi"] + 1))
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert result["strategy"] in ("key_ranges", "keyset")
    assert result["rows"] == BIG_ROWS
    # No request was refused for reaching past NetSuite's offset cap.
    assert emu.stats()["by_status"].get("400", 0) == before.get("400", 0)


def test_text_key_past_the_cap_uses_keyset(emu):
    """A text key cannot be split into ranges: past the cap the extract pages by ``WHERE entityid > last``.

    The cap is lowered to 10,000 so that the sequential key-ordered pages stay quick.
    """
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra)) as client:
        extract = SuiteQLExtract(
            client,
            "SELECT entityid FROM bigcustomer WHERE id <= 20000",
            key_columns=("entityid",),
            result_cap=10_000,
        )
        keys = [item["entityid"] for page in extract.pages() for item in page]

    assert extract.strategy == "keyset"
    assert len(keys) == len(set(keys)) == 20_000
    assert set(keys) == {f"BIG{n}" for n in range(1, 20_001)}


def test_composite_key_keyset_over_transactionline_equals_db(conn_env, emu, tmp_path):
    target = tmp_path / "lines.jsonl"
    operator = NetSuiteSuiteQLOperator(
        task_id="lines",
        query="SELECT transaction, id, item, netamount FROM transactionline WHERE transaction <= 8000",
        key_columns=("transaction", "id"),
        strategy="keyset",
        output_path=str(target),
    )

    result = operator.execute(context={})

    written = [(int(r["transaction"]), int(r["id"])) for r in read_jsonl(target)]
    truth = db_rows(
        emu,
        'SELECT "transaction" AS t, id FROM transactionline WHERE "transaction" <= 8000 '
        'ORDER BY "transaction", id',
    )
    assert result["strategy"] == "keyset"
    assert written == [(row["t"], row["id"]) for row in truth]


# -- Field case 8: ties in the sort order -----------------------------------------------------------------


def test_emulator_reorders_tied_rows_between_pages(emu):
    """Guard for the next test: a naive offset loop over a non-unique order loses and repeats rows here."""
    query = "SELECT id, lastmodifieddate FROM customer ORDER BY lastmodifieddate"
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra)) as client:
        first = client.suiteql_page(query, limit=1000, offset=0)
        ids = [
            item["id"]
            for offset in range(0, first["totalResults"], 1000)
            for item in client.suiteql_page(query, limit=1000, offset=offset)["items"]
        ]

    assert len(ids) == first["totalResults"]
    assert len(set(ids)) < len(ids)


def test_query_ordered_by_lastmodifieddate_gives_every_customer_once(conn_env, emu, tmp_path, caplog, capsys):
    tied = db_rows(emu, "SELECT lastmodifieddate, COUNT(*) AS n FROM customer GROUP BY 1 ORDER BY n DESC")[0]
    assert tied["n"] >= 3000
    target = tmp_path / "customers.jsonl"
    operator = NetSuiteSuiteQLOperator(
        task_id="tied",
        query="SELECT id, companyname, lastmodifieddate FROM customer ORDER BY lastmodifieddate",
        output_path=str(target),
    )

    operator.execute(context={})

    ids = [int(row["id"]) for row in read_jsonl(target)]
    truth = [row["id"] for row in db_rows(emu, "SELECT id FROM customer ORDER BY id")]
    assert ids == truth
    assert "ORDER BY was removed" in logged(caplog, capsys)


# -- Field case 9: an empty page while totalResults > 0 ---------------------------------------------------


class _EmptyPageAdapter(HTTPAdapter):
    """Pass requests to the emulator; blank the items of the SuiteQL page at one offset."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def send(self, request, **kwargs):
        response = super().send(request, **kwargs)
        if "/query/v1/suiteql" in request.url and f"offset={self.offset}" in request.url:
            body = response.json()
            assert body["totalResults"] > 0
            body["items"], body["count"] = [], 0
            response._content = json.dumps(body).encode()
        return response


@pytest.mark.parametrize("offset", [0, 2000])
def test_empty_page_while_total_positive_raises(emu, offset):
    session = requests.Session()
    session.mount("http://", _EmptyPageAdapter(offset))
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra), session=session) as client:
        extract = SuiteQLExtract(client, "SELECT id FROM customer")
        with pytest.raises(SuiteQLExtractError, match="empty page"):
            for _ in extract.pages():
                pass


def test_rows_deleted_between_pages_fail_the_extract(conn_env, emu, tmp_path):
    """Another user deletes rows while the extract runs: it fails instead of finishing short."""
    emu.admin("POST", "tables/generate", {"table": CHURN_TABLE, "rows": 5000})
    emu.configure(
        faults={"seed": 3, "rate": 0, "mutate_rows": {"table": CHURN_TABLE, "mode": "delete", "rows": 5}}
    )
    target = tmp_path / "churn.jsonl"
    operator = NetSuiteSuiteQLOperator(
        task_id="churn", query="SELECT id FROM churncustomer", output_path=str(target), max_concurrency=1
    )

    with pytest.raises(SuiteQLExtractError):
        operator.execute(context={})

    assert emu.stats()["faults_injected"].get("mutate_rows", 0) >= 1
    assert db_rows(emu, "SELECT COUNT(*) AS n FROM churncustomer")[0]["n"] < 5000
    assert not target.exists()
    assert leftovers(tmp_path) == []


# -- Field cases 10 and 11: types, links, dates -----------------------------------------------------------


def raw_items(emu, query: str) -> list[dict]:
    """The items exactly as the emulator sends them, for the query wrapped and ordered as the extract does."""
    wrapped = wrap_query(query, ["id"])
    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra)) as client:
        first = client.suiteql_page(wrapped)
        items = list(first["items"])
        for offset in range(1000, first["totalResults"], 1000):
            items += client.suiteql_page(wrapped, offset=offset)["items"]
    return items


def test_untyped_output_is_exactly_the_raw_items(conn_env, emu, tmp_path):
    target = tmp_path / "raw.jsonl"
    NetSuiteSuiteQLOperator(task_id="raw", query=TYPED_QUERY, output_path=str(target)).execute(context={})

    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    raw = raw_items(emu, TYPED_QUERY)
    assert written == raw
    assert all(row["links"] == [] for row in written)
    assert all(type(v) is str for row in written for k, v in row.items() if k != "links")


def typed_extract(task_id: str, target: Path, **options) -> None:
    """Run a typed extract of ``TYPED_QUERY`` (ISO dates parsed) into ``target``."""
    NetSuiteSuiteQLOperator(
        task_id=task_id,
        query=TYPED_QUERY,
        output_path=str(target),
        typed=True,
        date_format="%Y-%m-%dT%H:%M:%S",
        **options,
    ).execute(context={})


def test_typed_jsonl_has_real_values_and_exact_decimals(conn_env, emu, tmp_path):
    target = tmp_path / "typed.jsonl"
    typed_extract("typed", target)

    text_lines = target.read_text(encoding="utf-8").splitlines()
    written = [json.loads(line, parse_float=Decimal) for line in text_lines]
    raw = raw_items(emu, TYPED_QUERY)
    assert len(written) == len(raw) == 2500
    for line, row, item in zip(text_lines, written, raw, strict=True):
        assert "links" not in row
        assert type(row["id"]) is int
        assert row["id"] == int(item["id"])
        assert row["isinactive"] is {"T": True, "F": False}[item["isinactive"]]
        assert row["isperson"] is (item["isperson"] == "T")
        assert row["currency"] == int(item["currency"])
        assert row["entityid"] == item["entityid"]
        # Exact decimals: the very digits NetSuite sent appear as a JSON number, never a float's rounding.
        assert Decimal(str(row["balance"])) == Decimal(item["balance"])
        assert f'"balance":{item["balance"]}' in line
        if "creditlimit" in item:
            assert Decimal(str(row["creditlimit"])) == Decimal(item["creditlimit"])
        # Field case 11: TO_CHAR with an explicit format is parsed; the display-format date is left alone.
        assert row["lastmodified"] == item["lastmodified"]
        datetime.fromisoformat(row["lastmodified"])
        assert row["lastmodifieddate"] == item["lastmodifieddate"]
    assert any("." in item["balance"] for item in raw)


def test_typed_parquet_uses_decimal128_bool_int_and_timestamp(conn_env, emu, tmp_path):
    target = tmp_path / "typed.parquet"
    typed_extract("parquet", target, output_format="parquet")

    table = pq.read_table(target)
    schema = {field.name: str(field.type) for field in table.schema}
    assert "links" not in schema
    assert (schema["id"], schema["currency"]) == ("int64", "int64")
    assert (schema["isinactive"], schema["isperson"]) == ("bool", "bool")
    assert schema["balance"].startswith("decimal128(38,")
    assert schema["lastmodified"].startswith("timestamp")
    assert schema["lastmodifieddate"] == "string"
    raw = raw_items(emu, TYPED_QUERY)
    rows = table.to_pylist()
    for row, item in zip(rows, raw, strict=True):
        assert row["balance"] == Decimal(item["balance"])
        assert row["lastmodified"] == datetime.strptime(item["lastmodified"], "%Y-%m-%dT%H:%M:%S")
        assert row["lastmodifieddate"] == item["lastmodifieddate"]


def test_display_format_dates_are_never_guessed(conn_env, emu, tmp_path):
    """Without a date format, M/D/YYYY text stays text even with typing on."""
    target = tmp_path / "dates.jsonl"
    NetSuiteSuiteQLOperator(
        task_id="dates",
        query="SELECT id, lastmodifieddate, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS m "
        "FROM customer",
        output_path=str(target),
        typed=True,
    ).execute(context={})

    rows = read_jsonl(target)
    assert all(isinstance(row["lastmodifieddate"], str) and "/" in row["lastmodifieddate"] for row in rows)
    assert all(isinstance(row["m"], str) for row in rows)


# -- Field case 12: incremental windows -------------------------------------------------------------------


def window_ids(conn_env, tmp_path: Path, start: datetime, end: datetime, name: str) -> list[int]:
    target = tmp_path / f"{name}.jsonl"
    result = NetSuiteSuiteQLOperator(
        task_id=name,
        query="SELECT id, lastmodifieddate FROM customer",
        incremental_column="lastmodifieddate",
        output_path=str(target),
    ).execute(context={"data_interval_start": start, "data_interval_end": end})
    assert (result["window_start"], result["window_end"]) == (start.isoformat(), end.isoformat())
    return [int(row["id"]) for row in read_jsonl(target)]


def db_ids(emu, low: str, high: str) -> list[int]:
    return [
        row["id"]
        for row in db_rows(
            emu,
            f"SELECT id FROM customer WHERE lastmodifieddate >= '{low}' AND lastmodifieddate < '{high}' "  # noqa: S608
            "ORDER BY id",
        )
    ]


@pytest.mark.parametrize("first_day", ["2026-03-01", "2026-10-27"], ids=["spring-forward", "fall-back"])
def test_daily_windows_in_account_time_zone_tile_the_range(conn_env, emu, tmp_path, first_day):
    zone = ZoneInfo(ACCOUNT_ZONE)
    day = datetime.fromisoformat(first_day)
    bounds = [(day + timedelta(days=n)).replace(tzinfo=zone) for n in range(11)]

    windows = [window_ids(conn_env, tmp_path, a, b, f"w{n}") for n, (a, b) in enumerate(pairwise(bounds))]

    every = [i for ids in windows for i in ids]
    assert len(every) == len(set(every)), "a row appears in two windows"
    whole = db_ids(emu, f"{bounds[0]:%Y-%m-%d} 00:00:00", f"{bounds[-1]:%Y-%m-%d} 00:00:00")
    assert sorted(every) == whole
    for ids, (a, b) in zip(windows, pairwise(bounds), strict=True):
        assert ids == db_ids(emu, f"{a:%Y-%m-%d} 00:00:00", f"{b:%Y-%m-%d} 00:00:00")
    assert len(whole) > 20


def test_hourly_utc_windows_over_the_repeated_hour(conn_env, emu, tmp_path):
    """Hourly UTC runs across the night clocks go back in Los Angeles: no row lost or repeated."""
    start = datetime(2026, 11, 1, 5, tzinfo=ZoneInfo("UTC"))
    bounds = [start + timedelta(hours=n) for n in range(8)]

    windows = [window_ids(conn_env, tmp_path, a, b, f"h{n}") for n, (a, b) in enumerate(pairwise(bounds))]

    every = [i for ids in windows for i in ids]
    assert len(every) == len(set(every))
    low = bounds[0].astimezone(ZoneInfo(ACCOUNT_ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    high = bounds[-1].astimezone(ZoneInfo(ACCOUNT_ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    assert sorted(every) == db_ids(emu, low, high)


def run_dag(extra: dict, home_env: dict, output_root: Path, date: str) -> dict:
    env = {
        **home_env,
        "NETSUITE_OUTPUT_ROOT": str(output_root),
        "AIRFLOW_CONN_NETSUITE_DEFAULT": json.dumps({"conn_type": "netsuite", "extra": extra}),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return dags_test_result("netsuite_customers_daily", date, env)


@pytest.mark.airflow
def test_consecutive_dag_runs_do_not_overlap_and_match_db(emu, airflow_db, tmp_path):
    """Two scheduled days in real Airflow, across the 3,000-row tie at 2026-03-02 04:00 (account time)."""
    days = ("2026-03-02", "2026-03-03")
    results = [run_dag(emu.extra, dict(os.environ), tmp_path, day) for day in days]

    zone = ZoneInfo(ACCOUNT_ZONE)
    outputs = []
    for result in results:
        path = Path(result["path"].removeprefix("file://"))
        assert f"dt={result['window_start'][:10]}" in str(path)  # partitioned by the window's start
        ids = [int(row["id"]) for row in read_jsonl(path)]
        low, high = (
            datetime.fromisoformat(result[k]).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
            for k in ("window_start", "window_end")
        )
        assert ids == db_ids(emu, low, high)
        assert result["rows"] == len(ids)
        outputs.append(set(ids))
    assert results[0]["window_end"] == results[1]["window_start"]
    assert not outputs[0] & outputs[1]
    assert sum(len(ids) for ids in outputs) >= 3000


# -- Field case 13: the account's concurrency limit -------------------------------------------------------


def test_concurrency_limit_two_with_operator_at_six(conn_env, emu, tmp_path, client_spy, caplog, capsys):
    emu.configure(concurrency_limit=2, latency_ms=100, jitter_ms=20)
    emu.admin("POST", "stats/reset")
    target = tmp_path / "throttled.jsonl"
    operator = NetSuiteSuiteQLOperator(
        task_id="throttled",
        query="SELECT id, companyname FROM bigcustomer WHERE id <= 30000",
        output_path=str(target),
        max_concurrency=6,
    )

    result = operator.execute(context={})

    ids = [int(row["id"]) for row in read_jsonl(target)]
    assert ids == list(range(1, 30001))
    stats = emu.stats()
    assert stats["throttled"] > 0
    assert stats["peak_in_flight"] <= 2
    governor = client_spy[0].governor
    assert governor.throttles > 0
    assert governor.peak_in_flight <= 6
    assert "lowered concurrency" in logged(caplog, capsys)
    assert result["retries"] > 0


def test_retry_after_is_honoured(emu):
    emu.configure(retry_after=1, faults={"fail_next": 2, "kind": "429"})
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with NetSuiteClient(ConnectionConfig.from_extra(emu.extra), sleep=sleep) as client:
        started = time.monotonic()
        page = client.suiteql_page("SELECT id FROM customer", limit=5)
        elapsed = time.monotonic() - started

    assert page["count"] == 5
    assert len(waits) == 2
    assert all(1.0 <= wait <= 2.0 for wait in waits)  # Retry-After plus a small jitter
    assert elapsed >= 2.0
    assert client.stats.throttled == 2


def test_parallel_pages_wait_for_retry_after(emu):
    """Three requests against a limit of one: the refused ones wait Retry-After, then all succeed."""
    emu.configure(concurrency_limit=1, latency_ms=300, retry_after=1)
    waits: list[float] = []
    results: list[int] = []

    with NetSuiteClient(
        ConnectionConfig.from_extra(emu.extra),
        max_concurrency=3,
        sleep=lambda s: (waits.append(s), time.sleep(s)),
    ) as client:
        client.suiteql_page("SELECT id FROM customer", limit=1)  # mint the token first
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    client.suiteql_page("SELECT id FROM customer", limit=5)["count"]
                )
            )
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results == [5, 5, 5]
    assert waits
    assert all(1.0 <= wait <= 2.0 for wait in waits)  # Retry-After plus a small jitter


def test_impossible_limit_fails_naming_concurrency(conn_env, emu, tmp_path):
    emu.configure(
        retry_after=0, faults={"rate": 1.0, "kinds": {"429": 1}, "paths": ["/services/rest/query/"]}
    )
    target = tmp_path / "never.jsonl"
    target.write_text("previous run\n", encoding="utf-8")
    operator = NetSuiteSuiteQLOperator(
        task_id="never", query="SELECT id FROM customer", output_path=str(target)
    )

    with pytest.raises(NetSuiteConcurrencyLimitError, match="concurrency") as info:
        operator.execute(context={})

    assert info.value.status == 429
    assert "CONCURRENCY_LIMIT_EXCEEDED" in str(info.value)
    assert target.read_text(encoding="utf-8") == "previous run\n"
    assert leftovers(tmp_path) == []
