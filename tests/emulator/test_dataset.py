"""The demo account's data set: deterministic, realistic, and shaped to expose paging bugs."""

# Test SQL is built from constants of the tests themselves.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import sqlite3
import time

import pytest

from airflow_provider_netsuite.emulator import dataset
from airflow_provider_netsuite.emulator.suiteql import run_sql

TABLES = ("subsidiary", "currency", "customer", "item", "transaction", "transactionline")


def checksum(path: str) -> str:
    digest = hashlib.sha256()
    connection = sqlite3.connect(path)
    try:
        for table in TABLES:
            for row in connection.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr(row).encode())
    finally:
        connection.close()
    return digest.hexdigest()


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("dataset") / "account.db")
    dataset.create_database(path)
    return path


def test_same_seed_gives_identical_data(db, tmp_path):
    again = str(tmp_path / "again.db")
    dataset.create_database(again, seed=42)
    assert checksum(again) == checksum(db)


def test_other_seed_gives_other_data(db, tmp_path):
    other = str(tmp_path / "other.db")
    dataset.create_database(other, seed=7)
    assert checksum(other) != checksum(db)


def test_create_database_replaces_existing_file(tmp_path):
    path = str(tmp_path / "twice.db")
    dataset.create_database(path)
    dataset.create_database(path)
    assert run_sql(path, "SELECT COUNT(*) AS n FROM customer") == [{"n": dataset.CUSTOMER_COUNT}]


def test_row_counts(db):
    counts = {table: run_sql(db, f'SELECT COUNT(*) AS n FROM "{table}"')[0]["n"] for table in TABLES}
    assert counts["customer"] == 5_000
    assert counts["item"] == 1_000
    assert counts["transaction"] == 20_000
    assert 40_000 <= counts["transactionline"] <= 80_000


def test_ids_are_dense_and_unique(db):
    for table in ("customer", "item", "transaction"):
        row = run_sql(db, f'SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(DISTINCT id) AS n FROM "{table}"')[0]
        assert row == {"lo": 1, "hi": row["n"], "n": row["n"]}


def test_three_thousand_customers_share_one_lastmodifieddate(db):
    groups = run_sql(
        db,
        "SELECT lastmodifieddate, COUNT(*) AS n FROM customer GROUP BY lastmodifieddate "
        "ORDER BY n DESC LIMIT 2",
    )
    assert groups[0] == {"lastmodifieddate": dataset.TIE_LASTMODIFIED, "n": dataset.TIE_GROUP_SIZE}
    assert groups[1]["n"] == dataset.SECOND_TIE_GROUP_SIZE


def test_dates_are_in_the_window_and_ordered(db):
    row = run_sql(
        db,
        "SELECT MIN(datecreated) AS first, MAX(lastmodifieddate) AS last, "
        "SUM(lastmodifieddate < datecreated) AS backwards FROM customer",
    )[0]
    assert row["first"] >= "2025-01-01 00:00:00"
    assert row["last"] <= "2026-11-30 23:59:59"
    assert row["backwards"] == 0
    trandates = run_sql(db, "SELECT COUNT(*) AS n FROM \"transaction\" WHERE trandate NOT LIKE '% 00:00:00'")
    assert trandates == [{"n": 0}]


def test_external_ids_unique_with_some_missing(db):
    row = run_sql(
        db,
        "SELECT COUNT(externalid) AS present, COUNT(DISTINCT externalid) AS distinct_ids, COUNT(*) AS n "
        "FROM customer",
    )[0]
    assert row["present"] == row["distinct_ids"]
    assert 0 < row["present"] < row["n"]
    assert run_sql(db, "SELECT externalid FROM customer WHERE id = 123") in (
        [{"externalid": "CUST-000123"}],
        [{"externalid": None}],
    )


def test_booleans_are_t_or_f(db):
    values = run_sql(
        db,
        "SELECT DISTINCT isinactive AS v FROM customer UNION SELECT DISTINCT isperson FROM customer "
        "UNION SELECT DISTINCT mainline FROM transactionline",
    )
    assert {row["v"] for row in values} == {"T", "F"}


