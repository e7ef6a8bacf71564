"""The emulator's SuiteQL engine, checked against the raw SQLite data (the ground truth)."""

# Test SQL is built from constants of the tests themselves.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import date, datetime, timedelta

import pytest

from airflow_provider_netsuite.emulator import dataset
from airflow_provider_netsuite.emulator.suiteql import (
    DETAIL_PREFIX,
    UNSUPPORTED_SEARCH,
    SuiteQLEngine,
    SuiteQLError,
    run_sql,
)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("suiteql") / "account.db")
    dataset.create_database(path)
    dataset.generate_table(path, "bigcustomer", 200_000)
    return path


@pytest.fixture(scope="module")
def engine(db) -> SuiteQLEngine:
    instance = SuiteQLEngine(db)
    yield instance
    instance.close()


def us_date(stamp: str) -> str:
    year, month, day = stamp[:10].split("-")
    return f"{int(month)}/{int(day)}/{year}"


def render(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_values_are_rendered_as_netsuite_does(engine, db):
    items, total = engine.execute(
        "SELECT id, companyname, isinactive, balance, creditlimit, datecreated, lastmodifieddate "
        "FROM customer ORDER BY id",
        None,
        50,
        0,
    )
    truth = run_sql(
        db,
        "SELECT id, companyname, isinactive, balance, creditlimit, datecreated, lastmodifieddate "
        "FROM customer ORDER BY id LIMIT 50",
    )
    assert total == dataset.CUSTOMER_COUNT
    for item, row in zip(items, truth, strict=True):
        assert next(iter(item)) == "links"
        assert item["links"] == []
        expected = {"links": []}
        for key, value in row.items():
            if value is None:
                continue
            expected[key] = us_date(value) if key in ("datecreated", "lastmodifieddate") else render(value)
        assert item == expected
        assert all(isinstance(value, str) for key, value in item.items() if key != "links")
    assert any("companyname" not in item for item in items)
    assert {item["isinactive"] for item in items} <= {"T", "F"}


def test_decimal_text_has_no_trailing_zeros(engine, db):
    row = run_sql(db, "SELECT id FROM customer WHERE creditlimit = 25000.5 LIMIT 1")[0]
    items, _ = engine.execute("SELECT creditlimit FROM customer WHERE id = ?", [str(row["id"])], 10, 0)
    assert items == [{"links": [], "creditlimit": "25000.5"}]
    items, _ = engine.execute(
        "SELECT SUM(netamount) AS s FROM transactionline WHERE \"transaction\" = 1 AND mainline = 'F'",
        None,
        10,
        0,
    )
    total = run_sql(db, 'SELECT foreigntotal FROM "transaction" WHERE id = 1')[0]["foreigntotal"]
    assert items[0]["s"] == render(total)


def test_keys_are_lower_case_even_for_aliases(engine):
    items, _ = engine.execute(
        'SELECT ID, CompanyName AS ItemName, "ENTITYID" FROM CUSTOMER WHERE id = 1', None, 5, 0
    )
    assert set(items[0]) == {"links", "id", "itemname", "entityid"}


def test_unaliased_expressions_are_numbered_and_dates_rendered(engine, db):
    items, total = engine.execute(
        "SELECT COUNT(*), MAX(lastmodifieddate), MIN(id) lo FROM customer", None, 5, 0
    )
    truth = run_sql(db, "SELECT COUNT(*) AS n, MAX(lastmodifieddate) AS m FROM customer")[0]
    assert total == 1
    assert items == [{"links": [], "expr1": str(truth["n"]), "expr2": us_date(truth["m"]), "lo": "1"}]


def test_offset_pages_cover_the_result_exactly_once(engine, db):
    truth = [row["id"] for row in run_sql(db, "SELECT id FROM customer ORDER BY lastmodifieddate, id")]
    seen = []
    for offset in range(0, len(truth), 1000):
        items, total = engine.execute(
            "SELECT id FROM customer ORDER BY lastmodifieddate, id", None, 1000, offset
        )
        assert total == len(truth)
        seen.extend(int(item["id"]) for item in items)
    assert seen == truth


def test_page_slices_match_sqlite(engine, db):
    items, total = engine.execute("SELECT id, email FROM bigcustomer ORDER BY id", None, 1000, 99_000)
    assert total == 200_000
    assert [int(item["id"]) for item in items] == list(range(99_001, 100_001))
    items, _ = engine.execute("SELECT id FROM customer WHERE isinactive = 'T' ORDER BY id", None, 10, 20)
    truth = run_sql(db, "SELECT id FROM customer WHERE isinactive = 'T' ORDER BY id LIMIT 10 OFFSET 20")
    assert [item["id"] for item in items] == [str(row["id"]) for row in truth]


def test_subquery_with_keyset_predicate(engine):
    last, seen = 0, []
    query = "SELECT * FROM (SELECT id, companyname FROM customer) WHERE id > ? ORDER BY id"
    while True:
        items, total = engine.execute(query, [str(last)], 1000, 0)
        assert total == dataset.CUSTOMER_COUNT - last
        if not items:
            break
        seen.extend(int(item["id"]) for item in items)
        last = seen[-1]
    assert seen == list(range(1, dataset.CUSTOMER_COUNT + 1))


def test_params_are_bound_in_order(engine):
    items, total = engine.execute(
        "SELECT id FROM customer WHERE id BETWEEN ? AND ? ORDER BY id", ["10", "19"], 100, 0
    )
    assert total == 10
    assert [item["id"] for item in items] == [str(n) for n in range(10, 20)]
    with pytest.raises(SuiteQLError):
        engine.execute("SELECT id FROM customer WHERE id = ?", [], 10, 0)


def test_to_char_with_explicit_format(engine, db):
    items, _ = engine.execute(
        "SELECT id, TO_CHAR(lastmodifieddate, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS modified, "
        "TO_CHAR(datecreated, 'DD-MON-YYYY') AS created FROM customer ORDER BY id",
        None,
        20,
        0,
    )
    truth = run_sql(db, "SELECT lastmodifieddate, datecreated FROM customer ORDER BY id LIMIT 20")
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    for item, row in zip(items, truth, strict=True):
        assert item["modified"] == row["lastmodifieddate"].replace(" ", "T")
        year, month, day = row["datecreated"][:10].split("-")
        assert item["created"] == f"{day}-{months[int(month) - 1]}-{year}"


def test_to_timestamp_and_to_date_filters(engine, db):
    boundary = "2026-03-02 04:00:00"
    items, total = engine.execute(
        "SELECT id FROM customer WHERE lastmodifieddate >= TO_TIMESTAMP(?, 'YYYY-MM-DD HH24:MI:SS') "
        "ORDER BY id",
        [boundary],
        1000,
        0,
    )
    truth = run_sql(db, f"SELECT id FROM customer WHERE lastmodifieddate >= '{boundary}' ORDER BY id")
    assert total == len(truth)
    assert [int(item["id"]) for item in items] == [row["id"] for row in truth][:1000]
    _, total = engine.execute(
        "SELECT id FROM \"transaction\" WHERE trandate = TO_DATE('01/15/2026', 'MM/DD/YYYY')", None, 10, 0
    )
    assert (
        total
        == run_sql(db, "SELECT COUNT(*) AS n FROM \"transaction\" WHERE trandate = '2026-01-15 00:00:00'")[0][
            "n"
        ]
    )


def test_format_mismatch_is_an_error(engine):
    with pytest.raises(SuiteQLError) as caught:
        engine.execute(
            "SELECT id FROM customer WHERE lastmodifieddate > TO_DATE('2026/01/01', 'YYYY-MM-DD')",
            None,
            10,
            0,
        )
    assert caught.value.detail.startswith(DETAIL_PREFIX)
    assert "2026/01/01" in caught.value.detail
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_PARAMETER"


def test_builtin_df_gives_display_values(engine, db):
    items, _ = engine.execute(
        "SELECT t.id, t.entity, BUILTIN.DF(t.entity) AS customername, BUILTIN.DF(t.currency) AS cur "
        "FROM transaction t ORDER BY t.id",
        None,
        50,
        0,
    )
    truth = run_sql(
        db,
        "SELECT t.id, COALESCE(c.companyname, c.firstname || ' ' || c.lastname) AS name, k.name AS cur "
        'FROM "transaction" t JOIN customer c ON c.id = t.entity JOIN currency k ON k.id = t.currency '
        "ORDER BY t.id LIMIT 50",
    )
    assert [(item["id"], item["customername"], item["cur"]) for item in items] == [
        (str(row["id"]), row["name"], row["cur"]) for row in truth
    ]


def test_concatenation_treats_null_as_empty(engine):
    items, _ = engine.execute(
        "SELECT entityid || '-' || companyname AS label, firstname || lastname AS person FROM customer "
        "WHERE isperson = 'F' AND id = 1",
        None,
        5,
        0,
    )
    assert items == [{"links": [], "label": "C100001-Zoë Ångström GmbH"}]


def test_rownum_limits_rows(engine):
    items, total = engine.execute(
        "SELECT id FROM customer WHERE isinactive = 'F' AND ROWNUM <= 10", None, 1000, 0
    )
    assert total == 10
    assert len(items) == 10
    items, total = engine.execute(
        "SELECT * FROM (SELECT id FROM customer ORDER BY id DESC) WHERE ROWNUM < 4", None, 1000, 0
    )
    assert [item["id"] for item in items] == ["5000", "4999", "4998"]


def test_nvl_upper_case_and_in(engine):
    items, _ = engine.execute(
        "SELECT UPPER(entityid) AS e, NVL(companyname, 'none') AS c, "
        "CASE WHEN isperson = 'T' THEN 'person' ELSE 'company' END AS kind FROM customer WHERE id IN (1, 6)",
        None,
        10,
        0,
    )
    assert {item["e"] for item in items} == {"C100001", "C100006"}
    assert all("c" in item and item["kind"] in ("person", "company") for item in items)


def test_in_list_capped_at_1000(engine):
    ids = ", ".join(str(n) for n in range(1, 1001))
    _, total = engine.execute(f"SELECT id FROM customer WHERE id IN ({ids})", None, 10, 0)
    assert total == 1000
    with pytest.raises(SuiteQLError):
        engine.execute(f"SELECT id FROM customer WHERE id IN ({ids}, 1001)", None, 10, 0)


@pytest.mark.parametrize(
    "query",
    [
        "WITH recent AS (SELECT id FROM customer) SELECT id FROM recent",
        "SELECT id FROM customer WHERE datecreated > DATE '2025-06-01'",
        "SELECT id FROM customer WHERE datecreated > TIMESTAMP '2025-06-01 00:00:00'",
        "SELECT [id] FROM customer",
        "DELETE FROM customer",
        "UPDATE customer SET companyname = 'x'",
        "SELEC id FROM customer",
        "",
        "SELECT id FROM customer WHERE id = :id",
        "SELECT c.id FROM customer c LEFT JOIN transaction t ON t.entity = c.id, currency k WHERE k.id = 1",
        "SELECT c.id FROM customer c, currency k JOIN subsidiary s ON s.id = c.subsidiary",
        "SELECT c.id FROM customer c NATURAL JOIN currency k, subsidiary s",
        "SELECT id FROM customer WHERE lastmodifieddate + datecreated > SYSDATE",
    ],
)
def test_unsupported_queries_are_refused(engine, query):
    with pytest.raises(SuiteQLError) as caught:
        engine.execute(query, None, 10, 0)
    assert caught.value.detail == UNSUPPORTED_SEARCH


def test_unknown_column_error_text(engine):
    with pytest.raises(SuiteQLError) as caught:
        engine.execute("SELECT foo FROM customer", None, 10, 0)
    assert caught.value.detail == (
        "Invalid search query. Detailed unprocessed description follows. Search error occurred: "
        "Unknown identifier 'foo'. Available identifiers are: {customer=customer}."
    )
    with pytest.raises(SuiteQLError) as caught:
        engine.execute(
            "SELECT c.id, t.nothere FROM customer c JOIN transaction t ON t.entity = c.id", None, 10, 0
        )
    assert "Unknown identifier 't.nothere'" in caught.value.detail
    assert caught.value.detail.endswith("Available identifiers are: {c=customer, t=transaction}.")


def test_unknown_table_error_text(engine):
    with pytest.raises(SuiteQLError) as caught:
        engine.execute("SELECT id FROM customers", None, 10, 0)
    assert caught.value.detail == (
        "Invalid search query. Detailed unprocessed description follows. Invalid search type: customers."
    )


def test_quoted_unknown_identifier_is_not_a_string(engine):
    with pytest.raises(SuiteQLError, match="Unknown identifier"):
        engine.execute('SELECT "nothere" FROM customer', None, 10, 0)
    with pytest.raises(SuiteQLError, match="Unknown identifier"):
        engine.execute("SELECT transaction FROM customer", None, 10, 0)


def test_total_is_recounted_after_a_write(tmp_path):
    path = str(tmp_path / "write.db")
    dataset.create_database(path)
    engine = SuiteQLEngine(path)
    try:
        _, before = engine.execute("SELECT id FROM customer", None, 10, 0)
        writer = sqlite3.connect(path)
        with writer:
            writer.execute("DELETE FROM customer WHERE id <= 10")
        writer.close()
        _, after = engine.execute("SELECT id FROM customer", None, 10, 0)
        assert after == before - 10
    finally:
        engine.close()


def test_several_threads_at_once(engine):
    queries = [
        ("SELECT id, companyname FROM customer ORDER BY id", None, 1000, 2000),
        ("SELECT id FROM bigcustomer WHERE id > ? ORDER BY id", ["150000"], 1000, 0),
        ("SELECT BUILTIN.DF(entity) AS n FROM transaction ORDER BY id", None, 100, 500),
        (
            "SELECT TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS m FROM item ORDER BY id",
            None,
            500,
            500,
        ),
    ]
    expected = [engine.execute(*query) for query in queries]
    failures: list[str] = []

    def worker(index: int) -> None:
        for _ in range(5):
            query = queries[index % len(queries)]
            if engine.execute(*query) != expected[index % len(queries)]:
                failures.append(query[0])

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_page_timings(engine):
    engine.execute("SELECT * FROM bigcustomer ORDER BY id", None, 1000, 0)
    timings = {}
    for label, query, params, offset in [
        ("offset 99000", "SELECT * FROM bigcustomer ORDER BY id", None, 99_000),
        ("keyset id > 0", "SELECT * FROM bigcustomer WHERE id > ? ORDER BY id", ["0"], 0),
    ]:
        started = time.process_time()
        items, _ = engine.execute(query, params, 1000, offset)
        timings[label] = time.process_time() - started
        assert len(items) == 1000
    print({label: f"{seconds * 1000:.1f} ms CPU" for label, seconds in timings.items()})


def _rendered_both_ways(engine: SuiteQLEngine, query: str, limit: int = 200) -> tuple[list, list]:
    """Render one page of raw rows column by column (the engine's path) and cell by cell (the reference)."""
    connection = engine._connection()
    plan = engine._plan(query, connection)
    cursor = connection.execute(plan.page_sql, [limit, 0])
    rows = cursor.fetchall()
    keys = [column[0].lower() for column in cursor.description]
    return engine._items(keys, rows, plan.date_keys), engine._items_by_cell(keys, rows, plan.date_keys)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM customer ORDER BY id",
        "SELECT * FROM item ORDER BY id",
        'SELECT * FROM "transaction" ORDER BY id',
        "SELECT * FROM transactionline ORDER BY id",
        "SELECT * FROM bigcustomer ORDER BY id",
        "SELECT id, balance * 2 AS twice, MAX(lastmodifieddate) AS m, TO_DATE('2024-02-29', 'YYYY-MM-DD') "
        "FROM customer GROUP BY id, balance ORDER BY id",
        "SELECT id, CASE WHEN MOD(id, 3) = 0 THEN 1.5 WHEN MOD(id, 3) = 1 THEN 2 END AS mixed, "
        "CASE WHEN MOD(id, 2) = 0 THEN lastmodifieddate END AS sometimes FROM customer ORDER BY id",
    ],
)
@pytest.mark.parametrize("omit_nulls", [True, False])
@pytest.mark.parametrize("date_format", ["M/D/YYYY", "DD.MM.YYYY"])
def test_column_rendering_matches_cell_rendering(db, query, omit_nulls, date_format):
    engine = SuiteQLEngine(db, omit_nulls=omit_nulls, date_format=date_format)
    try:
        by_column, by_cell = _rendered_both_ways(engine, query)
    finally:
        engine.close()
    assert by_column
    assert by_column == by_cell
    assert [list(item) for item in by_column] == [list(item) for item in by_cell]  # same key order too


