"""Extracts, the sensor condition and the connection test with pages NetSuite may shape differently.

``totalResults`` missing, null or not a number; ``hasMore`` null; an empty page that says ``hasMore``; and
columns that first appear on a late page (NetSuite leaves null values out of a row).
"""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_netsuite.core.suiteql import SuiteQLExtract, SuiteQLExtractError, page_total
from airflow_provider_netsuite.core.writers import CsvWriter, JsonlWriter, ParquetWriter
from airflow_provider_netsuite.triggers.suiteql import SuiteQLCondition
from tests.conftest import write_pages

try:
    from tests.core.fake_netsuite import FakeNetSuite, make_rows
except ImportError:  # tests/ is not a package: pytest put this directory on sys.path instead
    from fake_netsuite import FakeNetSuite, make_rows

QUERY = "SELECT id, companyname FROM customer"


class Reshaped:
    """Pass the pages of a :class:`FakeNetSuite` through ``fields`` (set, or drop when ``...``).

    Every call's ``limit`` and ``offset`` are kept in ``calls``; other attributes are the fake's.
    """

    def __init__(self, fake: FakeNetSuite, **fields: Any) -> None:
        self.fake = fake
        self.fields = fields
        self.calls: list[tuple[int, int]] = []

    def suiteql_page(self, query: str, *, params=None, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        self.calls.append((limit, offset))
        page = self.fake.suiteql_page(query, params=params, limit=limit, offset=offset)
        for name, value in self.fields.items():
            if value is ...:
                page.pop(name, None)
            else:
                page[name] = value
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fake, name)


class OnePage:
    """A client whose every page is ``page``."""

    def __init__(self, page: dict[str, Any]) -> None:
        self.page = page

    def suiteql_page(self, query: str, **kwargs: Any) -> dict[str, Any]:
        return dict(self.page)


def extract_ids(client: Any, **options: Any) -> list[int]:
    extract = SuiteQLExtract(client, QUERY, **options)
    return [int(row["id"]) for page in extract.pages() for row in page]


# -- totalResults present but null or not a number -------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ({"totalResults": 5}, 5),
        ({"totalResults": 0}, 0),
        ({"totalResults": "5"}, 5),
        ({"totalResults": 5.0}, 5),
        ({}, None),
        ({"totalResults": None}, None),
        ({"totalResults": "many"}, None),
        ({"totalResults": 5.5}, None),
        ({"totalResults": True}, None),
        ({"totalResults": -1}, None),
        ({"totalResults": [5]}, None),
    ],
)
def test_page_total_treats_null_and_non_numbers_as_missing(page, expected):
    assert page_total(page) == expected


@pytest.mark.parametrize("total", [None, "not a number"])
@pytest.mark.parametrize("strategy", ["auto", "offset", "key_ranges", "keyset"])
def test_extract_with_a_null_or_odd_total_returns_every_row_once(total, strategy):
    client = Reshaped(FakeNetSuite(make_rows(2_500)), totalResults=total)
    assert extract_ids(client, strategy=strategy) == list(range(1, 2_501))


def test_extract_with_a_null_total_switches_to_key_order_at_the_offset_cap():
    client = Reshaped(FakeNetSuite(make_rows(2_345), result_cap=1_000), totalResults=None)
    assert extract_ids(client, result_cap=1_000) == list(range(1, 2_346))


# -- hasMore null, and empty pages that say hasMore -------------------------------------------------------


def test_null_has_more_is_taken_as_missing():
    # Full pages go on, a short page ends: a null hasMore must not end the extract after the first page.
    client = Reshaped(FakeNetSuite(make_rows(2_500)), totalResults=..., hasMore=None)
    assert extract_ids(client) == list(range(1, 2_501))


@pytest.mark.parametrize("strategy", ["auto", "offset", "keyset"])
def test_empty_first_page_that_says_has_more_raises(strategy):
    client = OnePage({"links": [], "count": 0, "hasMore": True, "offset": 0, "items": []})
    with pytest.raises(SuiteQLExtractError, match="empty page at offset 0 while hasMore is true"):
        extract_ids(client, strategy=strategy)


