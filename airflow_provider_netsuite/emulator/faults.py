"""Fault injection: the failures a NetSuite integration meets on a bad day, on demand and reproducible.

Faults are switched on by the ``faults`` setting (``POST /_emulator/config``, the ``--faults`` flag of
``serve`` or the ``NETSUITE_EMULATOR_FAULTS`` environment variable, all JSON), for example::

    {"seed": 7, "rate": 0.3,
     "kinds": {"429": 1, "500": 1, "502": 1, "503": 1, "reset": 1, "truncate": 1, "html": 1, "slow": 1},
     "slow_seconds": 5, "paths": ["/services/rest/query/", "/services/rest/record/"],
     "token_endpoint": false, "max_faults": null, "retry_after": null, "html_status": 503,
     "token_early_expiry_seconds": null,
     "mutate_rows": {"table": "customer", "every": 2, "rows": 3, "mode": "update"}}

``{"fail_next": 3, "kind": "503"}`` is short for ``{"rate": 1.0, "max_faults": 3, "kinds": {"503": 1}}``.
An empty object or ``null`` turns faults off.

Each matching request draws two numbers from one ``random.Random(seed)``, in the order requests reach
the gateway: the first decides whether it fails (below ``rate``), the second which kind (by weight). The
sequence of decisions is therefore fixed by the seed; with several clients at once, the interleaving of
their requests decides which request receives which decision, and that can change from run to run.

What each kind sends:

* ``429``: NetSuite's concurrency-limit body, with ``Retry-After`` when ``retry_after`` (or the
  emulator's own ``retry_after`` setting) is set.
* ``500``: NetSuite's ``UNEXPECTED_ERROR`` body with a random error ID.
* ``502`` / ``503``: an HTML page from a proxy in front of NetSuite (``text/html``).
* ``reset``: status line, headers and half of a JSON body promising more (``Content-Length``), then the
  connection is closed: the client sees an incomplete read.
* ``truncate``: a complete 200 ``application/json`` response whose body stops in the middle of the JSON.
* ``html``: an HTML maintenance page with ``html_status`` (503 by default, 200 is allowed).
* ``slow``: the normal answer, after ``slow_seconds`` spent counted in flight against the concurrency limit.
* ``login``: NetSuite's 401 ``INVALID_LOGIN`` body and ``WWW-Authenticate`` header, as users of other tools
  see the concurrency limit reported under TBA. Not in the default mix: name it in ``kinds``.

Bodies of ``reset`` and ``truncate`` are made up (a SuiteQL-like page), not cut from the real answer.
``token_early_expiry_seconds`` makes access tokens fail with 401 ``INVALID_LOGIN`` that many seconds
after their ``iat``, although ``expires_in`` still says 3600. ``mutate_rows`` changes rows of a table
between SuiteQL page requests, as another user editing records while an extract runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response, StreamingResponse

from airflow_provider_netsuite.emulator import errors
from airflow_provider_netsuite.emulator.auth import TOKEN_PATH
from airflow_provider_netsuite.emulator.dataset import ACCOUNT_TIME_ZONE

if TYPE_CHECKING:
    from starlette.requests import Request

    from airflow_provider_netsuite.emulator.server import EmulatorContext

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "NETSUITE_EMULATOR_FAULTS"
FAULT_KINDS = ("429", "500", "502", "503", "reset", "truncate", "html", "slow")
# Kinds injected only when ``kinds`` names them.
OPT_IN_KINDS = ("login",)
INJECTABLE_KINDS = FAULT_KINDS + OPT_IN_KINDS
# Kinds that make sense on the token endpoint when ``token_endpoint`` is true.
TOKEN_ENDPOINT_KINDS = ("429", "500", "502", "503", "html", "reset")
MUTATION_MODES = ("update", "insert", "delete")
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
STAMP = "%Y-%m-%d %H:%M:%S"
# Columns a row mutation rewrites when none is named, first one present wins.
_MUTABLE_COLUMNS = ("companyname", "displayname", "memo", "email", "name")
_KEYS = frozenset(
    {
        "seed",
        "rate",
        "kinds",
        "kind",
        "fail_next",
        "slow_seconds",
        "paths",
        "token_endpoint",
        "max_faults",
        "retry_after",
        "html_status",
        "token_early_expiry_seconds",
        "mutate_rows",
    }
)


class InjectedConnectionReset(ConnectionResetError):
    """Raised inside a response body to make the server drop the connection mid-response."""


@dataclass(frozen=True)
class RowMutation:
    """Rows of ``table`` changed after every ``every`` SuiteQL page requests, ``rows`` at a time.

    ``mode`` ``update`` bumps ``lastmodifieddate`` and rewrites ``column``; ``insert`` adds copies of
    existing rows under new, higher IDs; ``delete`` removes rows.
    """

    table: str
    every: int = 1
    rows: int = 1
    mode: str = "update"
    column: str | None = None

    @classmethod
    def from_dict(cls, spec: Any) -> RowMutation:
        """Validate ``mutate_rows``.

        :raises ValueError: naming the bad member.
        """
        if not isinstance(spec, dict) or not isinstance(spec.get("table"), str):
            raise ValueError('mutate_rows must be an object like {"table": "customer", "every": 2}')
        unknown = sorted(set(spec) - {"table", "every", "rows", "mode", "column"})
        if unknown:
            raise ValueError(f"unknown mutate_rows member(s): {', '.join(unknown)}")
        if not spec["table"].isidentifier():
            raise ValueError(f"mutate_rows.table {spec['table']!r} is not a table name")
        column = spec.get("column")
        if column is not None and (not isinstance(column, str) or not column.isidentifier()):
            raise ValueError("mutate_rows.column must be a column name")
        mode = spec.get("mode", "update")
        if mode not in MUTATION_MODES:
            raise ValueError(f"mutate_rows.mode must be one of {', '.join(MUTATION_MODES)}")
        return cls(
            table=spec["table"].lower(),
            every=_integer("mutate_rows.every", spec.get("every", 1), minimum=1),
            rows=_integer("mutate_rows.rows", spec.get("rows", 1), minimum=1),
            mode=mode,
            column=column,
        )


@dataclass(frozen=True)
class FaultPlan:
    """A validated fault configuration; see the module docstring for the meaning of each member."""

    seed: int | None = None
    rate: float = 0.0
    kinds: tuple[tuple[str, float], ...] = tuple((kind, 1.0) for kind in FAULT_KINDS)
    slow_seconds: float = 5.0
    paths: tuple[str, ...] | None = None
    token_endpoint: bool = False
    max_faults: int | None = None
    retry_after: int | None = None
    html_status: int = 503
    token_early_expiry_seconds: float | None = None
    mutate_rows: RowMutation | None = None

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FaultPlan:
        """Validate a ``faults`` object; ``fail_next`` is turned into ``rate`` 1 and ``max_faults``.

        :raises ValueError: naming the first bad member.
        """
        if not isinstance(spec, dict):
            raise ValueError("faults must be an object")
        unknown = sorted(set(spec) - _KEYS)
        if unknown:
            raise ValueError(f"unknown faults member(s): {', '.join(unknown)}")
        plan = cls(
            seed=_optional(spec, "seed", lambda value: _integer("seed", value)),
            rate=_fraction("rate", spec.get("rate", 0.0)),
            kinds=_kinds(spec),
            slow_seconds=_number("slow_seconds", spec.get("slow_seconds", 5.0)),
            paths=_optional(spec, "paths", _paths),
            token_endpoint=_boolean("token_endpoint", spec.get("token_endpoint", False)),
            max_faults=_optional(spec, "max_faults", lambda value: _integer("max_faults", value)),
            retry_after=_optional(spec, "retry_after", lambda value: _integer("retry_after", value)),
            html_status=_html_status(spec.get("html_status", 503)),
            token_early_expiry_seconds=_optional(
                spec, "token_early_expiry_seconds", lambda value: _number("token_early_expiry_seconds", value)
            ),
            mutate_rows=_optional(spec, "mutate_rows", RowMutation.from_dict),
        )
        if spec.get("fail_next") is not None:
            count = _integer("fail_next", spec["fail_next"])
            plan = _replace(plan, rate=1.0, max_faults=count)
        return plan

    def as_dict(self) -> dict[str, Any]:
        """Return the plan as the JSON object ``GET /_emulator/config`` shows."""
        document = asdict(self)
        document["kinds"] = dict(self.kinds)
        document["paths"] = list(self.paths) if self.paths is not None else None
        return document

    def applies_to(self, path: str) -> bool:
        """Tell whether requests to a path can be given a fault."""
        if path == TOKEN_PATH:
            return self.token_endpoint
        return self.paths is None or any(path.startswith(prefix) for prefix in self.paths)


def normalize(spec: dict[str, Any] | None) -> dict[str, Any]:
    """Validate a ``faults`` setting and return it in its full form; ``{}`` or ``None`` mean no faults.

    :raises ValueError: naming the first bad member.
    """
    if not spec:
        return {}
    return FaultPlan.from_dict(spec).as_dict()


def _replace(plan: FaultPlan, **changes: Any) -> FaultPlan:
    return FaultPlan(**{**plan.__dict__, **changes})


def _optional(spec: dict[str, Any], name: str, convert: Any) -> Any:
    value = spec.get(name)
    return None if value is None else convert(value)


def _number(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"faults.{name} must be a number")
    if value < minimum:
        raise ValueError(f"faults.{name} must be at least {minimum}")
    return float(value)


def _integer(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"faults.{name} must be an integer >= {minimum}")
    return value


def _fraction(name: str, value: Any) -> float:
    number = _number(name, value)
    if number > 1:
        raise ValueError(f"faults.{name} must be between 0 and 1")
    return number


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"faults.{name} must be true or false")
    return value


def _html_status(value: Any) -> int:
    if value not in (200, 503):
        raise ValueError("faults.html_status must be 200 or 503")
    return value


def _paths(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item[:1] == "/" for item in value):
        raise ValueError("faults.paths must be a list of path prefixes starting with /")
    return tuple(value)


def _kinds(spec: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    if spec.get("kind") is not None:
        weights = {spec["kind"]: 1}
    elif spec.get("kinds") is not None:
        weights = spec["kinds"]
        if isinstance(weights, list):
            weights = dict.fromkeys(weights, 1)
    else:
        return FaultPlan.kinds
    if not isinstance(weights, dict):
        raise ValueError("faults.kinds must map kinds to weights")
    unknown = sorted(str(kind) for kind in set(weights) - set(INJECTABLE_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; use {', '.join(INJECTABLE_KINDS)}")
    kinds = tuple(
        (kind, _number(f"kinds.{kind}", weights[kind])) for kind in INJECTABLE_KINDS if kind in weights
    )
    if not any(weight > 0 for _, weight in kinds):
        raise ValueError("faults.kinds needs at least one positive weight")
    return kinds


class _Run:
    """The moving parts of one fault configuration: its random sequence and its counters."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.injected = 0
        self.suiteql_requests = 0
        self.mutations = 0
        self._random = random.Random(plan.seed)
        self._rows_random = random.Random(f"rows-{plan.seed}" if plan.seed is not None else None)
        self._lock = threading.Lock()

    def draw(self, token_endpoint: bool) -> str | None:
        """Decide whether the next matching request fails and how; ``None`` lets it through."""
        with self._lock:
            if self.plan.max_faults is not None and self.injected >= self.plan.max_faults:
                return None
            chance, pick = self._random.random(), self._random.random()
            if chance >= self.plan.rate:
                return None
            allowed = TOKEN_ENDPOINT_KINDS if token_endpoint else INJECTABLE_KINDS
            kind = _weighted([(name, weight) for name, weight in self.plan.kinds if name in allowed], pick)
            if kind is not None:
                self.injected += 1
            return kind

    def mutation_due(self) -> bool:
        """Count one SuiteQL page request; tell whether rows change before it is answered."""
        mutation = self.plan.mutate_rows
        with self._lock:
            self.suiteql_requests += 1
            due = mutation is not None and self.suiteql_requests > 1
            due = due and (self.suiteql_requests - 1) % mutation.every == 0
            if due:
                self.mutations += 1
            return due

    def row_choices(self, low: int, high: int, count: int) -> list[int]:
        """Pick ``count`` IDs between ``low`` and ``high`` from the seeded sequence of row changes."""
        with self._lock:
            return [self._rows_random.randint(low, high) for _ in range(count)]