def test_nulls_kept_as_none_in_place_when_not_omitted(db):
    engine = SuiteQLEngine(db, omit_nulls=False)
    try:
        items, _ = engine.execute(
            "SELECT id, CASE WHEN MOD(id, 2) = 0 THEN 'even' END AS parity, entityid FROM customer "
            "ORDER BY id",
            None,
            4,
            0,
        )
    finally:
        engine.close()
    assert [list(item) for item in items] == [["links", "id", "parity", "entityid"]] * 4
    assert [item["parity"] for item in items] == [None, "even", None, "even"]


def test_a_column_named_twice_keeps_the_later_non_null_value(engine):
    items, _ = engine.execute(
        "SELECT c.id, t.id, t.memo, c.email AS memo FROM customer c "
        'JOIN "transaction" t ON t.entity = c.id ORDER BY t.id',
        None,
        50,
        0,
    )
    assert items
    assert all(list(item)[:2] == ["links", "id"] for item in items)
    assert len({item["id"] for item in items}) == len(items)  # the transaction's id, unique per row


def test_a_column_named_links_does_not_replace_the_items_links(engine):
    items, _ = engine.execute(
        "SELECT id, CASE WHEN id = 1 THEN 'a' END AS links FROM customer WHERE id <= 2 ORDER BY id",
        None,
        5,
        0,
    )
    assert items == [{"links": "a", "id": "1"}, {"links": [], "id": "2"}]


