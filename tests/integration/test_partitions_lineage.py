"""Key-range partitions cover every key exactly once; lineage is reported as plain data and degrades."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.partitions import key_range_query, plan_key_partitions, split_key_space
from airflow_provider_netsuite.operators.partitions import NetSuitePartitionPlanOperator
from airflow_provider_netsuite.operators.records import NetSuiteRecordUpsertOperator
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from airflow_provider_netsuite.utils.lineage import (
    LineageDataset,
    extract_lineage,
    record_write_lineage,
    storage_dataset,
    suiteql_tables,
    to_operator_lineage,
)

ACTIVE_CUSTOMERS = "SELECT id, companyname FROM customer WHERE isinactive = 'F' ORDER BY companyname"


@pytest.fixture
def client(netsuite_extra):
    with NetSuiteClient(ConnectionConfig.from_extra(netsuite_extra)) as instance:
        yield instance


def assert_cover_exactly(partitions, lower, upper):
    assert [p["index"] for p in partitions] == list(range(len(partitions)))
    assert partitions[0]["lower"] == lower
    assert partitions[-1]["upper"] == upper
    for before, after in itertools.pairwise(partitions):
        assert before["upper"] == after["lower"]
    assert all(p["lower"] < p["upper"] for p in partitions)


@given(
    lower=st.integers(-1000, 10**6),
    span=st.integers(1, 10**5),
    count=st.integers(1, 300),
)
def test_split_key_space_covers_the_space_exactly(lower, span, count):
    partitions = split_key_space(lower, lower + span, count)

    assert 1 <= len(partitions) <= min(count, span)
    assert_cover_exactly(partitions, lower, lower + span)
    json.dumps(partitions)


def test_split_key_space_of_an_empty_space_is_empty():
    assert split_key_space(5, 5, 3) == []


@pytest.mark.parametrize(
    ("key_range", "message"),
    [
        ({"lower": 1}, "'lower' and 'upper'"),
        ({"lower": 5, "upper": 5}, "empty"),
        ({"lower": "a", "upper": 5}, "not an integer"),
        ({"lower": 1, "upper": 5, "key_column": "id; DROP"}, "not a plain column name"),
    ],
)
def test_bad_key_range_is_refused(key_range, message):
    with pytest.raises(ValueError, match=message):
        key_range_query("SELECT id FROM customer", key_range)


def test_key_range_query_appends_bounds_after_the_query_params():
    query, params = key_range_query(
        "SELECT id FROM customer WHERE x = ? ORDER BY id", {"lower": 3, "upper": 9}
    )

    assert "ORDER BY" not in query
    assert query.rstrip().endswith("WHERE id >= ? AND id < ?")
    assert params == ["3", "9"]


@pytest.mark.integration
def test_plan_partitions_cover_the_key_space(emulator, client):
    truth = [row["id"] for row in emulator.query_db("SELECT id FROM customer WHERE isinactive = 'F'")]

    partitions = plan_key_partitions(client, ACTIVE_CUSTOMERS, "id", partitions=5)

    assert len(partitions) == 5
    assert_cover_exactly(partitions, min(truth), max(truth) + 1)
    by_size = plan_key_partitions(client, ACTIVE_CUSTOMERS, rows_per_partition=len(truth) // 3 + 1)
    assert len(by_size) == 3
    assert plan_key_partitions(client, "SELECT id FROM customer WHERE id < 0", partitions=4) == []
    with pytest.raises(ValueError, match="exactly one"):
        plan_key_partitions(client, ACTIVE_CUSTOMERS, partitions=2, rows_per_partition=10)


@pytest.mark.integration
def test_partition_outputs_together_equal_the_database(emulator, airflow_conn_env, tmp_path):
    plan = NetSuitePartitionPlanOperator(task_id="plan", query=ACTIVE_CUSTOMERS, partitions=4)
    partitions = plan.execute(context={})
    json.dumps(partitions)  # travels through XCom

    seen: list[int] = []
    for partition in partitions:
        operator = NetSuiteSuiteQLOperator(
            task_id=f"extract_{partition['index']}",
            query=ACTIVE_CUSTOMERS,
            output_path=str(tmp_path / f"part-{partition['index']:05d}.jsonl"),
            key_range=partition,
        )
        summary = operator.execute(context={})
        ids = [int(json.loads(line)["id"]) for line in Path(summary["path"]).read_text().splitlines()]
        assert all(partition["lower"] <= key < partition["upper"] for key in ids)
        assert summary["rows"] == len(ids)
        assert summary["partition"]["index"] == partition["index"]
        seen.extend(ids)

    truth = sorted(row["id"] for row in emulator.query_db("SELECT id FROM customer WHERE isinactive = 'F'"))
    assert sorted(seen) == truth
    assert len(seen) == len(set(seen))


def test_suiteql_tables_are_read_from_from_and_join():
    query = """
        SELECT t.id, tl.item, EXTRACT(YEAR FROM t.trandate) AS y, 'FROM fake' AS s
        FROM "transaction" t
        INNER JOIN transactionline tl ON tl."transaction" = t.id  -- JOIN commented
        LEFT OUTER JOIN Item AS i ON i.id = tl.item
        WHERE t.entity IN (SELECT id FROM customer c, subsidiary s WHERE c.subsidiary = s.id)
        /* FROM nothing */
    """

    assert suiteql_tables(query) == ["transaction", "transactionline", "item", "customer", "subsidiary"]
    assert suiteql_tables("SELECT * FROM (SELECT id FROM customer) ORDER BY id") == ["customer"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/netsuite/customers.jsonl", LineageDataset("file", "/data/netsuite/customers.jsonl")),
        ("file:///data/out/a.csv", LineageDataset("file", "/data/out/a.csv")),
        (
            "s3://aws_default@lake/netsuite/part-00001.jsonl",
            LineageDataset("s3://lake", "netsuite/part-00001.jsonl"),
        ),
        ("gs://bucket/x/y.parquet", LineageDataset("gs://bucket", "x/y.parquet")),
    ],
)
def test_storage_dataset_follows_openlineage_naming(path, expected):
    assert storage_dataset(path) == expected


def test_storage_dataset_of_an_object_storage_path():
    from airflow.sdk import ObjectStoragePath

    assert storage_dataset(ObjectStoragePath("s3://conn@bucket/k/v.jsonl")) == LineageDataset(
        "s3://bucket", "k/v.jsonl"
    )


def test_extract_and_record_lineage_as_plain_data():
    extract = extract_lineage(
        "1234567_SB1", "SELECT c.id FROM customer c JOIN customer p ON p.id = c.parent", "/out/c.jsonl"
    )
    assert extract.inputs == (LineageDataset("netsuite://1234567_SB1", "customer"),)
    assert extract.outputs == (LineageDataset("file", "/out/c.jsonl"),)

    write = record_write_lineage("1234567_SB1", "salesOrder", source="s3://c@b/in.csv", failure_report=None)
    assert write.inputs == (LineageDataset("s3://b", "in.csv"),)
    assert write.outputs == (LineageDataset("netsuite://1234567_SB1", "salesorder"),)


def _fake_openlineage(monkeypatch):
    """Install stand-ins for the two OpenLineage classes the provider imports."""

    class Dataset:
        def __init__(self, namespace, name):
            self.namespace, self.name = namespace, name

    class OperatorLineage:
        def __init__(self, inputs, outputs):
            self.inputs, self.outputs = inputs, outputs

    names = {
        "airflow.providers.openlineage": {},
        "airflow.providers.openlineage.extractors": {"OperatorLineage": OperatorLineage},
        "airflow.providers.common.compat.openlineage.facet": {"Dataset": Dataset},
    }
    for name, attributes in names.items():
        module = types.ModuleType(name)
        module.__path__ = []
        for key, value in attributes.items():
            setattr(module, key, value)
        monkeypatch.setitem(sys.modules, name, module)


def test_operator_lineage_is_built_when_openlineage_is_present(monkeypatch):
    _fake_openlineage(monkeypatch)

    built = to_operator_lineage(extract_lineage("123", "SELECT id FROM item", "s3://c@b/items.jsonl"))

    assert [(d.namespace, d.name) for d in built.inputs] == [("netsuite://123", "item")]
    assert [(d.namespace, d.name) for d in built.outputs] == [("s3://b", "items.jsonl")]


@pytest.mark.integration
def test_operators_work_and_skip_lineage_without_openlineage(
    emulator, airflow_conn_env, tmp_path, monkeypatch
):
    assert importlib.util.find_spec("airflow.providers.openlineage") is None
    extract = NetSuiteSuiteQLOperator(
        task_id="extract", query="SELECT id, companyname FROM customer", output_path=str(tmp_path / "c.jsonl")
    )
    assert extract.get_openlineage_facets_on_complete(None) is None  # not run yet

    summary = extract.execute(context={})

    assert summary["rows"] > 0
    assert extract.get_openlineage_facets_on_complete(None) is None
    _fake_openlineage(monkeypatch)
    lineage = extract.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"netsuite://{emulator.account_id}", "customer")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path / "c.jsonl"))]


@pytest.mark.integration
def test_record_operator_reports_the_record_type_written(emulator, airflow_conn_env, tmp_path, monkeypatch):
    source = tmp_path / "customers.jsonl"
    source.write_text(
        json.dumps({"externalId": f"LINEAGE-{tmp_path.name[-12:]}", "companyName": "Lineage Co"})
    )
    upsert = NetSuiteRecordUpsertOperator(task_id="upsert", record_type="customer", records=str(source))

    result = upsert.execute(context={})

    assert result["succeeded"] == 1
    assert upsert.get_openlineage_facets_on_complete(None) is None
    _fake_openlineage(monkeypatch)
    lineage = upsert.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", str(source))]
    assert (f"netsuite://{emulator.account_id}", "customer") in [
        (d.namespace, d.name) for d in lineage.outputs
    ]