def test_non_ascii_names_present(db):
    names = {row["companyname"] for row in run_sql(db, "SELECT companyname FROM customer")}
    assert "Zoë Ångström GmbH" in names
    assert any(name and not name.isascii() for name in names - {"Zoë Ångström GmbH"})


def test_transaction_lines_are_consistent(db):
    mainlines = run_sql(
        db, "SELECT COUNT(*) AS n, SUM(id = 0) AS zero FROM transactionline WHERE mainline = 'T'"
    )[0]
    assert mainlines == {"n": 20_000, "zero": 20_000}
    duplicates = run_sql(
        db,
        'SELECT COUNT(*) AS n FROM (SELECT "transaction", id FROM transactionline '
        'GROUP BY "transaction", id HAVING COUNT(*) > 1)',
    )
    assert duplicates == [{"n": 0}]
    unique_keys = run_sql(db, "SELECT COUNT(DISTINCT uniquekey) AS k, COUNT(*) AS n FROM transactionline")[0]
    assert unique_keys["k"] == unique_keys["n"]
    mismatched = run_sql(
        db,
        'SELECT COUNT(*) AS n FROM "transaction" t WHERE ABS(t.foreigntotal - (SELECT SUM(netamount) '
        "FROM transactionline l WHERE l.\"transaction\" = t.id AND l.mainline = 'F')) > 0.005",
    )
    assert mismatched == [{"n": 0}]


def test_record_types_match_the_tables(db):
    for record_type in dataset.RECORD_TYPES.values():
        columns = {row["name"] for row in run_sql(db, f'PRAGMA table_info("{record_type.table}")')}
        assert set(record_type.fields) <= columns, record_type.name
        assert set(record_type.fields.values()) <= dataset.FIELD_TYPES
        assert "id" in record_type.read_only
        assert set(record_type.references) <= set(record_type.fields)
        if record_type.discriminator:
            column, value = record_type.discriminator
            found = run_sql(
                db, f"SELECT COUNT(*) AS n FROM \"{record_type.table}\" WHERE {column} = '{value}'"
            )
            assert found[0]["n"] > 0
    assert dataset.RECORD_TYPES["customer"].field_type("companyName") == "string"
    assert dataset.RECORD_TYPES["salesOrder"].sublists["item"].table == "transactionline"


def test_generate_table_million_rows(tmp_path):
    path = str(tmp_path / "big.db")
    dataset.create_database(path)
    started = time.perf_counter()
    dataset.generate_table(path, "bigcustomer", 1_000_000)
    print(f"generate_table(1,000,000 rows): {time.perf_counter() - started:.2f} s")
    row = run_sql(
        path,
        "SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi, COUNT(DISTINCT id) AS d, "
        "SUM(isinactive NOT IN ('T', 'F')) AS bad_flags FROM bigcustomer",
    )[0]
    assert row == {"n": 1_000_000, "lo": 1, "hi": 1_000_000, "d": 1_000_000, "bad_flags": 0}
    ties = run_sql(
        path, "SELECT COUNT(*) AS n FROM bigcustomer GROUP BY lastmodifieddate ORDER BY n DESC LIMIT 1"
    )
    assert ties[0]["n"] > 1


def test_generate_table_replaces_and_is_deterministic(tmp_path):
    path = str(tmp_path / "gen.db")
    dataset.create_database(path)
    dataset.generate_table(path, "bigcustomer", 500)
    first = run_sql(path, "SELECT * FROM bigcustomer ORDER BY id")
    dataset.generate_table(path, "bigcustomer", 200)
    second = run_sql(path, "SELECT * FROM bigcustomer ORDER BY id")
    assert len(first) == 500
    assert second == first[:200]


@pytest.mark.parametrize("table", ["customer", "transaction", "Bad-Name", "1abc", ""])
def test_generate_table_refuses_bad_names(db, table):
    with pytest.raises(ValueError, match="not allowed"):
        dataset.generate_table(db, table, 10)
