"""Typing of SuiteQL's string values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from airflow_provider_netsuite.core.values import RowTyper

PAGE = [
    {
        "links": [],
        "id": "101",
        "entityid": "00123",
        "phone": "0412 555 010",
        "isinactive": "F",
        "balance": "12.50",
        "qty": "-3",
        "rate": "0.1",
        "name": "Acme",
        "created": "2026-01-05T10:00:00",
    },
    {
        "links": [],
        "id": "102",
        "entityid": "123",
        "phone": "5550100",
        "isinactive": "T",
        "balance": "1234567890123456789.01",
        "qty": "0",
        "rate": "7",
        "name": "T",
        "created": "2026-01-06T23:59:59",
    },
    {"links": [], "id": "103", "isinactive": "T", "name": "Zoë"},
]


def test_typing_rules():
    rows = RowTyper("%Y-%m-%dT%H:%M:%S").type_page(PAGE)
    first, second, third = rows
    assert "links" not in first
    assert first["id"] == 101
    assert isinstance(first["id"], int)
    assert (first["entityid"], second["entityid"]) == ("00123", "123")  # mixed column stays text
    assert (first["phone"], second["phone"]) == ("0412 555 010", "5550100")
    assert (first["isinactive"], second["isinactive"]) == (False, True)
    assert second["balance"] == Decimal("1234567890123456789.01")
    assert str(first["balance"]) == "12.50"
    assert not any(isinstance(v, float) for row in rows for v in row.values())
    assert (first["qty"], second["qty"]) == (-3, 0)
    assert first["rate"] == Decimal("0.1")
    assert second["rate"] == Decimal("7")
    assert (first["name"], second["name"]) == ("Acme", "T")
    assert first["created"] == datetime(2026, 1, 5, 10, 0, 0)
    assert third == {"id": 103, "isinactive": True, "name": "Zoë"}  # omitted null keys stay omitted


def test_without_date_format_dates_stay_text():
    rows = RowTyper().type_page([{"trandate": "5/1/2026"}, {"trandate": "01.05.2026"}])
    assert [r["trandate"] for r in rows] == ["5/1/2026", "01.05.2026"]


def test_date_only_format_gives_dates_and_other_formats_use_strptime():
    assert RowTyper("%Y-%m-%d").type_row({"d": "2026-05-01"}) == {"d": date(2026, 5, 1)}
    assert RowTyper("%d.%m.%Y %H:%M").type_row({"d": "01.05.2026 13:45"}) == {
        "d": datetime(2026, 5, 1, 13, 45)
    }


def test_later_values_that_do_not_fit_stay_strings():
    typer = RowTyper()
    typer.type_page([{"code": "1"}, {"code": "2"}, {"flag": "T"}])
    later = typer.type_page(
        [{"code": "007", "flag": "X"}, {"code": "12.5"}, {"code": "99999999999999999999"}]
    )
    assert later == [
        {"code": "007", "flag": "X"},
        {"code": Decimal("12.5")},
        {"code": "99999999999999999999"},
    ]


def test_leading_zero_and_odd_numbers_are_not_numbers():
    values = ["007", "+5", "1e5", " 5", "1_000", "--1", "1.", "-0.50", "0"]
    typer = RowTyper()
    rows = typer.type_page([{f"c{i}": v} for i, v in enumerate(values)])
    got = [next(iter(row.values())) for row in rows]
    assert got == ["007", "+5", "1e5", " 5", "1_000", "--1", "1.", Decimal("-0.50"), 0]


def test_string_columns_are_never_typed():
    assert RowTyper(string_columns=["ID"]).type_row({"id": "5", "n": "5"}) == {"id": "5", "n": 5}


def test_column_learned_when_first_seen_with_values():
    typer = RowTyper()
    assert typer.type_page([{"a": None}]) == [{"a": None}]
    assert typer.type_page([{"a": "T"}]) == [{"a": True}]
