"""Row writers for SuiteQL extracts: JSON Lines, CSV and Parquet over a binary file object.

Every writer takes pages (lists of row dicts) through :meth:`RowWriter.write_page`, counts ``rows`` and the
``bytes_written`` to the underlying file, and must be closed with :meth:`RowWriter.close` (which does not
close the file object it was given). JSON Lines and CSV can be gzip-compressed.

NetSuite leaves null values out of a row, so a column may first appear on any page. Unless the columns are
given, CSV and Parquet therefore spool what they write to a local temporary file and write the file itself
at :meth:`RowWriter.close`, with every column seen: memory stays flat, the disk holds one extra copy.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
import tempfile
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
    """Raise when a value does not fit the Parquet type its column got where the column first appeared."""


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


def new_columns(rows: list[dict[str, Any]], known: Sequence[str] | dict[str, None]) -> list[str]:
    """Return the rows' keys missing from ``known``, in first-seen order (``links`` excluded)."""
    if not set().union(*rows).difference(known, _NOT_COLUMNS):
        return []  # the usual case, decided without a loop in Python
    return [column for column in columns_of(rows) if column not in known]


_CSV_LINE_END = b"\r\n"
_COPY_CHUNK = 1 << 20


def _copy_range(source: IO[bytes], target: IO[bytes], stop: int) -> None:
    """Copy ``source`` from its position up to byte ``stop`` into ``target``."""
    left = stop - source.tell()
    while left > 0:
        chunk = source.read(min(_COPY_CHUNK, left))
        if not chunk:
            break
        target.write(chunk)
        left -= len(chunk)


def _copy_padded(source: IO[bytes], target: IO[bytes], stop: int, padding: bytes) -> None:
    """Copy CSV records from ``source`` up to byte ``stop``, adding ``padding`` at the end of each.

    The records were written by :mod:`csv` with minimal quoting, so a line end is a record end exactly
    when the record so far holds an even number of ``"`` (a quoted field may hold line ends).
    """
    record, done, position = b"", [], source.tell()
    while position < stop:
        line = source.readline()
        position += len(line)
        record += line
        if record.count(b'"') % 2 == 0:
            done.append(record[: -len(_CSV_LINE_END)] + padding + _CSV_LINE_END)
            record = b""
            if len(done) >= 1000:
                target.write(b"".join(done))
                done = []
    target.write(b"".join(done))