def test_empty_later_page_that_says_has_more_raises_in_key_order():
    fake = FakeNetSuite(make_rows(2_500))
    client = Reshaped(fake, totalResults=None)

    def empty_second_page(query: str, *, params=None, limit: int = 1000, offset: int = 0):
        page = Reshaped.suiteql_page(client, query, params=params, limit=limit, offset=offset)
        if len(client.calls) == 2:
            page["items"] = []
        return page

    client.suiteql_page = empty_second_page
    with pytest.raises(SuiteQLExtractError, match="hasMore is true"):
        extract_ids(client, strategy="keyset")


def test_empty_page_without_has_more_ends_an_empty_result():
    client = OnePage({"links": [], "count": 0, "hasMore": False, "offset": 0, "items": []})
    assert extract_ids(client) == []


# -- the sensor and trigger condition --------------------------------------------------------------------


@pytest.mark.parametrize("total", [..., None, "n/a"])
def test_condition_without_a_usable_total_counts_rows(total):
    client = Reshaped(FakeNetSuite(make_rows(7)), totalResults=total)
    assert SuiteQLCondition(query=QUERY, min_rows=1).check(client) == (True, 1)
    client.calls.clear()

    assert SuiteQLCondition(query=QUERY, min_rows=5).check(client) == (True, 5)
    assert client.calls == [(1, 0), (5, 0)]

    met, rows = SuiteQLCondition(query=QUERY, min_rows=10).check(client)
    assert (met, rows) == (False, 7)


def test_condition_without_a_total_pages_up_to_min_rows():
    client = Reshaped(FakeNetSuite(make_rows(2_600)), totalResults=...)
    assert SuiteQLCondition(query=QUERY, min_rows=2_500).check(client) == (True, 2_600)
    assert client.calls == [(1, 0), (1_000, 0), (1_000, 1_000), (1_000, 2_000)]

    client.calls.clear()
    assert SuiteQLCondition(query=QUERY, min_rows=2_700).check(client) == (False, 2_600)


def test_condition_reads_a_numeric_total_with_one_request():
    client = Reshaped(FakeNetSuite(make_rows(7)))
    assert SuiteQLCondition(query=QUERY, min_rows=5).check(client) == (True, 7)
    assert client.calls == [(1, 0)]


def test_condition_on_an_empty_result_without_a_total():
    client = Reshaped(FakeNetSuite([]), totalResults=None)
    assert SuiteQLCondition(query=QUERY, min_rows=3).check(client) == (False, 0)


# -- the connection test ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "visible"),
    [
        ({"items": [{"links": [], "id": "1"}], "hasMore": False}, True),
        ({"items": [{"links": [], "id": "1"}], "totalResults": None}, True),
        ({"items": [], "totalResults": 0}, False),
        ({"items": [], "hasMore": False}, False),
    ],
)
def test_connection_test_counts_items_without_a_total(page, visible):
    from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

    hook = NetSuiteHook("netsuite_probe")
    hook.__dict__["client"] = OnePage(page)
    hook.__dict__["config"] = SimpleNamespace(
        account=SimpleNamespace(account_id="1234567_SB1"), auth_type="oauth2_client_credentials"
    )
    ok, message = hook.test_connection()
    assert ok
    assert ("no customer records visible" not in message) is visible
    assert "customer records visible" in message


# -- columns that first appear on a later page ------------------------------------------------------------


def write(writer_class, pages, **options) -> bytes:
    return write_pages(writer_class, pages, **options)[0]


SPARSE = [
    [{"links": [], "id": "1", "companyname": "Acme"}, {"links": [], "id": "2", "companyname": 'a\r\n"b"'}],
    [{"links": [], "id": "3", "companyname": "Beta", "balance": "12.50"}],
    [{"links": [], "id": "4", "memo": 'late, "quoted"\nline'}, {"links": [], "id": "5"}],
]


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_csv_column_first_seen_on_a_later_page_joins_the_header(compression):
    data = write(CsvWriter, SPARSE, compression=compression)
    rows = csv_rows(gzip.decompress(data) if compression else data)

    assert rows == [
        ["id", "companyname", "balance", "memo"],
        ["1", "Acme", "", ""],
        ["2", 'a\r\n"b"', "", ""],
        ["3", "Beta", "12.50", ""],
        ["4", "", "", 'late, "quoted"\nline'],
        ["5", "", "", ""],
    ]


