"""The REST record service: ``/services/rest/record/v1/<recordType>`` and the async job service.

Records live in the same SQLite tables the SuiteQL engine reads (see ``dataset.RECORD_TYPES``), so a record
written here is visible to SuiteQL at once. Values follow the records API, not SuiteQL: proper JSON types,
booleans as ``true``/``false``, dates as ``YYYY-MM-DD`` and datetimes as ISO-8601 UTC
(``2026-01-06T08:00:00Z``), references as ``{"links": [...], "id": "12"}``, empty fields omitted.

Faithful to NetSuite's documentation: 204 + ``Location`` for create, update and upsert; PUT only with
``eid:<externalId>``; ``null`` deletes a field; ``?replace=`` for sublists, keyed and non-keyed (see
:data:`SUBLIST_KEYS`); ``?replaceSelectedFields=true&replace=...`` changing only the named body fields and
sublists; the property name and value validation headers with their defaults (``warning`` and ``error``);
``Prefer: respond-async`` giving 202 and a job; batches of at most 100 records, including batch GET
(``?ids=1,2,eid:x``) and batch DELETE on the collection path; the idempotency key and its ``Conflict`` body.

Design choices where the sources are silent (UNCONFIRMED):

- an unknown record type gives 404 ``INVALID_REQUEST`` "Record type '<x>' does not exist.";
- a non-numeric internal ID gives 404 ``NONEXISTENT_ID``; a bad external ID gives 400 ``INVALID_PARAMETER``
  with ``o:urlPath`` (in the body: 400 ``INVALID_CONTENT`` with ``o:errorPath``);
- PUT with an internal ID gives 400 ``INVALID_REQUEST``;
- a Content-Type other than JSON gives 415 ``INVALID_HEADER``;
- warnings (unknown or read-only field names, wrong values under ``warning``) come back one per
  ``X-NetSuite-Warning`` response header; ``id`` in a body is an error (400 ``INVALID_CONTENT``), other
  read-only fields are ignored with a warning;
- a reference may be ``{"id": "12"}``, ``{"externalId": "X"}`` or a bare internal ID;
- a sublist is written as ``{"items": [...]}``; a keyed sublist's lines are keyed by ``line``: a line with
  a known ``line`` is updated, others are appended, and with ``?replace=`` unmatched old lines are removed;
  a non-keyed sublist's lines are always appended, and with ``?replace=`` all old lines are replaced;
- with ``replaceSelectedFields=true``, a body field named in ``replace`` but absent from the body is
  deleted (as a replaced sublist absent from the body loses all its lines); properties not named are
  ignored;
- a batch GET or DELETE needs ``ids`` (without it the collection path answers 405, as before); an ID that
  is malformed or names no record fails in its own task;
- required fields (company name, item name, customer of a transaction) give 400 ``USER_ERROR``
  "Please enter value(s) for: <label>."; a duplicate external ID gives 400 ``USER_ERROR``;
- a batch without ``Prefer: respond-async`` gives 400 ``INVALID_HEADER``; a batch PATCH or PUT item without
  its key fails in its own task; a PATCH item with both ``id`` and ``externalId`` is keyed by ``id`` and
  its ``externalId`` is not written; an ``id`` in a PUT item is ignored;
- any non-empty ``X-NetSuite-Idempotency-Key`` is accepted (the docs show a UUID but state no rule);
  UUIDs are compared in lower case, other keys exactly; a blank key gives 400 ``INVALID_HEADER``;
- the result of an unfinished task gives 404 ``NONEXISTENT_ID``; a job's ``task`` link has ``rel`` ``self``
  and a task's result link ``rel`` ``related``, as in Oracle's examples;
- injected transient failures answer 503 ``SERVICE_UNAVAILABLE``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from airflow_provider_netsuite.emulator import errors
from airflow_provider_netsuite.emulator.dataset import ACCOUNT_TIME_ZONE, RECORD_TYPES, RecordType, Sublist
from airflow_provider_netsuite.emulator.jobs import DuplicateIdempotencyKey, Job, JobStore, Task, utc_stamp

log = logging.getLogger(__name__)

RECORD_PATH = "/services/rest/record/v1"
JOB_PATH = "/services/rest/async/v1/job"
ADMIN_PATH = "/_emulator/records/config"
WRITES_PATH = "/_emulator/records/writes"
FAILURES_ENV = "NETSUITE_EMULATOR_RECORD_FAILURES"
JOB_DELAY_ENV = "NETSUITE_EMULATOR_JOB_DELAY_MS"
WARNING_HEADER = "X-NetSuite-Warning"
MALFORMED = "The request could not be understood by the server due to malformed syntax."
NONEXISTENT = "Record does not exist."
LOCKED_DETAIL = "This record has been locked by a user defined workflow."
UNAVAILABLE_DETAIL = "The service is temporarily unavailable. Try the request again later."
IDEMPOTENCY_DETAIL = (
    'A request with the same idempotency key is already submitted. See the "Location" header for a link to '
    "the previously submitted job"
)
CONFLICT_TYPE = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.10"
MAX_BATCH = 100
DEFAULT_JOB_DELAY = 0.2
VALIDATION_LEVELS = ("ignore", "warning", "error")
JSON_TYPES = ("application/json", "application/vnd.oracle.resource+json")
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]+$")
INTERNAL_ID = re.compile(r"^[0-9]{1,18}$")
STAMP = "%Y-%m-%d %H:%M:%S"
ZONE = ZoneInfo(ACCOUNT_TIME_ZONE)

# REST property names of columns whose name has several words (the others are the column name itself).
_PROPERTY_NAMES = {
    "entityid": "entityId",
    "externalid": "externalId",
    "companyname": "companyName",
    "firstname": "firstName",
    "lastname": "lastName",
    "isperson": "isPerson",
    "isinactive": "isInactive",
    "creditlimit": "creditLimit",
    "datecreated": "dateCreated",
    "lastmodifieddate": "lastModifiedDate",
    "itemid": "itemId",
    "displayname": "displayName",
    "baseprice": "basePrice",
    "tranid": "tranId",
    "trandate": "tranDate",
    "foreigntotal": "foreignTotal",
    "createddate": "createdDate",
}
# Sublist line properties to their columns; other line columns are internal to the emulator.
_LINE_PROPERTIES = {
    "line": "id",
    "item": "item",
    "quantity": "quantity",
    "rate": "rate",
    "amount": "netamount",
}
_LINE_PROPERTIES.update({"memo": "memo", "netamount": "netamount"})
_LINE_OUTPUT = {"id": "line", "item": "item", "quantity": "quantity", "rate": "rate", "netamount": "amount"}
_LINE_OUTPUT["memo"] = "memo"
_TRANSACTION_PREFIXES = {"SalesOrd": ("SO", "B"), "CustInvc": ("INV", "A"), "CashSale": ("CS", "C")}
_LABELS = {"companyname": "Company Name", "lastname": "Last Name", "itemid": "Item Name/Number"}
_LABELS.update({"entity": "Customer", "item": "Item"})
_IGNORED_PROPERTIES = frozenset({"links", "refname"})

#: Whether each sublist NetSuite documents is keyed. A keyed sublist has a field that identifies a line
#: (``addressbook`` lines by their internal ID, ``currency`` lines of an entity by currency); a line sent
#: with a known key updates that line. The ``item`` sublist of a transaction is treated as non-keyed: its
#: lines carry no key a client can match, so lines sent without ``replace`` are appended and
#: ``?replace=item`` replaces every line (which is how Oracle's examples delete a line). The emulator keys
#: keyed sublists by ``line``; a sublist missing here counts as keyed.
SUBLIST_KEYS: dict[str, bool] = {"addressbook": True, "currency": True, "contactroles": True, "item": False}


class RecordError(Exception):
    """A NetSuite error answer: status, ``detail``, ``o:errorCode`` and optional pointer fields.

    :param fields: ``path``, ``url_path``, ``header`` or ``query_param`` of :func:`errors.error_body`.
    """

    def __init__(
        self, status: int, detail: str, code: str, *, title: str | None = None, **fields: str
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code
        self.title = title
        self.fields = fields

    def outcome(self) -> Outcome:
        """Return the error as an outcome (status and NetSuite error body)."""
        body = errors.error_body(self.status, self.detail, self.code, title=self.title, **self.fields)
        return Outcome(self.status, body=body, media_type=errors.ERROR_MEDIA_TYPE)


@dataclass
class Outcome:
    """The result of one record operation: what the HTTP answer (or the async task result) carries."""

    status: int
    body: Any = None
    location: str | None = None
    warnings: list[str] = field(default_factory=list)
    media_type: str = "application/json"

    @property
    def succeeded(self) -> bool:
        """Tell whether the operation succeeded (2xx)."""
        return 200 <= self.status < 300

    def response(self) -> Response:
        """Build the HTTP response: a JSON body, or none for 204."""
        if self.body is None:
            response: Response = Response(status_code=self.status)
        else:
            response = JSONResponse(self.body, status_code=self.status, media_type=self.media_type)
        if self.location:
            response.headers["Location"] = self.location
        for warning in self.warnings:
            response.headers.append(WARNING_HEADER, warning.encode("ascii", "backslashreplace").decode())
        return response


@dataclass(frozen=True)
class Operation:
    """One record operation, as run synchronously or as one task of an async job.

    :param action: ``create``, ``get``, ``update``, ``upsert`` or ``delete``.
    :param key: internal ID or ``eid:<externalId>``; ``None`` for create.
    :param base_url: scheme and host the request came in on, for ``Location`` and ``links``.
    :param replace: sublists (and, with ``selected_fields``, body fields) named in ``?replace=``.
    :param selected_fields: ``?replaceSelectedFields=true``: an update changes only what ``replace`` names.
    """

    action: str
    record_type: str
    key: str | None
    body: dict[str, Any] | None
    base_url: str
    name_validation: str = "warning"
    value_validation: str = "error"
    replace: frozenset[str] = frozenset()
    expand: bool = False
    selected_fields: bool = False


@dataclass
class _Changes:
    """A request body checked against its record type: column values, sublist lines, warnings."""

    columns: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class RecordFailures:
    """Failures injected into chosen records, on top of the server's generic faults.

    The spec is ``{"permanent": [...] | {key: detail}, "transient": {key: count}}``. A key is an internal
    ID (``"42"``), an external ID (``"eid:LOCKED-1"``), optionally scoped to a record type
    (``"customer/eid:LOCKED-1"``). A permanent failure answers every write with 400 ``USER_ERROR`` (by
    default "locked by a user defined workflow"); a transient one answers 503 ``count`` times, then lets
    the write through.
    """

    def __init__(self) -> None:
        self.permanent: dict[str, str] = {}
        self.transient: dict[str, int] = {}
        self._lock = threading.Lock()

    def configure(self, spec: dict[str, Any]) -> None:
        """Replace the injected failures with those of a spec (an empty spec clears them).

        :raises ValueError: naming what is wrong with the spec.
        """
        if not isinstance(spec, dict) or set(spec) - {"permanent", "transient"}:
            raise ValueError("record failures must be an object with 'permanent' and/or 'transient'")
        permanent = spec.get("permanent") or {}
        if isinstance(permanent, list):
            permanent = dict.fromkeys(permanent, LOCKED_DETAIL)
        transient = spec.get("transient") or {}
        if not isinstance(permanent, dict) or not all(isinstance(value, str) for value in permanent.values()):
            raise ValueError("'permanent' must be a list of record keys or an object of key to detail")
        if not isinstance(transient, dict) or not all(_is_count(value) for value in transient.values()):
            raise ValueError("'transient' must be an object of record key to a count of failures")
        with self._lock:
            self.permanent = {str(key): detail for key, detail in permanent.items()}
            self.transient = {str(key): int(count) for key, count in transient.items()}
        log.info("Record failures: %d permanent, %d transient", len(self.permanent), len(self.transient))

    def as_dict(self) -> dict[str, Any]:
        """Return the current spec (transient counts are those still to come)."""
        with self._lock:
            return {"permanent": dict(self.permanent), "transient": dict(self.transient)}

    def check(self, record_type: str, keys: set[str]) -> None:
        """Raise the injected failure of a write to a record known by any of ``keys``, if there is one.

        :raises RecordError: 400 ``USER_ERROR`` or 503.
        """
        candidates = keys | {f"{record_type}/{key}" for key in keys}
        with self._lock:
            for key in candidates:
                if key in self.permanent:
                    raise RecordError(400, self.permanent[key], "USER_ERROR")
            for key in candidates:
                if self.transient.get(key, 0) > 0:
                    self.transient[key] -= 1
                    raise RecordError(503, UNAVAILABLE_DETAIL, "SERVICE_UNAVAILABLE")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class RecordService:
    """Create, read, update, upsert and delete records in the emulator's database; hold async jobs.

    :param db_path: the SQLite database of the data set.
    :param on_change: called after every committed write, so SuiteQL forgets cached totals.
    :param job_delay: seconds an async job waits before it runs.
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        on_change: Callable[[], None] | None = None,
        job_delay: float = DEFAULT_JOB_DELAY,
    ) -> None:
        self.db_path = str(db_path)
        self.on_change = on_change
        self.failures = RecordFailures()
        self.jobs = JobStore(job_delay)
        self._write_lock = threading.Lock()
        self._not_null: dict[str, frozenset[str]] = {}
        # Admin counters (not NetSuite's): write operations that reached the service, per record key.
        self.writes: Counter[str] = Counter()
        self._writes_lock = threading.Lock()

    def run(self, operation: Operation) -> Outcome:
        """Run one operation; a NetSuite error becomes an error outcome, never an exception."""
        self._count_write(operation)
        try:
            return self._dispatch(operation)
        except RecordError as error:
            return error.outcome()
        except sqlite3.Error:
            error_id = uuid.uuid4().hex[:20]
            log.exception("Record operation failed unexpectedly (error ID %s)", error_id)
            detail = f"An unexpected error occurred. Error ID: {error_id}"
            return RecordError(500, detail, "UNEXPECTED_ERROR").outcome()

    def _count_write(self, operation: Operation) -> None:
        """Count a write as ``<action> <recordType>/<key>``; a create is keyed by its body's externalId."""
        if operation.action == "get":
            return
        key = operation.key
        if key is None:
            body = operation.body or {}
            external_id = next((value for name, value in body.items() if name.lower() == "externalid"), None)
            key = f"eid:{external_id}" if external_id is not None else "(no key)"
        with self._writes_lock:
            self.writes[f"{operation.action} {operation.record_type}/{key}"] += 1

    def write_counts(self, contains: str = "") -> dict[str, int]:
        """Return the write counters whose name contains ``contains``."""
        with self._writes_lock:
            return {name: count for name, count in self.writes.items() if contains in name}

    def run_task(self, operation: Operation) -> tuple[Outcome, bool]:
        """Run one operation as an async task; return its outcome and whether it succeeded."""
        outcome = self.run(operation)
        return outcome, outcome.succeeded

    def _dispatch(self, operation: Operation) -> Outcome:
        record_type = _record_type(operation.record_type)
        if operation.action == "get":
            return self._get(record_type, operation)
        with self._write_lock, _connect(self.db_path) as connection:
            if operation.action == "create":
                outcome = self._create(connection, record_type, operation)
            elif operation.action == "update":
                outcome = self._update(connection, record_type, operation)
            elif operation.action == "upsert":
                outcome = self._upsert(connection, record_type, operation)
            elif operation.action == "delete":
                outcome = self._delete(connection, record_type, operation)
            else:
                raise ValueError(f"unknown record action {operation.action!r}")
            connection.commit()
        if self.on_change is not None:
            self.on_change()
        return outcome

    def _get(self, record_type: RecordType, operation: Operation) -> Outcome:
        with _connect(self.db_path) as connection:
            row = _find(connection, record_type, _parse_key(operation.key, for_put=False))
            if row is None:
                raise RecordError(404, NONEXISTENT, "NONEXISTENT_ID")
            body = _render(connection, record_type, row, operation.base_url, operation.expand)
        return Outcome(200, body=body)

    def _create(
        self, connection: sqlite3.Connection, record_type: RecordType, operation: Operation
    ) -> Outcome:
        body = operation.body or {}
        if "id" in {name.lower() for name in body}:
            raise RecordError(
                400, "The field id is read-only and cannot be set.", "INVALID_CONTENT", path="id"
            )
        changes = _check_body(connection, record_type, body, operation)
        external_id = changes.columns.get("externalid")
        self.failures.check(record_type.name, {f"eid:{external_id}"} if external_id else set())
        record_id = self._insert(connection, record_type, changes)
        return _written(record_type, record_id, operation, changes)

    def _update(
        self, connection: sqlite3.Connection, record_type: RecordType, operation: Operation
    ) -> Outcome:
        key = _parse_key(operation.key, for_put=False)
        row = _find(connection, record_type, key)
        if row is None:
            raise RecordError(404, NONEXISTENT, "NONEXISTENT_ID")
        return self._apply(connection, record_type, operation, row)

    def _upsert(
        self, connection: sqlite3.Connection, record_type: RecordType, operation: Operation
    ) -> Outcome:
        key = _parse_key(operation.key, for_put=True)
        row = _find(connection, record_type, key)
        if row is not None:
            return self._apply(connection, record_type, operation, row)
        external_id = key[4:]
        body = {name: value for name, value in (operation.body or {}).items() if name.lower() != "externalid"}
        body["externalId"] = external_id
        return self._create(connection, record_type, replace(operation, body=body))

    def _delete(
        self, connection: sqlite3.Connection, record_type: RecordType, operation: Operation
    ) -> Outcome:
        row = _find(connection, record_type, _parse_key(operation.key, for_put=False))
        if row is None:
            raise RecordError(404, NONEXISTENT, "NONEXISTENT_ID")
        self.failures.check(record_type.name, _row_keys(row))
        for sublist in record_type.sublists.values():
            connection.execute(
                f'DELETE FROM "{sublist.table}" WHERE "{sublist.parent_column}" = ?',  # noqa: S608
                (row["id"],),
            )
        connection.execute(f'DELETE FROM "{record_type.table}" WHERE id = ?', (row["id"],))  # noqa: S608
        log.info("Deleted %s %s", record_type.name, row["id"])
        return Outcome(204)

    def _apply(
        self,
        connection: sqlite3.Connection,
        record_type: RecordType,
        operation: Operation,
        row: dict[str, Any],
    ) -> Outcome:
        body = dict(operation.body or {})
        if "id" in {name.lower() for name in body}:
            raise RecordError(
                400, "The field id is read-only and cannot be set.", "INVALID_CONTENT", path="id"
            )
        if operation.action == "upsert":
            body = {name: value for name, value in body.items() if name.lower() != "externalid"}
        if operation.selected_fields:
            body = _selected_fields(record_type, body, operation.replace)
        self.failures.check(record_type.name, _row_keys(row))
        changes = _check_body(connection, record_type, body, operation)
        merged = {**row, **changes.columns}
        _check_required(record_type, merged, self._required_columns(connection, record_type))
        columns = {**changes.columns, **_stamps(record_type, created=False)}
        assignments = ", ".join(f'"{name}" = ?' for name in columns)
        try:
            connection.execute(
                f'UPDATE "{record_type.table}" SET {assignments} WHERE id = ?',  # noqa: S608
                [*columns.values(), row["id"]],
            )
        except sqlite3.IntegrityError as error:
            raise _duplicate_external_id(record_type, columns.get("externalid")) from error
        _write_sublists(connection, record_type, row["id"], changes, operation.replace)
        return _written(record_type, row["id"], operation, changes)

    def _insert(self, connection: sqlite3.Connection, record_type: RecordType, changes: _Changes) -> int:
        table = record_type.table
        record_id = connection.execute(f'SELECT COALESCE(MAX(id), 0) + 1 FROM "{table}"').fetchone()[0]  # noqa: S608
        columns = {**_defaults(connection, record_type, record_id, changes.columns), **changes.columns}
        columns = {name: value for name, value in columns.items() if value is not None}
        _check_required(record_type, columns, self._required_columns(connection, record_type))
        columns["id"] = record_id
        columns.update(_stamps(record_type, created=True))
        names = ", ".join(f'"{name}"' for name in columns)
        marks = ", ".join("?" for _ in columns)
        try:
            connection.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(columns.values()))  # noqa: S608
        except sqlite3.IntegrityError as error:
            raise _duplicate_external_id(record_type, columns.get("externalid")) from error
        _write_sublists(connection, record_type, record_id, changes, frozenset())
        log.info("Created %s %s", record_type.name, record_id)
        return record_id

    def _required_columns(self, connection: sqlite3.Connection, record_type: RecordType) -> frozenset[str]:
        table = record_type.table
        if table not in self._not_null:
            info = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
            self._not_null[table] = frozenset(column[1] for column in info if column[3])
        return self._not_null[table]


