"""Row writers for SuiteQL extracts: JSON Lines, CSV and Parquet over a binary file object.

Every writer takes pages (lists of row dicts) through :meth:`RowWriter.write_page`, counts ``rows`` and the
``bytes_written`` to the underlying file, and must be closed with :meth:`RowWriter.close` (which does not
close the file object it was given). JSON Lines and CSV can be gzip-compressed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import IO, Any

from airflow_provider_netsuite.core.errors import NetSuiteError

FORMATS = ("jsonl", "csv", "parquet")
COMPRESSIONS = (None, "gzip")
# Per-item hypermedia links are not a column of the result.
_NOT_COLUMNS = frozenset({"links"})


class WriterSchemaError(NetSuiteError, ValueError):
    """Raise when a page does not fit the columns or types fixed by the first page of a tabular file."""


class _CountingStream(io.RawIOBase):
    """Pass bytes to a file object and count them."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.target.write(data)
        size = len(data)
        self.count += size
        return size


class RowWriter(ABC):
    """Write pages of rows to a binary file object.

    :param fileobj: a writable binary file object; left open by :meth:`close`.
    :param compression: ``None`` or ``"gzip"``.
    """

    def __init__(self, fileobj: IO[bytes], *, compression: str | None = None) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be None or 'gzip', not {compression!r}")
        self.rows = 0
        self._counter = _CountingStream(fileobj)
        self._gzip = (
            gzip.GzipFile(fileobj=self._counter, mode="wb", compresslevel=6, mtime=0) if compression else None
        )
        self._stream: IO[bytes] = self._gzip or self._counter  # type: ignore[assignment]
        self._closed = False

    @property
    def bytes_written(self) -> int:
        """Bytes written to the file object so far (compressed size when compressed)."""
        return self._counter.count

    @abstractmethod
    def write_page(self, rows: list[dict[str, Any]]) -> None:
        """Write one page of rows."""

    def close(self) -> None:
        """Flush everything (and the gzip trailer); the file object itself stays open."""
        if self._closed:
            return
        self._closed = True
        if self._gzip is not None:
            self._gzip.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- JSON Lines ------------------------------------------------------------------------------------------

# Decimals are written as JSON numbers with their exact digits: the encoder emits a marked string, which is
# then replaced by the bare number. The marker holds control characters, which JSON escapes, so no real
# string value can produce it.
_DECIMAL_MARK = "\x00\x1fdecimal:"
_DECIMAL_MARKED = re.compile(r'"\\u0000\\u001fdecimal:(-?[0-9.]+)"')


def _row_encoder(default: Any) -> Any:
    """Return a function encoding one row as compact JSON text (UTF-8 characters kept, not escaped).

    Where CPython's C encoder is available it is built once and reused: ``JSONEncoder.encode`` builds a
    new one for every call, which costs about a third of the time of encoding a typical SuiteQL row. Rows
    are plain data parsed from JSON, so the circular-reference check is left out.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    c_encode_string = getattr(json.encoder, "c_encode_basestring", None)
    if c_make_encoder is None or c_encode_string is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default).encode
    encoder = c_make_encoder(None, default, c_encode_string, None, ":", ",", False, False, True)
    return lambda row: "".join(encoder(row, 0))


class JsonlWriter(RowWriter):
    """Write one JSON object per line, UTF-8, without ASCII escaping.

    Decimals become JSON numbers with their exact digits (``12.50`` stays ``12.50``), dates and datetimes
    ISO 8601 strings. Rows are written exactly as given, ``links`` included when typing is off.
    """

    def __init__(self, fileobj: IO[bytes], *, compression: str | None = None) -> None:
        super().__init__(fileobj, compression=compression)
        self._has_decimal = False
        self._encode = _row_encoder(self._default)

    def _default(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"cannot write the non-finite decimal {value} to JSON")
            self._has_decimal = True
            return _DECIMAL_MARK + format(value, "f")
        if isinstance(value, (datetime, date, time)):
            return value.isoformat()
        raise TypeError(f"cannot write a value of type {type(value).__name__} to JSON")

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        encode = self._encode
        self._has_decimal = False
        text = "\n".join([encode(row) for row in rows])
        if self._has_decimal:
            text = _DECIMAL_MARKED.sub(r"\1", text)
        self._stream.write(text.encode("utf-8") + b"\n")
        self.rows += len(rows)


# -- CSV -------------------------------------------------------------------------------------------------


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """Return the union of the rows' keys in first-seen order, ``links`` excluded."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in seen and key not in _NOT_COLUMNS:
                seen[key] = None
    return list(seen)