def test_csv_single_column_rows_with_empty_values_are_padded():
    data = write(CsvWriter, [[{"a": ""}, {"a": None}], [{"a": "x", "b": "y"}]])
    assert csv_rows(data) == [["a", "b"], ["", ""], ["", ""], ["x", "y"]]


def test_csv_with_given_columns_streams_and_leaves_other_keys_out():
    data = write(CsvWriter, SPARSE, columns=["id", "memo"])
    assert csv_rows(data) == [
        ["id", "memo"],
        ["1", ""],
        ["2", ""],
        ["3", ""],
        ["4", 'late, "quoted"\nline'],
        ["5", ""],
    ]


def test_csv_without_rows_writes_nothing_and_typed_values_keep_their_text():
    assert write(CsvWriter, [[]]) == b""
    typed = [[{"n": Decimal("12.50"), "ok": True}], [{"n": Decimal("1"), "at": datetime(2026, 1, 5, 10)}]]
    assert csv_rows(write(CsvWriter, typed)) == [
        ["n", "ok", "at"],
        ["12.50", "True", ""],
        ["1", "", "2026-01-05 10:00:00"],
    ]


def test_csv_spools_to_disk_not_memory():
    def pages():
        for start in range(0, 100_000, 1_000):
            late = {"balance": "1.00"} if start >= 99_000 else {}
            yield [
                {"links": [], "id": str(n), "companyname": f"Company {n:08d}", **late}
                for n in range(start, start + 1_000)
            ]

    buffer = io.BytesIO()
    writer = CsvWriter(buffer)
    tracemalloc.start()
    try:
        for page in pages():
            writer.write_page(page)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    writer.close()

    assert peak < 2_000_000  # 100,000 rows are about 3 MB of CSV
    rows = csv_rows(buffer.getvalue())
    assert len(rows) == 100_001
    assert rows[0] == ["id", "companyname", "balance"]
    assert rows[1] == ["0", "Company 00000000", ""]
    assert rows[-1] == ["99999", "Company 00099999", "1.00"]


def test_parquet_column_first_seen_in_a_later_row_group_is_added():
    pages = [
        [{"links": [], "id": 1, "name": "Acme"}, {"links": [], "id": 2, "name": "Beta"}],
        [{"links": [], "id": 3, "amount": Decimal("12.50")}, {"links": [], "id": 4, "name": "D"}],
        [{"links": [], "id": 5, "flag": True}],
    ]
    data = write(ParquetWriter, pages, row_group_rows=2)
    table = pq.read_table(io.BytesIO(data))

    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 3
    assert table.column_names == ["id", "name", "amount", "flag"]
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    assert table.schema.field("flag").type == pa.bool_()
    assert table.column("amount").to_pylist() == [None, None, Decimal("12.50"), None, None]
    assert table.column("name").to_pylist() == ["Acme", "Beta", None, "D", None]
    assert table.column("flag").to_pylist() == [None, None, None, None, True]


def test_parquet_without_late_columns_is_written_as_before():
    pages = [[{"links": [], "id": "1", "code": "A"}], [{"links": [], "id": "2"}]]
    data = write(ParquetWriter, pages, row_group_rows=1)
    table = pq.read_table(io.BytesIO(data))
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 2
    assert table.to_pylist() == [{"id": "1", "code": "A"}, {"id": "2", "code": None}]


def test_parquet_with_given_columns_leaves_other_keys_out():
    pages = [[{"id": "1"}], [{"id": "2", "memo": "late", "other": "x"}]]
    table = pq.read_table(io.BytesIO(write(ParquetWriter, pages, row_group_rows=1, columns=["id", "memo"])))
    assert table.to_pylist() == [{"id": "1", "memo": None}, {"id": "2", "memo": "late"}]


def test_jsonl_writes_late_keys_as_they_come():
    data = write(JsonlWriter, SPARSE)
    assert data.count(b"\n") == 5
    assert b'"memo":"late, \\"quoted\\"\\nline"' in data
