"""End to end against the emulator: token reuse, a refused key, operator output, a whole DAG in Airflow."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteTokenError
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from tests.conftest import CLIENT_ID, dags_test_result, make_keypair

pytestmark = pytest.mark.integration


def fresh_extra(emulator, tmp_path, kind="ec:prime256v1") -> dict:
    """Extras with a key registered only for this test, so no cached token from other tests applies."""
    keypair = emulator.register(make_keypair(tmp_path, kind))
    return {
        "account_id": emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": keypair.certificate_id,
        "private_key": keypair.private_key,
        "base_url": emulator.base_url,
    }


def test_token_is_minted_once_and_reused(emulator, tmp_path):
    config = ConnectionConfig.from_extra(fresh_extra(emulator, tmp_path))
    before = emulator.stats()["tokens_issued"]

    with NetSuiteClient(config) as client:
        totals = [client.suiteql_page("SELECT id FROM customer", limit=5)["totalResults"] for _ in range(4)]

    assert emulator.stats()["tokens_issued"] - before == 1
    assert totals[0] == len(emulator.query_db("SELECT id FROM customer"))
    assert len(set(totals)) == 1


def test_wrong_key_is_refused_with_invalid_grant(emulator, tmp_path):
    extra = fresh_extra(emulator, tmp_path / "registered")
    extra["private_key"] = make_keypair(tmp_path / "other", "ec:prime256v1").private_key

    client = NetSuiteClient(ConnectionConfig.from_extra(extra))
    with client, pytest.raises(NetSuiteTokenError) as info:
        client.suiteql_page("SELECT id FROM customer", limit=1)

    assert info.value.error == "invalid_grant"
    assert extra["certificate_id"] in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)


def test_operator_output_holds_exactly_the_selected_rows(emulator, airflow_conn_env, tmp_path):
    target = tmp_path / "out" / "customers.jsonl"
    operator = NetSuiteSuiteQLOperator(
        task_id="extract",
        query="SELECT id, companyname, isinactive FROM customer WHERE isinactive = 'F' ORDER BY companyname",
        output_path=str(target),
    )

    result = operator.execute(context={})

    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    expected = emulator.query_db("SELECT id FROM customer WHERE isinactive = 'F'")
    assert sorted(int(row["id"]) for row in written) == sorted(row["id"] for row in expected)
    assert result["rows"] == len(expected)
    assert result["path"].endswith("customers.jsonl")
    assert [int(row["id"]) for row in written] == sorted(int(row["id"]) for row in written)


@pytest.mark.airflow
def test_example_dag_runs_in_airflow(emulator, airflow_conn_env, airflow_db, tmp_path):
    env = {
        **os.environ,
        "NETSUITE_OUTPUT_ROOT": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    result = dags_test_result("netsuite_customers_daily", "2026-06-15", env)

    rows = Path(result["path"].removeprefix("file://")).read_text(encoding="utf-8").splitlines()
    assert len(rows) == result["rows"]
    assert "dt=" in result["path"]
