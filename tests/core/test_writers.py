"""Round trips of the JSON Lines, CSV and Parquet writers."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_netsuite.core.writers import (
    CsvWriter,
    JsonlWriter,
    ParquetWriter,
    WriterSchemaError,
    make_writer,
)
from tests.conftest import write_pages

RAW = [
    {"links": [], "id": "1", "companyname": "Zoë Ångström", "isinactive": "F", "balance": "12.50"},
    {"links": [], "id": "2", "companyname": 'Quote "and", comma', "isinactive": "T"},
]
TYPED = [
    {"id": 1, "name": "Zoë", "ok": True, "amount": Decimal("12.50"), "at": datetime(2026, 1, 5, 10, 0)},
    {"id": 2, "name": "x\ny", "ok": False, "amount": Decimal("-0.001"), "at": None, "day": date(2026, 1, 6)},
]


def write(writer_class, pages, **options):
    data, writer = write_pages(writer_class, pages, **options)
    assert writer.rows == sum(len(p) for p in pages)
    return data


def test_jsonl_untyped_is_exact():
    data = write(JsonlWriter, [RAW[:1], RAW[1:]])
    assert [json.loads(line) for line in data.decode("utf-8").splitlines()] == RAW
    assert "Zoë Ångström".encode() in data  # not ASCII-escaped


def test_jsonl_decimals_are_exact_numbers_and_datetimes_iso():
    data = write(JsonlWriter, [TYPED]).decode("utf-8")
    lines = data.splitlines()
    assert '"amount":12.50' in lines[0]
    assert '"amount":-0.001' in lines[1]
    assert json.loads(lines[0], parse_float=Decimal)["amount"] == Decimal("12.50")
    assert json.loads(lines[0])["at"] == "2026-01-05T10:00:00"
    assert json.loads(lines[1])["day"] == "2026-01-06"


def test_jsonl_string_that_looks_like_the_decimal_marker_is_untouched():
    row = {"s": "\\u0000\\u001fdecimal:1", "t": "\x00\x1fdecimal:2"}
    data = write(JsonlWriter, [[row]])
    assert json.loads(data) == row


def test_jsonl_gzip_round_trip():
    data = write(JsonlWriter, [RAW], compression="gzip")
    assert [json.loads(line) for line in gzip.decompress(data).splitlines()] == RAW


def test_csv_round_trip_with_union_of_first_page_keys_and_gzip():
    data = write(CsvWriter, [RAW, [{"id": "3", "balance": "1"}]], compression="gzip")
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8"), newline="")))
    assert list(rows[0]) == ["id", "companyname", "isinactive", "balance"]  # no links column
    assert rows[1] == {"id": "2", "companyname": 'Quote "and", comma', "isinactive": "T", "balance": ""}
    assert rows[2] == {"id": "3", "companyname": "", "isinactive": "", "balance": "1"}


def test_csv_new_column_after_first_page_is_added_unless_columns_are_given():
    # NetSuite omits null values, so a column may first appear on a later page: it joins the header.
    rows = list(csv.DictReader(io.StringIO(write(CsvWriter, [RAW, [{"id": "3", "memo": "late"}]]).decode())))
    assert list(rows[0]) == ["id", "companyname", "isinactive", "balance", "memo"]
    assert [row["memo"] for row in rows] == ["", "", "late"]
    data = write(CsvWriter, [RAW, [{"id": "3", "memo": "late"}]], columns=["id", "memo"])
    assert data.decode().splitlines() == ["id,memo", "1,", "2,", "3,late"]


def test_csv_without_rows_but_with_columns_writes_header():
    assert write(CsvWriter, [], columns=["id", "name"]) == b"id,name\r\n"


def test_parquet_typed_round_trip_with_decimals_and_row_groups():
    pages = [TYPED, [{"id": 3, "name": "z", "ok": True, "amount": Decimal("5"), "at": None}]]
    data = write(ParquetWriter, pages, row_group_rows=2)
    table = pq.read_table(io.BytesIO(data))
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 2
    assert table.schema.field("amount").type == pa.decimal128(38, 3)
    assert table.schema.field("id").type == pa.int64()
    assert table.column("amount").to_pylist() == [Decimal("12.500"), Decimal("-0.001"), Decimal("5.000")]
    assert table.column("ok").to_pylist() == [True, False, True]
    assert table.column("at").to_pylist()[0] == datetime(2026, 1, 5, 10, 0)


def test_parquet_untyped_strings_and_mixed_columns_become_text():
    rows = [{"links": [], "id": "1", "code": 5}, {"links": [], "id": "2", "code": "00123"}]
    table = pq.read_table(io.BytesIO(write(ParquetWriter, [rows])))
    assert table.column_names == ["id", "code"]
    assert table.column("code").to_pylist() == ["5", "00123"]


def test_parquet_later_value_that_does_not_fit_raises():
    with pytest.raises(WriterSchemaError, match="amount"):
        write(ParquetWriter, [[{"amount": Decimal("1.5")}], [{"amount": Decimal("1.25")}]], row_group_rows=1)


def test_make_writer_refuses_unknown_format():
    with pytest.raises(ValueError, match="output_format"):
        make_writer("xml", io.BytesIO())