def _weighted(weights: list[tuple[str, float]], pick: float) -> str | None:
    total = sum(weight for _, weight in weights)
    if total <= 0:
        return None
    threshold = pick * total
    for name, weight in weights:
        threshold -= weight
        if threshold < 0:
            return name
    return weights[-1][0]


class FaultInjector:
    """The emulator's fault hook: answers a request with a fault, or returns ``None`` to let it through.

    :param context: the running emulator (settings, tokens, governor, database).
    """

    def __init__(self, context: EmulatorContext) -> None:
        self.context = context
        self._source: dict[str, Any] | None = None
        self._run: _Run | None = None
        self._lock = threading.Lock()
        _quiet_injected_resets()

    async def __call__(self, request: Request, faults: dict[str, Any]) -> Response | None:
        """Return the fault to send for this request, or ``None`` to answer it normally."""
        run = self._current(faults)
        path = request.url.path
        if path != TOKEN_PATH:
            expired = self._expired_token(request, run.plan)
            if expired is not None:
                return expired
            if path == SUITEQL_PATH and run.mutation_due():
                await run_in_threadpool(self._mutate, run)
        if not run.plan.applies_to(path):
            return None
        kind = run.draw(token_endpoint=path == TOKEN_PATH)
        if kind is None:
            return None
        self.context.governor.stats.faults_injected[kind] += 1
        log.debug("Injecting fault %s into %s %s", kind, request.method, path)
        if kind == "slow":
            return await self._slow(path, run.plan.slow_seconds)
        return self._answer(kind, request, run.plan)

    def _current(self, faults: dict[str, Any]) -> _Run:
        """Return the state of the fault configuration in force, starting afresh when it was replaced."""
        with self._lock:
            if self._run is None or faults is not self._source:
                plan = FaultPlan.from_dict(faults)
                self._run, self._source = _Run(plan), faults
                log.info("Fault injection on: %s", plan.as_dict())
            return self._run

    def _expired_token(self, request: Request, plan: FaultPlan) -> Response | None:
        """Refuse a bearer token older than ``token_early_expiry_seconds`` with NetSuite's 401."""
        limit = plan.token_early_expiry_seconds
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if limit is None or scheme.lower() != "bearer":
            return None
        # The mint time to the sub-second: the token's own iat is whole seconds, which would make a token
        # minted late in a second look up to a second older than it is.
        issued_at = self.context.tokens.issued_at(token.strip())
        if issued_at is None or time.time() - issued_at < limit:
            return None
        self.context.governor.stats.faults_injected["token_early_expiry"] += 1
        self.context.record_login("oauth2", "AccessTokenExpired", request.url.path)
        return errors.invalid_login_response(self.context.account_id)

    async def _slow(self, path: str, seconds: float) -> Response | None:
        """Wait ``seconds`` while counted in flight, then let the request be answered normally."""
        if path == TOKEN_PATH:
            await asyncio.sleep(seconds)
            return None
        async with self.context.governor.slot() as admitted:
            if not admitted:
                return errors.concurrency_limit_response(self.context.config.retry_after)
            await asyncio.sleep(seconds)
        return None

    def _answer(self, kind: str, request: Request, plan: FaultPlan) -> Response:
        if kind == "429":
            retry_after = self.context.config.retry_after if plan.retry_after is None else plan.retry_after
            return errors.concurrency_limit_response(retry_after)
        if kind == "500":
            return unexpected_error_response()
        if kind in ("502", "503"):
            return proxy_error_response(int(kind))
        if kind == "login":
            return errors.invalid_login_response(self.context.account_id)
        if kind == "html":
            return maintenance_page_response(plan.html_status)
        body = _page_body(str(request.url))
        if kind == "truncate":
            return Response(body[: len(body) * 3 // 5], media_type="application/json")
        return connection_reset_response(body)

    def _mutate(self, run: _Run) -> None:
        mutation = run.plan.mutate_rows
        try:
            changed = mutate_rows(str(self.context.store.db_path), mutation, run)
        except sqlite3.Error as error:
            log.warning("Could not change rows of %s: %s", mutation.table, error)
            return
        self.context.governor.stats.faults_injected["mutate_rows"] += 1
        log.info("Changed %d row(s) of %s (%s) between SuiteQL pages", changed, mutation.table, mutation.mode)


def unexpected_error_response() -> Response:
    """Return NetSuite's 500 ``UNEXPECTED_ERROR`` with a fresh error ID."""
    detail = f"An unexpected error occurred. Error ID: {uuid.uuid4().hex[:20]}"
    return errors.error_response(500, detail, "UNEXPECTED_ERROR")


def proxy_error_response(status: int) -> Response:
    """Return the HTML page a proxy in front of NetSuite sends for a 502 or 503."""
    if status == 503:
        page = (
            "<html><body><h1>503 Service Unavailable</h1>\n"
            "<p>No server is available to handle this request.</p>\n</body></html>\n"
        )
    else:
        page = (
            "<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1>\n"
            "<p>The upstream server sent an invalid response.</p>\n<hr><address>edge proxy</address>\n"
            "</body></html>\n"
        )
    return HTMLResponse(page, status_code=status)


def maintenance_page_response(status: int = 503) -> Response:
    """Return an HTML maintenance page in place of JSON, with status 503 (or 200 when asked)."""
    page = (
        "<!DOCTYPE html>\n<html><head><title>Scheduled Maintenance</title></head>\n<body>\n"
        "<h1>This account is temporarily unavailable</h1>\n"
        "<p>Scheduled maintenance is in progress. Please try again in a few minutes.</p>\n</body></html>\n"
    )
    headers = {"Retry-After": "60"} if status == 503 else None
    return HTMLResponse(page, status_code=status, headers=headers)


def connection_reset_response(body: bytes) -> Response:
    """Return a 200 that promises ``body`` but sends half of it, then drops the connection."""

    async def chunks() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        # Let the first half leave the socket buffer before the connection is closed.
        await asyncio.sleep(0.05)
        raise InjectedConnectionReset("connection dropped by the emulator's fault injection")

    return StreamingResponse(
        chunks(), media_type="application/json", headers={"Content-Length": str(len(body))}
    )


def _page_body(url: str) -> bytes:
    """Make up a SuiteQL-like page: the body that ``reset`` and ``truncate`` cut short."""
    items = ",".join(
        f'{{"links":[],"id":"{number}","companyname":"Customer {number}","isinactive":"F"}}'
        for number in range(1, 21)
    )
    text = (
        f'{{"links":[{{"rel":"self","href":"{url}"}}],"count":20,"hasMore":true,"offset":0,'
        f'"totalResults":40,"items":[{items}]}}'
    )
    return text.encode()


def mutate_rows(db_path: str, mutation: RowMutation, run: _Run) -> int:
    """Change rows of a table through a connection of its own; return how many rows changed.

    The SuiteQL engine sees the commit through SQLite's ``data_version`` and drops its cached
    ``totalResults``.
    """
    connection = sqlite3.connect(db_path, timeout=30)
    try:
        columns = [row[1].lower() for row in connection.execute(f'PRAGMA table_info("{mutation.table}")')]
        if "id" not in columns:
            raise sqlite3.OperationalError(f"table {mutation.table} has no id column")
        bounds_sql = f'SELECT min(id), max(id) FROM "{mutation.table}"'  # noqa: S608 - checked identifier
        low, high = connection.execute(bounds_sql).fetchone()
        if high is None:
            return 0
        now = datetime.now(ZoneInfo(ACCOUNT_TIME_ZONE)).strftime(STAMP)
        with connection:
            if mutation.mode == "insert":
                return _insert_rows(connection, mutation, run, columns, (low, high), now)
            ids = _existing_ids(connection, mutation.table, run.row_choices(low, high, mutation.rows))
            if mutation.mode == "delete":
                delete_sql = f'DELETE FROM "{mutation.table}" WHERE id = ?'  # noqa: S608 - checked identifier
                connection.executemany(delete_sql, [(row_id,) for row_id in ids])
            else:
                _update_rows(connection, mutation, run.mutations, columns, ids, now)
            return len(ids)
    finally:
        connection.close()


def _existing_ids(connection: sqlite3.Connection, table: str, picks: list[int]) -> list[int]:
    """Map picked numbers to IDs that exist (the next one up), without duplicates."""
    found: list[int] = []
    for pick in picks:
        sql = f'SELECT min(id) FROM "{table}" WHERE id >= ?'  # noqa: S608 - checked identifier
        row = connection.execute(sql, (pick,)).fetchone()
        if row[0] is not None and row[0] not in found:
            found.append(row[0])
    return found


def _update_rows(
    connection: sqlite3.Connection,
    mutation: RowMutation,
    generation: int,
    columns: list[str],
    ids: list[int],
    now: str,
) -> None:
    column = mutation.column or next((name for name in _MUTABLE_COLUMNS if name in columns), None)
    assignments, values = [], []
    if "lastmodifieddate" in columns:
        assignments.append("lastmodifieddate = ?")
        values.append(now)
    if column is not None:
        assignments.append(f'"{column}" = ?')
        values.append(f"Changed during extract ({generation})")
    if assignments:
        sql = f'UPDATE "{mutation.table}" SET {", ".join(assignments)} WHERE id = ?'  # noqa: S608
        connection.executemany(sql, [(*values, row_id) for row_id in ids])


def _insert_rows(
    connection: sqlite3.Connection,
    mutation: RowMutation,
    run: _Run,
    columns: list[str],
    bounds: tuple[int, int],
    now: str,
) -> int:
    """Add copies of existing rows under IDs above the highest one; external IDs are left empty."""
    stamped = {"datecreated", "createddate", "lastmodifieddate"}
    described = connection.execute(f'PRAGMA table_info("{mutation.table}")').fetchall()
    primary = [row[1].lower() for row in described if row[5]]
    sources = _existing_ids(connection, mutation.table, run.row_choices(*bounds, mutation.rows))
    for offset, source in enumerate(sources, start=1):
        expressions, values = [], []
        for column in columns:
            if column == "id":
                expressions.append("?")
                values.append(bounds[1] + offset)
            elif column == "externalid" or (column in primary and column != "id"):
                expressions.append("NULL")
            elif column in stamped:
                expressions.append("?")
                values.append(now)
            else:
                expressions.append(f'"{column}"')
        names = ", ".join(f'"{column}"' for column in columns)
        selected = ", ".join(expressions)
        table = f'"{mutation.table}"'
        sql = f"INSERT INTO {table} ({names}) SELECT {selected} FROM {table} WHERE id = ?"  # noqa: S608
        connection.execute(sql, (*values, source))
    return len(sources)


class _DropInjectedResets(logging.Filter):
    """Keep the server's error log free of the tracebacks that injected resets cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not _is_injected_reset(error)


def _is_injected_reset(error: BaseException | None, depth: int = 0) -> bool:
    if error is None or depth > 10:
        return False
    if isinstance(error, InjectedConnectionReset):
        return True
    # An exception group (raised by task groups in the server) carries its members in ``exceptions``.
    members = getattr(error, "exceptions", None)
    if isinstance(members, (list, tuple)):
        return any(_is_injected_reset(item, depth + 1) for item in members)
    return _is_injected_reset(error.__cause__ or error.__context__, depth + 1)


def _quiet_injected_resets() -> None:
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(item, _DropInjectedResets) for item in server_log.filters):
        server_log.addFilter(_DropInjectedResets())