def test_joins_of_one_kind_are_accepted(engine, db):
    joined = 'SELECT COUNT(*) AS n FROM customer c JOIN "transaction" t ON t.entity = c.id'
    truth = run_sql(db, joined)[0]["n"]
    _, oracle_total = engine.execute(
        "SELECT c.id, t.id AS tid FROM customer c, transaction t WHERE t.entity = c.id", None, 10, 0
    )
    _, ansi_total = engine.execute(
        "SELECT c.id, t.id AS tid FROM customer c JOIN transaction t ON t.entity = c.id", None, 10, 0
    )
    assert oracle_total == ansi_total == truth


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("SELECT companyname + 'x' AS c FROM customer", "'x'"),
        ("SELECT (entityid || '-') + 1 AS c FROM customer WHERE id = 1", "'C100001-'"),
        ("SELECT ('1' || '2') + companyname AS c FROM customer WHERE id = 1", "'Zoë Ångström GmbH'"),
        ("SELECT 'abc' - 1 AS c FROM customer", "'abc'"),
        ("SELECT 'nan' + 1 AS c FROM customer", "'nan'"),
        ("SELECT TO_CHAR(datecreated, 'YYYY-MM-DD') + 1 AS c FROM customer WHERE id = 1", "'20"),
        ("SELECT entityid + id AS c FROM customer WHERE id = 1", "'C100001'"),
    ],
)
def test_plus_on_text_is_refused(engine, query, shown):
    with pytest.raises(SuiteQLError) as caught:
        engine.execute(query, None, 10, 0)
    assert caught.value.detail.startswith(f"{DETAIL_PREFIX}Search error occurred: Invalid number: {shown}")
    assert "||" in caught.value.detail
    assert (caught.value.status, caught.value.code) == (400, "INVALID_PARAMETER")


