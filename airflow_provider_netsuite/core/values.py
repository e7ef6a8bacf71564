"""Typing of SuiteQL values: NetSuite sends every value as a string.

SuiteQL answers ``"T"``/``"F"`` for booleans, numbers as strings, dates in the API user's display format
(``5/1/2026`` or ``01.05.2026``: never guess which) and an empty ``"links"`` list on every item.
:class:`RowTyper` turns these into Python values without ever losing information.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# No leading zeros except "0" itself (so "00123" stays text), at most 18 digits (fits a 64-bit integer).
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\Z")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)?\.[0-9]+\Z")
_BOOLEANS = {"T": True, "F": False}
_ISO_FORMATS = {
    "%Y-%m-%dT%H:%M:%S": r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\Z",
    "%Y-%m-%d %H:%M:%S": r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z",
    "%Y-%m-%d": r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z",
}
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%f", "%p", "%X", "%c")

Converter = Callable[[str], Any]


def _to_number(value: str) -> Any:
    if _INTEGER.match(value):
        return int(value)
    if _DECIMAL.match(value):
        return Decimal(value)
    return value


def _to_decimal(value: str) -> Any:
    return Decimal(value) if _INTEGER.match(value) or _DECIMAL.match(value) else value


def _to_boolean(value: str) -> Any:
    return _BOOLEANS.get(value, value)


class _DateParser:
    """Parse one explicit ``strptime`` format; ISO forms take the fast ``fromisoformat`` path."""

    def __init__(self, date_format: str) -> None:
        self.date_format = date_format
        self.iso = _ISO_FORMATS.get(date_format)
        self.pattern = re.compile(self.iso) if self.iso else None
        self.date_only = not any(d in date_format for d in _TIME_DIRECTIVES)

    def parse(self, value: str) -> date | datetime | None:
        """Return the parsed value, or ``None`` when ``value`` does not have the format."""
        try:
            if self.pattern is not None:
                if not self.pattern.match(value):
                    return None
                parsed = datetime.fromisoformat(value)
            else:
                parsed = datetime.strptime(value, self.date_format)
        except ValueError:
            return None
        return parsed.date() if self.date_only else parsed

    def convert(self, value: str) -> Any:
        parsed = self.parse(value)
        return value if parsed is None else parsed


class RowTyper:
    """Turn SuiteQL's string values into booleans, integers, exact decimals and (optionally) datetimes.

    Each column's kind is learned from the first page on which it has values, so a column keeps one type:

    * ``bool``: every value ``"T"`` or ``"F"``.
    * ``int``: every value an integer without leading zeros (``"0"``, ``"-12"``; ``"00123"`` is not).
    * ``decimal``: every value an integer or a decimal (``"12.50"``); all become :class:`~decimal.Decimal`,
      never ``float``.
    * ``date``: every value matches ``date_format`` (datetime, or date when the format has no time part).
    * anything else (including a mix such as ``"123"`` and ``"00123"``): text, left unchanged.

    A later value that does not fit its column's kind is left unchanged as a string, so nothing is ever
    corrupted; entity IDs, phone numbers and codes with leading zeros stay strings. The per-item
    ``"links"`` key is dropped.

    :param date_format: ``strptime`` format of date columns, as produced by an explicit ``TO_CHAR`` (for
        ``TO_CHAR(col, 'YYYY-MM-DD"T"HH24:MI:SS')`` use ``%Y-%m-%dT%H:%M:%S``). Without it no value is taken
        for a date, because NetSuite's display formats are ambiguous (day-first or month-first).
    :param string_columns: columns never typed (lower-case names).
    """

    def __init__(self, date_format: str | None = None, *, string_columns: Iterable[str] = ()) -> None:
        self._dates = _DateParser(date_format) if date_format else None
        self._converters: dict[str, Converter | None] = {"links": None}
        for column in string_columns:
            self._converters[column.lower()] = None
        self.kinds: dict[str, str] = {column.lower(): "text" for column in string_columns}

    def _kind_of(self, values: list[str]) -> str:
        if all(v in _BOOLEANS for v in values):
            return "bool"
        if all(_INTEGER.match(v) for v in values):
            return "int"
        if all(_INTEGER.match(v) or _DECIMAL.match(v) for v in values):
            return "decimal"
        if self._dates and all(self._dates.parse(v) is not None for v in values):
            return "date"
        return "text"

    def _converter(self, kind: str) -> Converter | None:
        return {
            "bool": _to_boolean,
            "int": _to_number,
            "decimal": _to_decimal,
            "date": self._dates.convert if self._dates else None,
        }.get(kind)

    def _learn(self, rows: list[dict[str, Any]]) -> None:
        unknown = set().union(*rows).difference(self._converters)
        for column in unknown:
            values = [v for v in (row.get(column) for row in rows) if v is not None]
            if not values:
                continue  # nothing seen yet: learn on a later page
            kind = self._kind_of(values) if all(type(v) is str for v in values) else "text"
            self.kinds[column] = kind
            self._converters[column] = self._converter(kind)

    def type_page(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Return new rows with typed values and without ``links``."""
        if not rows:
            return []
        self._learn(rows)
        converters = self._converters
        typed = []
        for row in rows:
            out = {}
            for key, value in row.items():
                converter = converters.get(key)
                if converter is not None and type(value) is str:
                    value = converter(value)
                elif key == "links":
                    continue
                out[key] = value
            typed.append(out)
        return typed

    def type_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """Return one typed row (learning its columns' kinds from this row alone if they are new)."""
        return self.type_page([row])[0]
