"""An in-memory stand-in for ``NetSuiteClient.suiteql_page``, for unit tests of the SuiteQL engine.

It understands only what :mod:`airflow_provider_netsuite.core.suiteql` generates (it recognises the
wrapper, the key predicate and the statistics query by rebuilding them with the same functions) and it
enforces NetSuite's paging rules: ``limit`` 1..1000, ``offset`` divisible by ``limit``, offsets below
100,000. An order that is not unique shuffles tied rows on every request, as NetSuite does.

Like ``NetSuiteClient``, it can hold a :class:`ConcurrencyGovernor` slot only around the "HTTP request"
and parse the JSON after releasing it, and it can leave out page fields or cap ``totalResults``, as a
stricter or older NetSuite might.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from airflow_provider_netsuite.core import suiteql
from airflow_provider_netsuite.core.errors import NetSuiteAPIError
from airflow_provider_netsuite.core.governor import ConcurrencyGovernor

_WRAPPED = re.compile(
    r"SELECT \* FROM \(\n(?P<inner>.*)\n\)(?: WHERE (?P<where>.*))? ORDER BY (?P<order>[\w, ]+)", re.DOTALL
)
_STATS = re.compile(
    r"SELECT MIN\((?P<key>\w+)\) AS lo, MAX\((?P=key)\) AS hi, COUNT\(\*\) AS n FROM \(\n"
    r"(?P<inner>.*)\n\)",
    re.DOTALL,
)
_INNER_ORDER = re.compile(r"ORDER BY (?P<order>[\w, ]+?)\s*;?\s*\Z", re.IGNORECASE)
_INTEGER = re.compile(r"-?[0-9]+\Z")


@dataclass
class FakeStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    max_in_flight: int = 0


def invalid_parameter(detail: str, param: str) -> NetSuiteAPIError:
    return NetSuiteAPIError(
        f"NetSuite answered 400 [INVALID_PARAMETER] {detail}",
        status=400,
        code="INVALID_PARAMETER",
        detail=detail,
        details=[{"detail": detail, "o:errorCode": "INVALID_PARAMETER", "o:errorQueryParam": param}],
    )


def make_rows(count: int, *, start: int = 1, step: int = 1, extra=None) -> list[dict[str, Any]]:
    """Build NetSuite-shaped items: string values, ``links``, lower-case keys."""
    rows = []
    for index in range(count):
        row = {"links": [], "id": str(start + index * step), "companyname": f"Company {index}"}
        if extra:
            row.update(extra(index))
        rows.append(row)
    return rows


class FakeNetSuite:
    """Hold rows in memory and answer SuiteQL pages like NetSuite would.

    :param rows: the result of "the" query, NetSuite-shaped.
    :param unique: column sets that are unique (an ORDER BY covering one of them is stable).
    :param latency: maximum random delay per request, seconds.
    :param throttle_rate: share of requests that "got a 429" the client retried (counted, slept on).
    :param empty_offsets: offsets of the plain/offset query that answer with no items.
    :param json_roundtrip: serialise and parse every page, as the real client does.
    :param on_request: called with (fake, query, params, offset) before each answer.
    :param omit: page fields to leave out of every answer (``totalResults``, ``hasMore``).
    :param total_cap: report ``totalResults`` as at most this (``hasMore`` still tells the truth).
    :param has_more_within_cap: compute ``hasMore`` against the capped total instead, so the page that
        reaches the cap says ``hasMore: false`` with rows left behind it.
    :param max_concurrency: hold a governor slot with this cap around each request, as the client does;
        ``None``: no governor.
    :param parse_latency: seconds spent "parsing" each page after the slot is released.
    """

    def __init__(
        self,
        rows: list[dict[str, Any]],
        *,
        unique: tuple[tuple[str, ...], ...] = (("id",),),
        latency: float = 0.0,
        throttle_rate: float = 0.0,
        empty_offsets: tuple[int, ...] = (),
        json_roundtrip: bool = False,
        result_cap: int = 100_000,
        seed: int = 0,
        on_request=None,
        omit: tuple[str, ...] = (),
        total_cap: int | None = None,
        has_more_within_cap: bool = False,
        max_concurrency: int | None = None,
        parse_latency: float = 0.0,
    ) -> None:
        self.rows = rows
        self.unique = [set(u) for u in unique]
        self.latency = latency
        self.throttle_rate = throttle_rate
        self.empty_offsets = set(empty_offsets)
        self.json_roundtrip = json_roundtrip
        self.result_cap = result_cap
        self.on_request = on_request
        self.omit = set(omit)
        self.total_cap = total_cap
        self.has_more_within_cap = has_more_within_cap
        self.governor = ConcurrencyGovernor(max_concurrency) if max_concurrency else None
        self.parse_latency = parse_latency
        self.threads: set[str] = set()
        self.offsets: list[int] = []
        self.stats = FakeStats()
        self.queries: list[str] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._sorted: dict[tuple[str, ...], tuple[list[tuple], list[dict]]] = {}
        self._int_columns: dict[str, bool] = {}

    def invalidate(self) -> None:
        """Forget cached orderings after ``rows`` changed."""
        with self._lock:
            self._sorted.clear()

    # -- helpers -------------------------------------------------------------------------------------------

    def _is_int(self, column: str) -> bool:
        if column not in self._int_columns:
            values = [row.get(column) for row in self.rows[:1000]]
            self._int_columns[column] = all(v is not None and _INTEGER.match(v) for v in values)
        return self._int_columns[column]

    def _convert(self, column: str, value: Any) -> Any:
        return int(value) if self._is_int(column) else value

    def _row_key(self, row: dict[str, Any], columns: tuple[str, ...]) -> tuple:
        return tuple(self._convert(c, row.get(c)) for c in columns)

    def _ordered(self, columns: tuple[str, ...]) -> tuple[list[tuple], list[dict]]:
        with self._lock:
            if columns not in self._sorted:
                pairs = sorted(((self._row_key(r, columns), r) for r in self.rows), key=lambda p: p[0])
                self._sorted[columns] = ([p[0] for p in pairs], [p[1] for p in pairs])
            return self._sorted[columns]

    def _stable(self, columns: tuple[str, ...]) -> bool:
        return any(u <= set(columns) for u in self.unique)

    # -- the client interface ------------------------------------------------------------------------------

    def suiteql_page(self, query: str, *, params=None, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise invalid_parameter(f"limit must be between 1 and 1000, not {limit}", "limit")
        if offset % limit:
            raise invalid_parameter(f"offset {offset} is not divisible by limit {limit}", "offset")
        if offset >= self.result_cap:
            raise invalid_parameter(f"offset {offset} is beyond the {self.result_cap} result cap", "offset")
        slot = self.governor.slot() if self.governor else contextlib.nullcontext()
        with slot:
            page = self._request(query, list(params or []), limit, offset)
        if self.parse_latency:
            time.sleep(self.parse_latency)
        return json.loads(json.dumps(page)) if self.json_roundtrip else page

    def _request(self, query: str, params: list[Any], limit: int, offset: int) -> dict[str, Any]:
        with self._lock:
            self.stats.requests += 1
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            self.queries.append(query)
            self.offsets.append(offset)
            self.threads.add(threading.current_thread().name)
            throttled = self._random.random() < self.throttle_rate
            delay = self._random.random() * self.latency
        try:
            if throttled:
                with self._lock:
                    self.stats.throttled += 1
                    self.stats.retries += 1
                time.sleep(0.001)
            if delay:
                time.sleep(delay)
            if self.on_request:
                self.on_request(self, query, params, offset)
            return self._answer(query, params, limit, offset)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, query: str, params: list[Any], limit: int, offset: int) -> dict[str, Any]:
        stats = _STATS.fullmatch(query)
        if stats:
            return self._stats_page(stats.group("key"))

        wrapped = _WRAPPED.fullmatch(query)
        if wrapped:
            order = tuple(c.strip().lower() for c in wrapped.group("order").split(","))
            where = wrapped.group("where")
        else:
            inner = _INNER_ORDER.search(query)
            order = tuple(c.strip().lower() for c in inner.group("order").split(",")) if inner else ("id",)
            where = None
        missing = [c for c in order if self.rows and c not in self.rows[0]]
        if missing:
            detail = f"Search error occurred: Unknown identifier '{missing[0]}'."
            raise invalid_parameter(
                f"Invalid search query. Detailed unprocessed description follows. {detail}", "q"
            )

        keys, rows = self._ordered(order)
        if not self._stable(order):
            rows = self._shuffle_ties(keys, rows)
        low, high = self._bounds(order, where, params, keys)
        selected_total = high - low
        start = low + offset
        items = (
            [] if offset in self.empty_offsets and where is None else rows[start : min(start + limit, high)]
        )
        return self._page(items, offset, selected_total)

    def _bounds(self, order: tuple[str, ...], where: str | None, params: list[Any], keys: list[tuple]):
        if where is None:
            return 0, len(keys)
        if where == suiteql.keyset_predicate(order):
            last = tuple(self._convert(c, v) for c, v in zip(order, params[-len(order) :], strict=False))
            return bisect.bisect_right(keys, last), len(keys)
        if len(order) == 1 and where == suiteql.range_predicate(order[0]):
            low, high = (self._convert(order[0], v) for v in params[-2:])
            return bisect.bisect_left(keys, (low,)), bisect.bisect_left(keys, (high,))
        raise NotImplementedError(f"the fake does not understand WHERE {where}")

    def _shuffle_ties(self, keys: list[tuple], rows: list[dict]) -> list[dict]:
        shuffled: list[dict] = []
        start = 0
        for index in range(1, len(keys) + 1):
            if index == len(keys) or keys[index] != keys[start]:
                group = rows[start:index]
                if len(group) > 1:
                    group = group[:]
                    with self._lock:
                        self._random.shuffle(group)
                shuffled.extend(group)
                start = index
        return shuffled

    def _stats_page(self, key: str) -> dict[str, Any]:
        values = [self._convert(key, r[key]) for r in self.rows if r.get(key) is not None]
        item: dict[str, Any] = {"links": [], "n": str(len(values))}
        if values:
            item["lo"], item["hi"] = str(min(values)), str(max(values))
        return self._page([item], 0, 1)

    def _page(self, items: list[dict], offset: int, total: int) -> dict[str, Any]:
        reported = total if self.total_cap is None else min(total, self.total_cap)
        page = {
            "links": [],
            "count": len(items),
            "hasMore": offset + len(items) < (reported if self.has_more_within_cap else total),
            "offset": offset,
            "totalResults": reported,
            "items": items,
        }
        for name in self.omit:
            page.pop(name, None)
        return page