class _CsvSpool:
    """CSV records spooled to a local temporary file while the column list can still grow.

    Rows are written with the columns known so far; a new column starts a new segment, written with the
    longer column list. :meth:`replay` writes the header with every column, then the segments in order,
    padding the records of the earlier segments with empty fields at the end (new columns come last).
    """

    def __init__(self) -> None:
        self.columns: dict[str, None] = {}
        self._file = tempfile.TemporaryFile()  # closed with self._text in close()
        self._text = io.TextIOWrapper(self._file, encoding="utf-8", newline="", write_through=True)
        self._segments: list[tuple[int, int]] = []  # (byte offset, number of columns)
        self._writer: Any = None

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Spool rows, widening the column list when they hold a new column."""
        added = new_columns(rows, self.columns)
        if added or self._writer is None:
            self.columns.update(dict.fromkeys(added))
            self._segments.append((self._file.tell(), len(self.columns)))
            self._writer = csv.DictWriter(
                self._text, fieldnames=list(self.columns), extrasaction="ignore", lineterminator="\r\n"
            )
        self._writer.writerows(rows)

    def replay(self, text: IO[str], stream: IO[bytes]) -> None:
        """Write the header and every spooled record, as wide as the final column list."""
        csv.writer(text, lineterminator="\r\n").writerow(self.columns)
        text.flush()
        self._text.flush()
        end = self._file.tell()
        bounds = [offset for offset, _ in self._segments[1:]] + [end]
        for (offset, width), stop in zip(self._segments, bounds, strict=True):
            self._file.seek(offset)
            if width == len(self.columns):
                _copy_range(self._file, stream, stop)
            else:
                _copy_padded(self._file, stream, stop, b"," * (len(self.columns) - width))

    def close(self) -> None:
        """Delete the temporary file."""
        self._text.close()


class CsvWriter(RowWriter):
    """Write CSV (RFC 4180, UTF-8) with a header row.

    With ``columns`` given, the header is those columns and rows are written as they come; other keys are
    left out by choice. Without, the columns are the union of every row's keys in first-seen order
    (NetSuite omits null values, so a column may first appear on a late page): rows are spooled to a
    local temporary file and the file is written at :meth:`close`, every row as wide as the header. A key
    missing from a row is written empty. ``links`` is never a column. Values are written with ``str``
    (``True``, ``12.50``, ``2026-01-05 10:00:00``); ``None`` is empty.

    :param columns: the columns, in order; by default every key seen.
    """

    def __init__(
        self, fileobj: IO[bytes], *, compression: str | None = None, columns: Sequence[str] | None = None
    ) -> None:
        super().__init__(fileobj, compression=compression)
        self.columns: list[str] | None = list(columns) if columns else None
        self._text = io.TextIOWrapper(self._stream, encoding="utf-8", newline="", write_through=True)
        self._spool = None if columns else _CsvSpool()
        self._writer: Any = None
        if self.columns:
            self._writer = csv.DictWriter(
                self._text, fieldnames=self.columns, extrasaction="ignore", lineterminator="\r\n"
            )
            self._writer.writeheader()

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._spool is not None:
            self._spool.write(rows)
            self.columns = list(self._spool.columns)
        else:
            self._writer.writerows(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._spool is not None and self._spool.columns:
                self._spool.replay(self._text, self._stream)
        finally:
            if self._spool is not None:
                self._spool.close()
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

    Each column's type is inferred by pyarrow from the row group where the column first appears: decimals
    become ``decimal128`` (precision 38, the largest scale seen); integers ``int64``; booleans ``bool``;
    datetimes ``timestamp``; a column that is empty or mixes types there is written as text. Later row
    groups are converted to those types: values of a text column are turned into text; anything else that
    does not fit (a decimal with more digits after the point) raises :class:`WriterSchemaError`.

    With ``columns`` given, those are the columns, taken from the first row group, and other keys are left
    out. Without, the columns are every key seen (``links`` excluded) in first-seen order; NetSuite omits
    null values, so a column may first appear in a late row group. The row groups are then written to a
    local temporary file and copied to the file object at :meth:`close`; when a column appeared after the
    first row group, the earlier row groups are rewritten there one at a time with that column null.

    :param row_group_rows: rows per row group.
    :param columns: the columns, in order; by default every key seen.
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
        # Without given columns, row groups go to segment files here, one per schema (columns come late).
        self._spool = None if columns else tempfile.TemporaryDirectory(prefix="netsuite-parquet-")
        self._segments: list[str] = []

    def write_page(self, rows: list[dict[str, Any]]) -> None:
        self._buffer.extend(rows)
        self.rows += len(rows)
        if len(self._buffer) >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        rows, self._buffer = self._buffer, []
        if self._schema is None:
            self.columns = self.columns or columns_of(rows)
            self._open(self._infer_schema(rows, self.columns))
        elif not self._explicit:
            added = new_columns(rows, self.columns)
            if added:
                self._widen(rows, added)
        if rows:
            self._file.write_table(self._table(rows), row_group_size=len(rows))

    def _open(self, schema: Any) -> None:
        """Start writing with ``schema``: to the file object, or to a new segment file of the spool."""
        self._schema = schema
        target: Any = self._stream
        if self._spool is not None:
            target = os.path.join(self._spool.name, f"segment-{len(self._segments):05d}.parquet")
            self._segments.append(target)
        self._file = self._pq.ParquetWriter(target, schema, compression=self.parquet_compression)

    def _widen(self, rows: list[dict[str, Any]], added: list[str]) -> None:
        """Close the current segment and start one whose schema has the ``added`` columns at the end."""
        self._file.close()
        self.columns = [*self.columns, *added]
        self._open(self._pa.schema([*self._schema, *self._infer_schema(rows, added)]))

    def _infer_schema(self, rows: list[dict[str, Any]], names: Sequence[str]) -> Any:
        pa = self._pa
        fields = []
        for name in names:
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
                f"row group where it first appeared): {error}. Select it with TO_CHAR or list it in the "
                "typer's string_columns"
            ) from error

    def _table(self, rows: list[dict[str, Any]]) -> Any:
        arrays = [self._column(f.name, [row.get(f.name) for row in rows], f.type) for f in self._schema]
        return self._pa.Table.from_arrays(arrays, schema=self._schema)

    def _publish_segments(self) -> None:
        """Copy the one segment to the file object, or merge the segments under the final schema."""
        if len(self._segments) == 1:
            with open(self._segments[0], "rb") as segment:
                shutil.copyfileobj(segment, self._stream, _COPY_CHUNK)
            return
        with self._pq.ParquetWriter(
            self._stream, self._schema, compression=self.parquet_compression
        ) as merged:
            for path in self._segments:
                segment = self._pq.ParquetFile(path)
                for index in range(segment.num_row_groups):
                    group = self._widened(segment.read_row_group(index))
                    merged.write_table(group, row_group_size=len(group))

    def _widened(self, group: Any) -> Any:
        """Return a row group of an earlier segment with the final schema, later columns null."""
        pa = self._pa
        arrays = [
            group.column(f.name) if f.name in group.column_names else pa.nulls(len(group), f.type)
            for f in self._schema
        ]
        return pa.Table.from_arrays(arrays, schema=self._schema)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._buffer or self._schema is None:
                self._flush()
            if self._file is not None:
                self._file.close()
            if self._spool is not None:
                self._publish_segments()
        finally:
            if self._spool is not None:
                self._spool.cleanup()
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