@contextlib.contextmanager
def _connect(db_path: str) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(db_path, timeout=30)
    connection.row_factory = sqlite3.Row
    try:
        yield connection
    finally:
        connection.close()


def _duplicate_external_id(record_type: RecordType, external_id: Any) -> RecordError:
    detail = f"A {record_type.name} record with the external ID {external_id} already exists."
    return RecordError(400, detail, "USER_ERROR", path="externalId")


def _record_type(name: str) -> RecordType:
    record_type = RECORD_TYPES.get(name)
    if record_type is None:
        raise RecordError(
            404, f"Record type '{name}' does not exist.", "INVALID_REQUEST", url_path=f"record/v1/{name}"
        )
    return record_type


def _parse_key(key: str | None, *, for_put: bool) -> str:
    """Check a record key from the URL (or a batch item): an internal ID or ``eid:<externalId>``."""
    if key is None:
        raise RecordError(
            400, "The record must carry an id or an externalId to be updated.", "INVALID_CONTENT", path="id"
        )
    if key.startswith("eid:"):
        check_external_id(key[4:], url_path=key)
        return key
    if for_put:
        raise RecordError(
            400,
            "The PUT method (insert or update) is supported only with an external ID: use eid:<externalId>.",
            "INVALID_REQUEST",
            url_path=key,
        )
    if not INTERNAL_ID.match(key):
        raise RecordError(404, NONEXISTENT, "NONEXISTENT_ID", url_path=key)
    return key