def test_plus_adds_numbers_numeric_text_and_days(engine, db):
    row = run_sql(db, "SELECT id, lastmodifieddate FROM customer WHERE id = 7")[0]
    items, _ = engine.execute(
        "SELECT id + 1 AS n, '5' + id AS m, lastmodifieddate + 1 AS nextday FROM customer WHERE id = 7",
        None,
        10,
        0,
    )
    day = date.fromisoformat(row["lastmodifieddate"][:10]) + timedelta(days=1)
    assert items == [{"links": [], "n": "8", "m": "12", "nextday": us_date(day.isoformat())}]
    items, _ = engine.execute("SELECT ('1' || '2') + id AS n FROM customer WHERE id = 7", None, 10, 0)
    assert items == [{"links": [], "n": "19"}]
    items, _ = engine.execute(
        "SELECT '' + 1 AS empty, ' 5 ' - 1 AS spaced, '1e3' + 1 AS exponent, 10 - id AS k, "
        "'99999999999999999999' + 1 AS big FROM customer WHERE id = 7",
        None,
        10,
        0,
    )
    assert items == [
        {"links": [], "spaced": "4", "exponent": "1001", "k": "3", "big": "100000000000000000000"}
    ]


def test_minus_subtracts_days_and_dates(engine, db):
    row = run_sql(db, "SELECT lastmodifieddate AS m, datecreated AS c FROM customer WHERE id = 7")[0]
    modified, created = (datetime.fromisoformat(row[key]) for key in ("m", "c"))
    items, _ = engine.execute(
        "SELECT * FROM (SELECT id, lastmodifieddate - 1 AS before, lastmodifieddate - datecreated AS age, "
        "lastmodifieddate + 1 AS after FROM customer WHERE id = 7)",
        None,
        10,
        0,
    )
    [item] = items
    assert item["before"] == us_date((modified - timedelta(days=1)).date().isoformat())
    assert item["after"] == us_date((modified + timedelta(days=1)).date().isoformat())  # a date, wrapped too
    assert float(item["age"]) == pytest.approx((modified - created).total_seconds() / 86400)
    _, recent = engine.execute("SELECT id FROM customer WHERE lastmodifieddate > SYSDATE - 30", None, 1, 0)
    _, same = engine.execute("SELECT id FROM customer WHERE lastmodifieddate > SYSDATE + (-30)", None, 1, 0)
    _, everything = engine.execute("SELECT id FROM customer", None, 1, 0)
    assert recent == same < everything


