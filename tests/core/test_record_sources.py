"""Streaming readers of input records: lists, JSON lines, JSON arrays, CSV, Parquet, gzip, bad lines."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_netsuite.core.record_sources import InvalidInput, iter_records, source_format


def test_list_and_single_dict():
    assert list(iter_records([{"a": 1}, "x", {"b": 2}])) == [
        {"a": 1},
        InvalidInput(None, "item 1 is a str, not a JSON object"),
        {"b": 2},
    ]
    assert list(iter_records({"a": 1})) == [{"a": 1}]
    with pytest.raises(TypeError):
        list(iter_records(42))


def test_jsonl_reports_bad_lines_with_numbers_and_goes_on(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        '{"externalId": "A", "name": "Zoë"}\n\n{broken\n[1, 2]\n{"externalId": "B"}\n\xff\n'.encode()
        + b"\xff\xfe\n"
    )
    items = list(iter_records(path))

    assert items[0] == {"externalId": "A", "name": "Zoë"}
    assert isinstance(items[1], InvalidInput)
    assert (items[1].line, items[1].reason.startswith("invalid JSON")) == (3, True)
    assert (items[2].line, "not an object" in items[2].reason) == (4, True)
    assert items[3] == {"externalId": "B"}
    assert [item.line for item in items[4:]] == [6, 7]
    assert "UTF-8" in items[5].reason


def test_gzip_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "in.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as stream:
        stream.write('{"externalId": "A"}\n{"externalId": "B"}\n')
    assert [item["externalId"] for item in iter_records(jsonl)] == ["A", "B"]

    csv_path = tmp_path / "in.csv.gz"
    with gzip.open(csv_path, "wt", encoding="utf-8", newline="") as stream:
        stream.write(
            'externalId,companyName,subsidiary.id,email\r\nA,Zoë Ångström,1,\r\nB,"Multi\nline",2,b@x\r\n'
        )
    assert list(iter_records(str(csv_path))) == [
        {"externalId": "A", "companyName": "Zoë Ångström", "subsidiary": {"id": "1"}},
        {"externalId": "B", "companyName": "Multi\nline", "subsidiary": {"id": "2"}, "email": "b@x"},
    ]


def test_csv_rows_with_too_many_cells_are_invalid(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("\ufeffexternalId,name\nA,x\nB,y,extra\n\nC\n", encoding="utf-8")
    items = list(iter_records(path))
    assert items[0] == {"externalId": "A", "name": "x"}
    assert isinstance(items[1], InvalidInput)
    assert items[1].line == 3
    assert items[2] == {"externalId": "C"}


def test_json_array_streams_and_reports_non_objects(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('[\n {"a": 1},\n 7,\n {"b": "Zoë"}\n]\n', encoding="utf-8")
    items = list(iter_records(path))
    assert items[0] == {"a": 1}
    assert isinstance(items[1], InvalidInput)
    assert items[1].line == 3
    assert items[2] == {"b": "Zoë"}

    broken = tmp_path / "broken.json"
    broken.write_text('[{"a": 1}, {"b": ]', encoding="utf-8")
    items = list(iter_records(broken))
    assert items[0] == {"a": 1}
    assert isinstance(items[1], InvalidInput)
    assert len(items) == 2


def test_json_file_holding_json_lines(tmp_path):
    path = tmp_path / "in.json"
    path.write_text('\n{"a": 1}\n{bad\n{"b": 2}', encoding="utf-8")
    items = list(iter_records(path))
    assert items[0] == {"a": 1}
    assert items[1].line == 3
    assert items[2] == {"b": 2}


def test_parquet_streams_record_batches_with_json_values(tmp_path):
    path = tmp_path / "in.parquet"
    table = pa.table(
        {
            "externalId": ["A", "B"],
            "amount": pa.array([Decimal("12.50"), None], type=pa.decimal128(10, 2)),
            "since": [date(2026, 1, 5), date(2026, 2, 1)],
            "seen": [datetime(2026, 1, 5, 10, 30), None],
        }
    )
    pq.write_table(table, path)
    assert list(iter_records(path)) == [
        {"externalId": "A", "amount": 12.5, "since": "2026-01-05", "seen": "2026-01-05T10:30:00"},
        {"externalId": "B", "since": "2026-02-01"},
    ]


def count_with_peak_memory(path: Path) -> tuple[int, int]:
    """Count the records read from ``path``; return the count and the peak memory traced while reading."""
    tracemalloc.start()
    count = sum(1 for _ in iter_records(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count, peak


def test_large_jsonl_is_streamed_not_loaded(tmp_path):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"externalId": "X", "memo": "m" * 200}) + "\n"
    path.write_text(line * 50_000, encoding="utf-8")  # about 11 MB

    count, peak = count_with_peak_memory(path)

    assert count == 50_000
    assert peak < 2_000_000


def test_large_json_array_is_streamed_not_loaded(tmp_path):
    path = tmp_path / "big.json"
    element = json.dumps({"externalId": "X", "memo": "m" * 200})
    path.write_text("[" + ",\n".join([element] * 30_000) + "]", encoding="utf-8")

    count, peak = count_with_peak_memory(path)

    assert count == 30_000
    assert peak < 2_000_000


def test_source_format_by_suffix():
    assert source_format(Path("a.JSONL.gz")) == ("jsonl", True)
    assert source_format("x.parquet") == ("parquet", False)
    for bad in ("a.txt", "a.parquet.gz", "a.xlsx"):
        with pytest.raises(ValueError, match="format"):
            source_format(bad)