def check_external_id(value: Any, *, url_path: str | None = None) -> str:
    """Check an external ID: letters, digits, ``_`` and ``-`` only.

    :param url_path: where the ID was read from the URL; ``None`` when it came from the body.
    :raises RecordError: 400 ``INVALID_PARAMETER`` (URL) or ``INVALID_CONTENT`` (body).
    """
    if isinstance(value, str) and EXTERNAL_ID.match(value):
        return value
    detail = f"Invalid external ID {value}. An external ID may contain only letters, digits, '_' and '-'."
    if url_path is not None:
        raise RecordError(400, detail, "INVALID_PARAMETER", url_path=url_path)
    raise RecordError(400, detail, "INVALID_CONTENT", path="externalId")


def _find(connection: sqlite3.Connection, record_type: RecordType, key: str) -> dict[str, Any] | None:
    column, value = ("externalid", key[4:]) if key.startswith("eid:") else ("id", int(key))
    sql = f'SELECT * FROM "{record_type.table}" WHERE "{column}" = ?'  # noqa: S608
    parameters: list[Any] = [value]
    if record_type.discriminator:
        sql += f' AND "{record_type.discriminator[0]}" = ?'
        parameters.append(record_type.discriminator[1])
    row = connection.execute(sql, parameters).fetchone()
    return dict(row) if row is not None else None