@pytest.mark.parametrize(
    "condition",
    [
        "lastmodifieddate > '1/1/2026'",
        "'2026-01-01' <= datecreated",
        "lastmodifieddate BETWEEN TO_DATE('01/01/2026', 'MM/DD/YYYY') AND '2/1/2026'",
        "datecreated IN ('1/1/2026', '1/2/2026')",
        "lastmodifieddate > ('1/1/2026')",
        "'1/1/2026' BETWEEN datecreated AND lastmodifieddate",
        "'1/1/2026' IN (datecreated, lastmodifieddate)",
        "NVL(NULL, lastmodifieddate) > '1/1/2026'",
        "id IN (SELECT c.id FROM customer c WHERE c.datecreated < '1/1/2026')",
    ],
)
def test_a_date_compared_with_text_is_refused(engine, condition):
    with pytest.raises(SuiteQLError) as caught:
        engine.execute(f"SELECT id FROM customer WHERE {condition}", None, 10, 0)
    assert caught.value.detail.startswith(f"{DETAIL_PREFIX}Search error occurred: ")
    assert "is a date" in caught.value.detail
    assert "TO_DATE" in caught.value.detail
    assert (caught.value.status, caught.value.code) == (400, "INVALID_PARAMETER")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id FROM customer WHERE entityid = 'C100001'",
        "SELECT * FROM (SELECT id, entityid AS datecreated FROM customer) WHERE datecreated = 'C100001'",
        "SELECT * FROM (SELECT id, TO_CHAR(datecreated, 'YYYY') AS datecreated FROM customer) "
        "WHERE datecreated = '2099' OR id = 1",
        "SELECT id FROM customer WHERE id = 1 OR lastmodifieddate = ''",
    ],
)
def test_text_compared_with_text_is_not_a_date_comparison(engine, query):
    items, total = engine.execute(query, None, 10, 0)
    assert total == 1
    assert items[0]["id"] == "1"
