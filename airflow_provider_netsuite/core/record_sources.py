"""Stream input records for record writes from a list, JSON lines, JSON, CSV or Parquet, never whole.

:func:`iter_records` yields one item per input record, in input order: a ``dict`` (the record, a JSON
object) or an :class:`InvalidInput` for a line that could not be read. The writer counts an
:class:`InvalidInput` as skipped and lists it in its failure report; reading goes on with the next line.

Reading rules, per format (chosen by suffix; ``.gz`` is allowed after ``.jsonl``, ``.json`` and ``.csv``):

* ``.jsonl`` / ``.ndjson``: one JSON object per line; blank lines are ignored; a line that is not valid
  JSON, or not an object, is an :class:`InvalidInput` with its line number.
* ``.json``: a JSON array of objects, parsed element by element with bounded memory (a file that holds
  JSON lines instead of an array is read as JSON lines). A syntax error inside the array ends the read
  with one :class:`InvalidInput`, because an array cannot be resynchronised after it.
* ``.csv``: a header row, then one record per row; every value is a string. An **empty cell is omitted**
  from the record (in an update, an omitted field is left unchanged, while ``null`` would clear it). A
  column named with dots (``subsidiary.id``) becomes a nested object (``{"subsidiary": {"id": ...}}``),
  the shape NetSuite expects for references. A row with more cells than the header is invalid.
* ``.parquet``: read one record batch at a time with pyarrow (optional dependency); nulls are omitted,
  dates and times become ISO-8601 strings, decimals become numbers.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import decimal
import gzip
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: Bytes read at a time from a ``.json`` array.
_JSON_READ_SIZE = 1 << 16
#: Largest single element of a ``.json`` array; beyond it the file is treated as broken.
_JSON_MAX_ELEMENT = 64 << 20
#: Characters of a bad line kept in :class:`InvalidInput` (for the failure report, never logged).
_EXCERPT = 200
_PARQUET_BATCH = 1000
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class InvalidInput:
    """An input record that could not be read; the writer counts it as skipped.

    :param line: 1-based line (or row) number in the input file, or ``None`` for in-memory input.
    :param reason: what is wrong, without the record's values.
    :param excerpt: the start of the bad line, for the failure report only.
    """

    line: int | None
    reason: str
    excerpt: str | None = None


def iter_records(source: Any) -> Iterator[dict[str, Any] | InvalidInput]:
    """Yield the records of ``source`` one at a time, in input order.

    :param source: a list or other iterable of dicts (from XCom), a single dict, or a path to a file:
        ``str``, :class:`pathlib.Path`, or any object with ``.open("rb")`` and ``.name`` /
        ``.suffixes`` (Airflow's ``ObjectStoragePath``). A ``str`` is a local path; pass an
        ``ObjectStoragePath`` for object storage.
    :raises ValueError: the file suffix names no supported format.
    :raises ImportError: a Parquet file is given but pyarrow is not installed.
    """
    if isinstance(source, Mapping):
        yield dict(source)
        return
    if isinstance(source, (str, Path)) or hasattr(source, "open"):
        yield from _iter_file(Path(source) if isinstance(source, str) else source)
        return
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise TypeError(f"records must be a list of dicts or a path to a file, not {type(source).__name__}")
    for position, item in enumerate(source):
        if isinstance(item, Mapping):
            yield dict(item)
        else:
            yield InvalidInput(None, f"item {position} is a {type(item).__name__}, not a JSON object")


def source_format(path: Any) -> tuple[str, bool]:
    """Return the format of a path (``jsonl``, ``json``, ``csv`` or ``parquet``) and whether it is gzipped.

    :raises ValueError: the suffix names no supported format.
    """
    name = str(getattr(path, "name", path)).lower()
    compressed = name.endswith(".gz")
    stem = name[:-3] if compressed else name
    for suffix, kind in _FORMATS.items():
        if stem.endswith(suffix) and not (compressed and kind == "parquet"):
            return kind, compressed
    raise ValueError(
        f"cannot tell the format of input file {name!r}: use .jsonl, .json, .csv or .parquet "
        "(.gz allowed for jsonl, json and csv)"
    )


def _iter_file(path: Any) -> Iterator[dict[str, Any] | InvalidInput]:
    kind, compressed = source_format(path)
    readers = {"jsonl": _iter_jsonl, "json": _iter_json, "csv": _iter_csv, "parquet": _iter_parquet}
    with _open_binary(path, compressed) as stream:
        yield from readers[kind](stream)


@contextmanager
def _open_binary(path: Any, compressed: bool) -> Iterator[IO[bytes]]:
    with path.open("rb") as raw:
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
        else:
            yield raw


def _iter_jsonl(stream: IO[bytes]) -> Iterator[dict[str, Any] | InvalidInput]:
    for number, raw_line in enumerate(stream, start=1):
        if number == 1 and raw_line.startswith(codecs.BOM_UTF8):
            raw_line = raw_line[len(codecs.BOM_UTF8) :]
        if not raw_line.strip():
            continue
        yield _parse_json_line(raw_line, number)


def _parse_json_line(raw_line: bytes, number: int) -> dict[str, Any] | InvalidInput:
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidInput(number, f"not UTF-8 ({exc.reason} at byte {exc.start})")
    return _parse_json_text(text, number)


def _parse_json_text(text: str, number: int) -> dict[str, Any] | InvalidInput:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return InvalidInput(number, f"invalid JSON: {exc.msg} at column {exc.colno}", text[:_EXCERPT])
    if not isinstance(value, dict):
        return InvalidInput(number, f"a JSON {type(value).__name__}, not an object", text[:_EXCERPT])
    return value


class _JsonArrayReader:
    """Decode the elements of a JSON array one by one from a text stream, holding one element at a time."""

    def __init__(self, text: IO[str]) -> None:
        self.text = text
        self.buffer = ""
        self.eof = False
        self.line = 1
        self.decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.text.read(_JSON_READ_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def _skip(self, characters: str) -> None:
        while True:
            stripped = self.buffer.lstrip(characters)
            self.line += self.buffer[: len(self.buffer) - len(stripped)].count("\n")
            self.buffer = stripped
            if self.buffer or not self._fill():
                return

    def first_char(self) -> str:
        """Return the first non-blank character of the document, or ``""`` when it is empty."""
        self._skip(" \t\r\n\ufeff")
        return self.buffer[:1]

    def elements(self) -> Iterator[dict[str, Any] | InvalidInput]:
        """Yield each element of the array whose ``[`` is at the start of the buffer."""
        self.buffer = self.buffer[1:]
        while True:
            self._skip(" \t\r\n")
            if self.buffer.startswith("]"):
                return
            if not self.buffer:
                yield InvalidInput(self.line, "invalid JSON: the array is not closed")
                return
            value = self._decode_next()
            if isinstance(value, InvalidInput):
                yield value
                return
            yield value if isinstance(value, dict) else self._not_object(value)
            self._skip(" \t\r\n")
            if self.buffer.startswith(","):
                self.buffer = self.buffer[1:]

    def _decode_next(self) -> Any:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer)
            except ValueError as exc:
                if len(self.buffer) < _JSON_MAX_ELEMENT and self._fill():
                    continue
                return InvalidInput(self.line + exc.lineno - 1, f"invalid JSON: {exc.msg}")
            if end == len(self.buffer) and self._fill():
                continue  # a number may go on in the next chunk
            self.line += self.buffer[:end].count("\n")
            self.buffer = self.buffer[end:]
            return value

    def _not_object(self, value: Any) -> InvalidInput:
        return InvalidInput(self.line, f"a JSON {type(value).__name__}, not an object")


def _iter_json(stream: IO[bytes]) -> Iterator[dict[str, Any] | InvalidInput]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")
    reader = _JsonArrayReader(text)
    first = reader.first_char()
    if not first:
        return
    if first == "[":
        yield from reader.elements()
        return
    # Not an array: the file holds JSON lines (or one object); go on reading it line by line.
    yield from _iter_text_lines(reader.buffer, text, reader.line)


def _iter_text_lines(
    buffered: str, text: IO[str], first_line: int
) -> Iterator[dict[str, Any] | InvalidInput]:
    """Yield one parsed JSON line at a time from text already read plus the rest of ``text``."""
    number, pending = first_line, ""
    for piece in itertools.chain([buffered], text):
        pending += piece
        *complete, pending = pending.split("\n")
        for line in complete:
            if line.strip():
                yield _parse_json_text(line, number)
            number += 1
    if pending.strip():
        yield _parse_json_text(pending, number)


def _iter_csv(stream: IO[bytes]) -> Iterator[dict[str, Any] | InvalidInput]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    columns = [name.strip() for name in header]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            yield InvalidInput(reader.line_num, f"{len(row)} cells for {len(columns)} header columns")
            continue
        yield _csv_record(columns, row)


def _csv_record(columns: list[str], row: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, cell in zip(columns, row, strict=False):
        if cell == "" or not name:
            continue
        target = record
        *parents, leaf = name.split(".")
        for parent in parents:
            child = target.get(parent)
            if not isinstance(child, dict):
                child = target[parent] = {}
            target = child
        target[leaf] = cell
    return record


def _import_pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is installed in the test environment
        raise ImportError(
            "reading Parquet input needs pyarrow: pip install 'airflow-provider-netsuite[parquet]'"
        ) from exc
    return pq


def _iter_parquet(stream: IO[bytes]) -> Iterator[dict[str, Any] | InvalidInput]:
    pq = _import_pyarrow_parquet()
    parquet_file = pq.ParquetFile(stream)
    for batch in parquet_file.iter_batches(batch_size=_PARQUET_BATCH):
        for row in batch.to_pylist():
            yield {key: _json_value(value) for key, value in row.items() if value is not None}


def _json_value(value: Any) -> Any:
    """Turn a value read from Parquet into one JSON can carry."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