def _row_keys(row: dict[str, Any]) -> set[str]:
    keys = {str(row["id"])}
    if row.get("externalid"):
        keys.add(f"eid:{row['externalid']}")
    return keys


def _selected_fields(record_type: RecordType, body: dict[str, Any], named: frozenset[str]) -> dict[str, Any]:
    """Keep only the body properties ``replace`` names; a named body field left out becomes ``null``."""
    wanted = {name.lower() for name in named}
    selected = {name: value for name, value in body.items() if name.lower() in wanted}
    present = {name.lower() for name in selected}
    for name in sorted(named):
        if name not in record_type.sublists and name.lower() not in present:
            selected[name] = None
    return selected


def _written(record_type: RecordType, record_id: int, operation: Operation, changes: _Changes) -> Outcome:
    location = f"{operation.base_url}{RECORD_PATH}/{record_type.name}/{record_id}"
    return Outcome(204, location=location, warnings=changes.warnings)


# --- request bodies ------------------------------------------------------------------------------------


def _check_body(
    connection: sqlite3.Connection, record_type: RecordType, body: dict[str, Any], operation: Operation
) -> _Changes:
    """Check every property of a body against the record type and convert it to column values."""
    changes = _Changes()
    for name, value in body.items():
        column = name.lower()
        if column in _IGNORED_PROPERTIES:
            continue
        if name in record_type.sublists:
            sublist = record_type.sublists[name]
            changes.lines[name] = _check_lines(connection, sublist, name, value, operation, changes)
            continue
        field_type = record_type.field_type(name)
        if field_type is None or _hidden(record_type, column):
            _unknown_field(name, name, record_type.name, operation.name_validation, changes)
            continue
        if column in record_type.read_only:
            changes.warnings.append(f"The field {name} is read-only; its value was ignored.")
            continue
        converted = _convert(connection, record_type.references.get(column), field_type, name, name, value)
        if converted is _INVALID:
            _invalid_value(name, name, value, operation.value_validation, changes)
            continue
        if column == "externalid" and converted is not None:
            check_external_id(converted)
        changes.columns[column] = converted
    return changes


def _check_lines(
    connection: sqlite3.Connection,
    sublist: Sublist,
    name: str,
    value: Any,
    operation: Operation,
    changes: _Changes,
) -> list[dict[str, Any]]:
    """Check the lines of a sublist (``{"items": [...]}``); return each line's column values."""
    if value is None:
        return []
    items = value.get("items") if isinstance(value, dict) else None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise RecordError(400, _invalid_detail(value, name), "INVALID_CONTENT", path=name)
    lines = []
    for index, item in enumerate(items):
        line: dict[str, Any] = {}
        for property_name, property_value in item.items():
            path = f"{name}.items[{index}].{property_name}"
            column = _LINE_PROPERTIES.get(property_name.lower())
            if property_name.lower() in _IGNORED_PROPERTIES:
                continue
            if column is None:
                _unknown_field(property_name, path, f"{name} sublist", operation.name_validation, changes)
                continue
            field_type = sublist.fields[column]
            reference = sublist.references.get(column)
            converted = _convert(connection, reference, field_type, property_name, path, property_value)
            if converted is _INVALID:
                _invalid_value(property_name, path, property_value, operation.value_validation, changes)
                continue
            line[column] = converted
        lines.append(line)
    return lines


def _unknown_field(name: str, path: str, owner: str, level: str, changes: _Changes) -> None:
    if level == "error":
        detail = f"Invalid field name {name}. The field does not exist on the {owner} record."
        raise RecordError(400, detail, "NONEXISTENT_FIELD", path=path)
    if level == "warning":
        changes.warnings.append(f"Invalid field name {path}. The field does not exist and was ignored.")


def _invalid_value(name: str, path: str, value: Any, level: str, changes: _Changes) -> None:
    if level == "error":
        raise RecordError(400, _invalid_detail(value, name), "INVALID_CONTENT", path=path)
    if level == "warning":
        changes.warnings.append(_invalid_detail(value, path) + " The value was ignored.")


def _invalid_detail(value: Any, name: str) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return (
        "Error while accessing a resource. You have entered an Invalid Field Value "
        f"{shown} for the following field: {name}"
    )


def _hidden(record_type: RecordType, column: str) -> bool:
    """Tell whether a column is the emulator's storage detail rather than a REST field."""
    return record_type.discriminator is not None and column == record_type.discriminator[0]


class _Invalid:
    """Marker of a value of the wrong type for its field."""


_INVALID = _Invalid()


def _convert(
    connection: sqlite3.Connection, reference: str | None, field_type: str, name: str, path: str, value: Any
) -> Any:
    """Convert a JSON value to its stored form; return :data:`_INVALID` for a value of the wrong type.

    :raises RecordError: for a reference to a record that does not exist (a semantic error, always 400).
    """
    if value is None:
        return None
    if field_type == "select":
        return _resolve_reference(connection, reference, name, path, value)
    converter = _CONVERTERS[field_type]
    try:
        return converter(value)
    except (TypeError, ValueError):
        return _INVALID