def _check_columns(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    extra = set().union(*rows).difference(columns, _NOT_COLUMNS)
    if extra:
        raise WriterSchemaError(
            f"Column(s) {', '.join(sorted(extra))} appear after the first page and are not in the file's "
            f"columns ({', '.join(columns)}). NetSuite omits null values, so a column that is empty on the "
            "whole first page is unknown then: pass the column list explicitly (columns=...)"
        )


class CsvWriter(RowWriter):
    """Write CSV (RFC 4180, UTF-8) with a header row.

    The columns are fixed when the header is written: ``columns`` if given, otherwise the union of the
    first page's keys in first-seen order (NetSuite omits null values, so the first row alone may lack
    some). A key missing from a row is written empty. With derived columns, a key that first appears on a
    later page raises :class:`WriterSchemaError` rather than being dropped silently; with explicit
    ``columns``, other keys are left out by choice. ``links`` is never a column. Values are
    written with ``str`` (``True``, ``12.50``, ``2026-01-05 10:00:00``); ``None`` is empty.

    :param columns: the columns, in order; by default taken from the first page.
    """

    def __init__(
        self, fileobj: IO[bytes], *, compression: str | None = None, columns: Sequence[str] | None = None
    ) -> None:
        super().__init__(fileobj, compression=compression)
        self.columns: list[str] | None = list(columns) if columns else None
        self._explicit = bool(columns)
        self._text = io.TextIOWrapper(self._stream, encoding="utf-8", newline="", write_through=True)
        self._writer: Any = None

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        if self._writer is None:
            if not rows and self.columns is None:
                return
            self.columns = self.columns or columns_of(rows)
            self._writer = csv.DictWriter(
                self._text, fieldnames=self.columns, extrasaction="ignore", lineterminator="\r\n"
            )
            self._writer.writeheader()
        if not rows:
            return
        if not self._explicit:
            _check_columns(rows, self.columns)
        self._writer.writerows(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if self._closed:
            return
        if self._writer is None and self.columns:
            csv.writer(self._text, lineterminator="\r\n").writerow(self.columns)
        self._text.flush()
        self._text.detach()
        super().close()


# -- Parquet ---------------------------------------------------------------------------------------------


def _import_pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise NetSuiteError(
            "Parquet output needs pyarrow: pip install 'airflow-provider-netsuite[parquet]'"
        ) from error
    return pa, pq


class ParquetWriter(RowWriter):
    """Write Parquet, one row group per ``row_group_rows`` rows (pages are buffered until then).

    The schema comes from the first row group: the union of its keys (``links`` excluded, or ``columns``
    if given), each column's type inferred by pyarrow. Decimals become ``decimal128`` (precision 38, the
    largest scale seen); integers ``int64``; booleans ``bool``; datetimes ``timestamp``. A column that is
    empty or mixes types in the first row group is written as text. Later row groups are converted to that
    schema: values of a text column are turned into text; anything else that does not fit (a new column,
    a decimal with more digits after the point) raises :class:`WriterSchemaError`. With explicit
    ``columns``, other keys are left out.

    :param row_group_rows: rows per row group.
    :param columns: the columns, in order; by default taken from the first row group.
    """

    def __init__(
        self,
        fileobj: IO[bytes],
        *,
        compression: str | None = None,
        row_group_rows: int = 65_536,
        columns: Sequence[str] | None = None,
        parquet_compression: str = "snappy",
    ) -> None:
        if compression:
            raise ValueError(
                "Parquet compresses its own pages: leave compression=None (see parquet_compression)"
            )
        self._pa, self._pq = _import_pyarrow()
        super().__init__(fileobj)
        self.columns: list[str] | None = list(columns) if columns else None
        self._explicit = bool(columns)
        self.row_group_rows = row_group_rows
        self.parquet_compression = parquet_compression
        self._buffer: list[dict[str, Any]] = []
        self._schema: Any = None
        self._file: Any = None

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        self._buffer.extend(rows)
        self.rows += len(rows)
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        rows, self._buffer = self._buffer, []
        if self._schema is None:
            self.columns = self.columns or columns_of(rows)
            self._schema = self._infer_schema(rows)
            self._file = self._pq.ParquetWriter(
                self._stream, self._schema, compression=self.parquet_compression
            )
        if rows:
            if not self._explicit:
                _check_columns(rows, self.columns)
            self._file.write_table(self._table(rows), row_group_size=len(rows))

    def _infer_schema(self, rows: list[dict[str, Any]]) -> Any:
        pa = self._pa
        fields = []
        for name in self.columns:
            values = [row.get(name) for row in rows]
            try:
                array = pa.array(values, from_pandas=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                array = None
            kind = array.type if array is not None else pa.string()
            if pa.types.is_null(kind):
                kind = pa.string()
            elif pa.types.is_decimal(kind):
                kind = pa.decimal128(38, kind.scale)
            fields.append(pa.field(name, kind))
        return pa.schema(fields)

    def _column(self, name: str, values: list[Any], kind: Any) -> Any:
        pa = self._pa
        if pa.types.is_string(kind):
            values = [v if v is None or type(v) is str else _as_text(v) for v in values]
        try:
            return pa.array(values, type=kind, from_pandas=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as error:
            raise WriterSchemaError(
                f"Column {name!r} holds a value that does not fit its Parquet type {kind} (taken from the "
                f"first row group): {error}. Select it with TO_CHAR or list it in the typer's string_columns"
            ) from error

    def _table(self, rows: list[dict[str, Any]]) -> Any:
        arrays = [self._column(f.name, [row.get(f.name) for row in rows], f.type) for f in self._schema]
        return self._pa.Table.from_arrays(arrays, schema=self._schema)

    def close(self) -> None:
        if self._closed:
            return
        if self._buffer or self._schema is None:
            self._flush()
        if self._file is not None:
            self._file.close()
        super().close()


def _as_text(value: Any) -> str:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def make_writer(
    output_format: str, fileobj: IO[bytes], *, compression: str | None = None, **options: Any
) -> RowWriter:
    """Return the writer for ``output_format`` (``jsonl``, ``csv`` or ``parquet``)."""
    classes: dict[str, type[RowWriter]] = {"jsonl": JsonlWriter, "csv": CsvWriter, "parquet": ParquetWriter}
    if output_format not in classes:
        raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    return classes[output_format](fileobj, compression=compression, **options)