def _to_string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _to_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def _to_decimal(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError("not a number")
    return value


def _to_boolean(value: Any) -> str:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return "T" if value else "F"


def _to_date(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 10:
        raise TypeError("not a date")
    return datetime.strptime(value, "%Y-%m-%d").strftime(STAMP)


def _to_datetime(value: Any) -> str:
    if not isinstance(value, str) or len(value) < 10:
        raise TypeError("not a datetime")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(ZONE).strftime(STAMP)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "string": _to_string,
    "integer": _to_integer,
    "decimal": _to_decimal,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
}


def _resolve_reference(
    connection: sqlite3.Connection, table: str | None, name: str, path: str, value: Any
) -> int | _Invalid:
    """Return the internal ID a reference names; a well-formed reference to nothing is a 400."""
    if isinstance(value, dict) and ("id" in value or "externalId" in value):
        column, key = ("id", value["id"]) if "id" in value else ("externalid", value["externalId"])
    elif isinstance(value, (int, str)) and not isinstance(value, bool):
        column, key = "id", value
    else:
        return _INVALID
    if column == "id":
        if not INTERNAL_ID.match(str(key)):
            return _INVALID
        key = int(key)
    elif not isinstance(key, str):
        return _INVALID
    found = None
    if table is not None:
        try:
            found = connection.execute(
                f'SELECT id FROM "{table}" WHERE "{column}" = ?',  # noqa: S608
                (key,),
            ).fetchone()
        except sqlite3.OperationalError:
            found = None
    if found is None:
        raise RecordError(400, _invalid_detail(key, name), "INVALID_CONTENT", path=path)
    return found[0]


def _check_required(record_type: RecordType, row: dict[str, Any], not_null: frozenset[str]) -> None:
    """Refuse a record that lacks a value NetSuite requires."""
    missing = [column for column in _required(record_type, row) if row.get(column) in (None, "")]
    missing += [column for column in sorted(not_null) if column != "id" and row.get(column) is None]
    missing = [column for column in missing if column not in _stamps(record_type, created=True)]
    if missing:
        labels = ", ".join(_LABELS.get(column, _property_name(column)) for column in dict.fromkeys(missing))
        raise RecordError(400, f"Please enter value(s) for: {labels}.", "USER_ERROR")


def _required(record_type: RecordType, row: dict[str, Any]) -> list[str]:
    if record_type.table == "customer":
        return ["lastname"] if row.get("isperson") == "T" else ["companyname"]
    if record_type.table == "item":
        return ["itemid"]
    if record_type.table == "transaction":
        return ["entity"]
    return []


def _defaults(
    connection: sqlite3.Connection, record_type: RecordType, record_id: int, columns: dict[str, Any]
) -> dict[str, Any]:
    """Return the values NetSuite fills in on create (numbering, flags, type, date)."""
    defaults: dict[str, Any] = {}
    if record_type.discriminator:
        defaults[record_type.discriminator[0]] = record_type.discriminator[1]
    for flag in ("isinactive", "isperson"):
        if flag in record_type.fields:
            defaults[flag] = "F"
    if record_type.table == "customer":
        defaults["entityid"] = f"C{100000 + record_id}"
    if record_type.table == "transaction":
        prefix, status = _TRANSACTION_PREFIXES.get(record_type.discriminator[1], ("T", None))
        defaults.update(tranid=f"{prefix}{10000 + record_id}", status=status, currency=1)
        defaults["trandate"] = datetime.now(ZONE).strftime("%Y-%m-%d 00:00:00")
        if columns.get("entity") is not None:
            row = connection.execute(
                "SELECT currency FROM customer WHERE id = ?", (columns["entity"],)
            ).fetchone()
            defaults["currency"] = (row[0] if row else None) or 1
    return defaults


def _stamps(record_type: RecordType, *, created: bool) -> dict[str, str]:
    now = datetime.now(ZONE).strftime(STAMP)
    names = ("datecreated", "createddate", "lastmodifieddate") if created else ("lastmodifieddate",)
    return {name: now for name in names if name in record_type.fields}


# --- sublists ------------------------------------------------------------------------------------------


def _write_sublists(
    connection: sqlite3.Connection,
    record_type: RecordType,
    record_id: int,
    changes: _Changes,
    replaced: frozenset[str],
) -> None:
    for name, sublist in record_type.sublists.items():
        if name in changes.lines or name in replaced:
            lines = changes.lines.get(name, [])
            _write_lines(connection, sublist, record_id, lines, name in replaced, keyed=is_keyed(name))
        if sublist.table == "transactionline":
            _update_totals(connection, record_id)


def is_keyed(sublist_name: str) -> bool:
    """Tell whether a sublist is keyed (see :data:`SUBLIST_KEYS`); unknown sublists count as keyed."""
    return SUBLIST_KEYS.get(sublist_name, True)


def _write_lines(
    connection: sqlite3.Connection,
    sublist: Sublist,
    record_id: int,
    lines: list[dict[str, Any]],
    replaced: bool,
    *,
    keyed: bool = True,
) -> None:
    """Write a sublist's lines as NetSuite does for keyed and non-keyed sublists.

    Keyed: lines whose ``line`` matches are updated, the others appended; with ``replaced``, old lines no
    line matched are removed. Non-keyed: every line is appended (a ``line`` sent is ignored); with
    ``replaced``, all old lines are removed first.
    """
    table, parent = sublist.table, sublist.parent_column
    existing = {
        row["id"]: dict(row)
        for row in connection.execute(
            f'SELECT * FROM "{table}" WHERE "{parent}" = ? AND mainline = \'F\'',  # noqa: S608
            (record_id,),
        )
    }
    kept: set[int] = set()
    next_line = max([0, *existing]) + 1
    for index, line in enumerate(lines):
        number = line.get("id") if keyed else None
        if number in existing:
            _update_line(connection, table, parent, record_id, {**existing[number], **line}, line)
            kept.add(number)
            continue
        if line.get("item") is None:
            raise RecordError(
                400, "Please enter value(s) for: Item.", "USER_ERROR", path=f"item.items[{index}]"
            )
        _insert_line(connection, table, parent, record_id, next_line, line)
        next_line += 1
    if replaced:
        for number in set(existing) - kept:
            connection.execute(
                f'DELETE FROM "{table}" WHERE "{parent}" = ? AND id = ?',  # noqa: S608
                (record_id, number),
            )


def _line_amount(line: dict[str, Any]) -> Any:
    if line.get("netamount") is not None:
        return line["netamount"]
    if line.get("quantity") is not None and line.get("rate") is not None:
        return round(line["quantity"] * line["rate"], 2)
    return None


def _update_line(
    connection: sqlite3.Connection,
    table: str,
    parent: str,
    record_id: int,
    merged: dict[str, Any],
    changed: dict[str, Any],
) -> None:
    values = {name: value for name, value in changed.items() if name != "id"}
    if "netamount" not in changed and ({"quantity", "rate"} & set(changed)):
        values["netamount"] = _line_amount({**merged, "netamount": None})
    if not values:
        return
    assignments = ", ".join(f'"{name}" = ?' for name in values)
    connection.execute(
        f'UPDATE "{table}" SET {assignments} WHERE "{parent}" = ? AND id = ?',  # noqa: S608
        [*values.values(), record_id, merged["id"]],
    )


def _insert_line(
    connection: sqlite3.Connection, table: str, parent: str, record_id: int, number: int, line: dict[str, Any]
) -> None:
    values = {name: value for name, value in line.items() if name != "id"}
    values.update({parent: record_id, "id": number, "linesequencenumber": number, "mainline": "F"})
    values["netamount"] = _line_amount(line)
    names = ", ".join(f'"{name}"' for name in values)
    marks = ", ".join("?" for _ in values)
    connection.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', list(values.values()))  # noqa: S608


def _update_totals(connection: sqlite3.Connection, record_id: int) -> None:
    """Keep the transaction's total and its main line in step with its item lines."""
    total = connection.execute(
        "SELECT ROUND(COALESCE(SUM(netamount), 0), 2) FROM transactionline "
        "WHERE \"transaction\" = ? AND mainline = 'F'",
        (record_id,),
    ).fetchone()[0]
    connection.execute('UPDATE "transaction" SET foreigntotal = ? WHERE id = ?', (total, record_id))
    updated = connection.execute(
        "UPDATE transactionline SET netamount = ? WHERE \"transaction\" = ? AND mainline = 'T'",
        (total, record_id),
    )
    if updated.rowcount == 0:
        connection.execute(
            'INSERT INTO transactionline ("transaction", id, netamount, linesequencenumber, mainline) '
            "VALUES (?, 0, ?, 0, 'T')",
            (record_id, total),
        )


# --- rendering -----------------------------------------------------------------------------------------


def _property_name(column: str) -> str:
    return _PROPERTY_NAMES.get(column, column)


def _link(href: str, rel: str = "self") -> dict[str, str]:
    return {"rel": rel, "href": href}


def _render(
    connection: sqlite3.Connection, record_type: RecordType, row: dict[str, Any], base_url: str, expand: bool
) -> dict[str, Any]:
    """Render a stored row as the records API does: typed values, ISO-8601 UTC datetimes, links."""
    href = f"{base_url}{RECORD_PATH}/{record_type.name}/{row['id']}"
    body: dict[str, Any] = {"links": [_link(href)], "id": str(row["id"])}
    for column, value in row.items():
        field_type = record_type.field_type(column)
        if value is None or field_type is None or column == "id" or _hidden(record_type, column):
            continue
        reference = record_type.references.get(column)
        body[_property_name(column)] = _render_value(field_type, value, reference, base_url)
    for name, sublist in record_type.sublists.items():
        body[name] = _render_sublist(connection, sublist, row["id"], f"{href}/{name}", base_url, expand)
    return body


def _render_value(field_type: str, value: Any, reference: str | None, base_url: str) -> Any:
    if field_type == "select":
        link = _link(f"{base_url}{RECORD_PATH}/{reference or 'record'}/{value}")
        return {"links": [link], "id": str(value)}
    if field_type == "integer":
        return int(value)
    if field_type == "boolean":
        return value == "T"
    if field_type == "decimal":
        return value
    if field_type == "date":
        return str(value)[:10]
    if field_type == "datetime":
        local = datetime.strptime(str(value)[:19], STAMP).replace(tzinfo=ZONE)
        return local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _render_sublist(
    connection: sqlite3.Connection, sublist: Sublist, record_id: int, href: str, base_url: str, expand: bool
) -> dict[str, Any]:
    if not expand:
        return {"links": [_link(href)]}
    rows = connection.execute(
        f'SELECT * FROM "{sublist.table}" WHERE "{sublist.parent_column}" = ? AND mainline = \'F\' '  # noqa: S608
        "ORDER BY id",
        (record_id,),
    ).fetchall()
    items = []
    for row in rows:
        item: dict[str, Any] = {"links": []}
        for column, name in _LINE_OUTPUT.items():
            if row[column] is not None:
                reference = sublist.references.get(column)
                item[name] = _render_value(sublist.fields[column], row[column], reference, base_url)
        items.append(item)
    count = len(items)
    return {
        "links": [_link(href)],
        "count": count,
        "hasMore": False,
        "items": items,
        "offset": 0,
        "totalResults": count,
    }


# --- wiring into the app -------------------------------------------------------------------------------

_SERVICE_LOCK = threading.Lock()


def record_service(app_state: Any) -> RecordService:
    """Return the app's record service, creating it on first use from ``app_state.emulator``.

    The emulator context supplies the database (``store.db_path``) and the hook that makes SuiteQL
    forget its cached results (``database_changed``). Failures from :data:`FAILURES_ENV` (JSON) and a job
    delay from :data:`JOB_DELAY_ENV` (milliseconds) are applied when the service is created.
    """
    service = getattr(app_state, "record_service", None)
    if service is not None:
        return service
    with _SERVICE_LOCK:
        service = getattr(app_state, "record_service", None)
        if service is None:
            context = app_state.emulator
            delay = float(os.environ.get(JOB_DELAY_ENV, DEFAULT_JOB_DELAY * 1000)) / 1000
            service = RecordService(
                context.store.db_path, on_change=getattr(context, "database_changed", None), job_delay=delay
            )
            spec = os.environ.get(FAILURES_ENV)
            if spec:
                service.failures.configure(json.loads(spec))
            app_state.record_service = service
    return service


def configure_record_failures(app_state: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Apply an admin spec to the record service: failures and, optionally, ``job_delay_ms``.

    :param app_state: the FastAPI ``app.state`` holding ``emulator``.
    :param spec: ``{"permanent": ..., "transient": ..., "job_delay_ms": n}`` (see :class:`RecordFailures`).
    :raises ValueError: naming what is wrong; nothing is changed then.
    :return: the settings now in force.
    """
    if not isinstance(spec, dict):
        raise ValueError("record failures must be an object")
    service = record_service(app_state)
    spec = dict(spec)
    delay = spec.pop("job_delay_ms", None)
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0):
        raise ValueError("job_delay_ms must be a number >= 0")
    service.failures.configure(spec)
    if delay is not None:
        service.jobs.delay = delay / 1000
    return record_settings(app_state)


def record_settings(app_state: Any) -> dict[str, Any]:
    """Return the record service's injected failures and job delay."""
    service = record_service(app_state)
    return {**service.failures.as_dict(), "job_delay_ms": service.jobs.delay * 1000}


# --- HTTP layer ----------------------------------------------------------------------------------------

router = APIRouter()


@router.post(RECORD_PATH + "/{record_type}")
async def create_record(record_type: str, request: Request) -> Response:
    """Create a record (or, with a collection body, a batch of them)."""
    return await _handle(request, "create", record_type, None)


@router.patch(RECORD_PATH + "/{record_type}")
async def update_batch(record_type: str, request: Request) -> Response:
    """Update a batch of records (collection body only)."""
    return await _handle(request, "update", record_type, None)


@router.put(RECORD_PATH + "/{record_type}")
async def upsert_batch(record_type: str, request: Request) -> Response:
    """Upsert a batch of records by external ID (collection body only)."""
    return await _handle(request, "upsert", record_type, None)


@router.get(RECORD_PATH + "/{record_type}")
async def get_batch(record_type: str, request: Request) -> Response:
    """Read a batch of records named by ``?ids=1,2,eid:x`` (async only); one task per ID."""
    return await _handle_ids(request, "get", record_type)


@router.delete(RECORD_PATH + "/{record_type}")
async def delete_batch(record_type: str, request: Request) -> Response:
    """Delete a batch of records named by ``?ids=1,2,eid:x`` (async only); one task per ID."""
    return await _handle_ids(request, "delete", record_type)


@router.get(RECORD_PATH + "/{record_type}/{key}")
async def get_record(record_type: str, key: str, request: Request) -> Response:
    """Read a record by internal ID or ``eid:<externalId>``."""
    return await _handle(request, "get", record_type, key)


@router.patch(RECORD_PATH + "/{record_type}/{key}")
async def update_record(record_type: str, key: str, request: Request) -> Response:
    """Update a record; omitted fields stay unchanged, ``null`` deletes a field."""
    return await _handle(request, "update", record_type, key)


@router.put(RECORD_PATH + "/{record_type}/{key}")
async def upsert_record(record_type: str, key: str, request: Request) -> Response:
    """Create or update a record by ``eid:<externalId>``."""
    return await _handle(request, "upsert", record_type, key)


@router.delete(RECORD_PATH + "/{record_type}/{key}")
async def delete_record(record_type: str, key: str, request: Request) -> Response:
    """Delete a record."""
    return await _handle(request, "delete", record_type, key)


@router.get(JOB_PATH + "/{job_id}")
async def get_job(job_id: str, request: Request) -> Response:
    """Return an async job's state."""
    job = _job(request, job_id)
    if isinstance(job, Response):
        return job
    href = f"{_base_url(request)}{JOB_PATH}/{job.job_id}"
    body = {
        "links": [_link(href)],
        "completed": job.completed,
        "id": job.job_id,
        "progress": job.progress,
        "task": {"links": [_link(f"{href}/task")]},
    }
    return JSONResponse(body)


@router.get(JOB_PATH + "/{job_id}/task")
async def list_tasks(job_id: str, request: Request) -> Response:
    """List an async job's tasks, one per record, in item order."""
    job = _job(request, job_id)
    if isinstance(job, Response):
        return job
    href = f"{_base_url(request)}{JOB_PATH}/{job.job_id}/task"
    items = [{"links": [_link(f"{href}/{task.task_id}")]} for task in job.tasks]
    count = len(items)
    body = {"links": [_link(href)], "count": count, "hasMore": False, "items": items, "offset": 0}
    body["totalResults"] = count
    return JSONResponse(body)


@router.get(JOB_PATH + "/{job_id}/task/{task_id}")
async def get_task(job_id: str, task_id: str, request: Request) -> Response:
    """Return one task's progress and times."""
    task = _task(request, job_id, task_id)
    if isinstance(task, Response):
        return task
    href = f"{_base_url(request)}{JOB_PATH}/{job_id}/task/{task.task_id}"
    body: dict[str, Any] = {
        "links": [_link(f"{href}/result", "related"), _link(href)],
        "completed": task.completed,
        "id": task.task_id,
        "progress": task.progress,
    }
    if task.start_time is not None:
        body["startTime"] = utc_stamp(task.start_time)
    if task.end_time is not None and task.completed:
        body["endTime"] = utc_stamp(task.end_time)
    return JSONResponse(body)


@router.get(JOB_PATH + "/{job_id}/task/{task_id}/result")
async def get_task_result(job_id: str, task_id: str, request: Request) -> Response:
    """Return what the task's operation answered: 204 + Location, a record, or an error body."""
    task = _task(request, job_id, task_id)
    if isinstance(task, Response):
        return task
    if not task.completed:
        return errors.error_response(
            404, "The task has not finished; its result does not exist yet.", "NONEXISTENT_ID"
        )
    if not isinstance(task.result, Outcome):
        return errors.error_response(500, "An unexpected error occurred.", "UNEXPECTED_ERROR")
    return task.result.response()


@router.get(ADMIN_PATH)
async def get_record_settings(request: Request) -> dict[str, Any]:
    """Admin: return the injected record failures and the job delay."""
    return record_settings(request.app.state)


@router.post(ADMIN_PATH)
async def set_record_settings(request: Request) -> Response:
    """Admin: replace the injected record failures (and optionally the job delay)."""
    try:
        spec = json.loads(await request.body() or b"{}")
        return JSONResponse(configure_record_failures(request.app.state, spec))
    except ValueError as error:
        return JSONResponse({"error": str(error)}, status_code=400)


@router.get(WRITES_PATH)
async def get_write_counts(request: Request) -> dict[str, int]:
    """Admin: count write operations per ``<action> <recordType>/<key>`` (``?contains=`` filters)."""
    contains = request.query_params.get("contains", "")
    return record_service(request.app.state).write_counts(contains)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _job(request: Request, job_id: str) -> Job | Response:
    job = record_service(request.app.state).jobs.get(job_id)
    if job is None:
        return errors.error_response(404, NONEXISTENT, "NONEXISTENT_ID", url_path=f"job/{job_id}")
    return job


def _task(request: Request, job_id: str, task_id: str) -> Task | Response:
    job = _job(request, job_id)
    if isinstance(job, Response):
        return job
    task = job.task(task_id)
    if task is None:
        return errors.error_response(
            404, NONEXISTENT, "NONEXISTENT_ID", url_path=f"job/{job_id}/task/{task_id}"
        )
    return task


@dataclass(frozen=True)
class _Preferences:
    respond_async: bool
    parallel: bool


def _preferences(request: Request) -> _Preferences:
    """Read ``Prefer`` (several values, comma-separated or in several headers)."""
    values = ",".join(request.headers.getlist("prefer"))
    tokens = {item.strip().lower().replace(" ", "") for item in values.split(",") if item.strip()}
    return _Preferences("respond-async" in tokens, 'batch-processing="parallel"' in tokens)


async def _handle(request: Request, action: str, record_type: str, key: str | None) -> Response:
    """Check a record request, then run it now or queue it as an async job."""
    try:
        service = record_service(request.app.state)
        operations, batch = await _operations(request, action, record_type, key)
    except RecordError as error:
        return error.outcome().response()
    preferences = _preferences(request)
    if batch and not preferences.respond_async:
        return _batch_needs_async()
    if preferences.respond_async:
        return _submit(request, service, operations, preferences.parallel)
    outcome = await run_in_threadpool(service.run, operations[0])
    return outcome.response()


async def _handle_ids(request: Request, action: str, record_type: str) -> Response:
    """Queue a batch GET or DELETE of the records ``?ids=`` names; without ``ids``, answer 405 as before."""
    value = request.query_params.get("ids")
    if value is None:
        raise StarletteHTTPException(405, headers={"Allow": "POST, PATCH, PUT"})
    try:
        service = record_service(request.app.state)
        base = (await _operations(request, action, record_type, None))[0][0]
        operations = [replace(base, key=key) for key in _batch_ids(value)]
    except RecordError as error:
        return error.outcome().response()
    preferences = _preferences(request)
    if not preferences.respond_async:
        return _batch_needs_async()
    return _submit(request, service, operations, preferences.parallel)


def _batch_ids(value: str) -> list[str]:
    """Split ``ids`` (internal IDs and ``eid:<externalId>``, comma-separated) and check their number."""
    keys = [key.strip() for key in value.split(",")]
    if not keys or any(not key for key in keys):
        raise RecordError(
            400,
            "Invalid query parameter value 'ids'. "
            "Give a comma-separated list of internal IDs or eid:<externalId>.",
            "INVALID_PARAMETER",
            query_param="ids",
        )
    if len(keys) > MAX_BATCH:
        raise RecordError(
            400,
            f"A batch request may contain at most {MAX_BATCH} records; this one has {len(keys)}.",
            "INVALID_PARAMETER",
            query_param="ids",
        )
    return keys


def _batch_needs_async() -> Response:
    return errors.error_response(
        400,
        "Batch requests are processed asynchronously only. Send the Prefer: respond-async header.",
        "INVALID_HEADER",
        header="Prefer",
    )


def _submit(
    request: Request, service: RecordService, operations: list[Operation], parallel: bool
) -> Response:
    """Queue operations as one job; answer 202 with the job's Location."""
    idempotency_key = _idempotency_key(request)
    if idempotency_key == "":
        return errors.error_response(
            400,
            "Invalid header value. X-NetSuite-Idempotency-Key must not be empty.",
            "INVALID_HEADER",
            header="X-NetSuite-Idempotency-Key",
        )
    try:
        job = service.jobs.submit(
            operations,
            service.run_task,
            location_base=JOB_PATH,  # NetSuite's job Location is a path: /services/rest/async/v1/job/<id>
            parallel=parallel,
            idempotency_key=idempotency_key,
        )
    except DuplicateIdempotencyKey as duplicate:
        return errors.error_response(
            400,
            IDEMPOTENCY_DETAIL,
            "IDEMPOTENCY_ERROR",
            title="Conflict",
            type_uri=CONFLICT_TYPE,
            headers={"Location": duplicate.job.location},
        )
    headers = {"Location": job.location, "Preference-Applied": "respond-async"}
    return Response(status_code=202, headers=headers)


def _idempotency_key(request: Request) -> str | None:
    """Return the stripped idempotency key (``""`` when blank), or ``None`` when there is none.

    Any non-empty key is accepted; a UUID is written in lower case so its spellings name one key.
    """
    key = request.headers.get("x-netsuite-idempotency-key")
    if key is None:
        return None
    key = key.strip()
    with contextlib.suppress(ValueError):
        uuid.UUID(key)
        return key.lower()
    return key


async def _operations(
    request: Request, action: str, record_type: str, key: str | None
) -> tuple[list[Operation], bool]:
    """Check the request (type, key, headers, body) and turn it into operations; tell if it is a batch."""
    _record_type(record_type)
    if key is not None:
        _parse_key(key, for_put=action == "upsert")
    base = Operation(
        action,
        record_type,
        key,
        None,
        _base_url(request),
        name_validation=_validation_level(request, "X-NetSuite-PropertyNameValidation", "warning"),
        value_validation=_validation_level(request, "X-NetSuite-PropertyValueValidation", "error"),
        replace=_replace(request, record_type, _selected_fields_flag(request)),
        expand=request.query_params.get("expandSubResources", "").lower() == "true",
        selected_fields=_selected_fields_flag(request),
    )
    if action in ("get", "delete"):
        return [base], False
    content_type = request.headers.get("content-type", "")
    batch = _is_collection(content_type)
    if (batch and key is not None) or (not batch and key is None and action != "create"):
        raise RecordError(
            400,
            MALFORMED,
            "INVALID_REQUEST",
            url_path=f"record/v1/{record_type}" + (f"/{key}" if key else ""),
        )
    if not batch and content_type.split(";")[0].strip().lower() not in JSON_TYPES:
        raise RecordError(
            415,
            "Invalid Content-Type. Use application/json.",
            "INVALID_HEADER",
            header="Content-Type",
        )
    body = _json_object(await request.body())
    if not batch:
        return [replace(base, body=body)], False
    return _batch_operations(base, body), True


def _is_collection(content_type: str) -> bool:
    media, _, parameters = content_type.partition(";")
    if media.strip().lower() != "application/vnd.oracle.resource+json":
        return False
    return "type=collection" in parameters.replace(" ", "").lower()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise RecordError(400, MALFORMED, "INVALID_REQUEST") from error
    if not isinstance(body, dict):
        raise RecordError(400, MALFORMED, "INVALID_REQUEST")
    return body


def _batch_operations(base: Operation, body: dict[str, Any]) -> list[Operation]:
    """Turn ``{"items": [...]}`` into one operation per record (max 100)."""
    items = body.get("items")
    if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
        raise RecordError(400, MALFORMED, "INVALID_REQUEST", path="items")
    if len(items) > MAX_BATCH:
        raise RecordError(
            400,
            f"A batch request may contain at most {MAX_BATCH} records; this one has {len(items)}.",
            "INVALID_CONTENT",
            path="items",
        )
    return [_batch_operation(base, item) for item in items]


def _batch_operation(base: Operation, item: dict[str, Any]) -> Operation:
    if base.action == "create":
        return replace(base, body=item)
    body = dict(item)
    # Neither key is a field to write: a PATCH item's id wins over its externalId, a PUT item's id is
    # ignored (PUT takes externalId only).
    record_id = body.pop("id", None)
    external_id = body.pop("externalId", None)
    if base.action == "update" and record_id is not None:
        return replace(base, key=str(record_id), body=body)
    key = f"eid:{external_id}" if external_id is not None else None
    return replace(base, key=key, body=body)


def _validation_level(request: Request, header: str, default: str) -> str:
    value = request.headers.get(header)
    if value is None:
        return default
    level = value.strip().lower()
    if level not in VALIDATION_LEVELS:
        raise RecordError(
            400,
            f"Invalid header value {value}. Use Ignore, Warning or Error.",
            "INVALID_HEADER",
            header=header,
        )
    return level


def _replace(request: Request, record_type: str, selected_fields: bool) -> frozenset[str]:
    """Read ``?replace=item,...``: sublists of the record type, and body fields with ``selected_fields``."""
    value = request.query_params.get("replace")
    if not value:
        return frozenset()
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    definition = RECORD_TYPES[record_type]
    unknown = sorted(name for name in names if not _replaceable(definition, name, selected_fields))
    if unknown:
        kind = "field or sublist" if selected_fields else "sublist"
        raise RecordError(
            400,
            f"Invalid query parameter value 'replace'. The {record_type} record has no {kind} {unknown[0]}.",
            "INVALID_PARAMETER",
            query_param="replace",
        )
    return names


def _replaceable(record_type: RecordType, name: str, selected_fields: bool) -> bool:
    if name in record_type.sublists:
        return True
    column = name.lower()
    return (
        selected_fields
        and record_type.field_type(name) is not None
        and not _hidden(record_type, column)
        and column not in record_type.read_only
    )


def _selected_fields_flag(request: Request) -> bool:
    """Read ``?replaceSelectedFields=true`` (any other value, or none, is false)."""
    return request.query_params.get("replaceSelectedFields", "").strip().lower() == "true"
