"""SuiteQL extracts: query shaping, paging strategies and the planner that picks one.

NetSuite pages a SuiteQL result with ``limit``/``offset``, refuses offsets at or beyond 100,000 results, and
only pages stably over "a unique and unambiguous sorting order". Every query is therefore wrapped and
ordered by a unique key (``key_columns``). Three strategies fetch the wrapped query:

* :class:`OffsetPaging`: fewer than 100,000 results, pages fetched in parallel (one after another when
  NetSuite leaves out ``totalResults``).
* :class:`KeyRangePartitions`: a single integer key, split into ranges holding about one page each,
  fetched in parallel.
* :class:`KeysetPaging`: any key (text, composite), ``WHERE key > last`` one page after another.

:class:`SuiteQLExtract` picks one in :meth:`SuiteQLExtract._plan` and yields pages in key order, each row
exactly once; anything that would duplicate or skip a row raises instead.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, TypeVar

from airflow_provider_netsuite.core.errors import NetSuiteAPIError, NetSuiteError

RESULT_CAP = 100_000
MAX_PAGE_SIZE = 1000
STRATEGIES = ("auto", "offset", "key_ranges", "keyset")

_T = TypeVar("_T")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$#]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INTEGER = re.compile(r"-?[0-9]+\Z")
# Row-limiting clauses that give a top-level ORDER BY a meaning beyond presentation.
_ROW_LIMITING = {"FETCH", "OFFSET", "LIMIT"}


class SuiteQLExtractError(NetSuiteError):
    """Raise when an extract cannot guarantee each row exactly once (empty page, data changed, bad order)."""


# --------------------------------------------------------------------------------------------------------
# Reading a page: NetSuite documents ``totalResults`` and ``hasMore``, but either may be left out or null.


def page_total(page: dict[str, Any]) -> int | None:
    """Return a page's ``totalResults``; ``None`` when it is missing, null or not a whole number."""
    value = page.get("totalResults")
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def has_more(page: dict[str, Any], default: bool) -> bool:
    """Return a page's ``hasMore``, or ``default`` when it is missing, null or not a boolean."""
    value = page.get("hasMore")
    return value if isinstance(value, bool) else default


# --------------------------------------------------------------------------------------------------------
# Query shaping: plain string functions. The test fake recognises the same functions' output.


def _skip_quoted(query: str, start: int, quote: str) -> int:
    """Return the index just after the literal or quoted identifier opening at ``start``."""
    i = start + 1
    while True:
        j = query.find(quote, i)
        if j < 0:
            raise ValueError(f"SuiteQL query has an unterminated {quote} quote at character {start}")
        if query.startswith(quote * 2, j):  # a doubled quote is an escaped quote
            i = j + 2
            continue
        return j + 1


def _top_level_tokens(query: str) -> tuple[list[tuple[int, str]], list[int]]:
    """Return the top-level words (position, upper case) and ``;`` positions of ``query``.

    String literals, quoted identifiers, comments and anything inside parentheses are skipped.
    """
    words: list[tuple[int, str]] = []
    semicolons: list[int] = []
    depth, i, n = 0, 0, len(query)
    while i < n:
        char = query[i]
        if char in "'\"":
            i = _skip_quoted(query, i, char)
            continue
        if query.startswith("--", i):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if query.startswith("/*", i):
            end = query.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == ";" and depth == 0:
            semicolons.append(i)
        elif char.isalpha() or char == "_":
            match = _WORD.match(query, i)
            if depth == 0:
                words.append((i, match.group().upper()))
            i = match.end()
            continue
        i += 1
    return words, semicolons


def strip_order_by(query: str) -> tuple[str, bool]:
    """Remove a trailing top-level ``ORDER BY`` and ``;`` from a SuiteQL query.

    ``ORDER BY`` inside string literals, quoted identifiers, comments or parentheses (subqueries) is left
    alone, and so is an ``ORDER BY`` followed by a row-limiting clause (``FETCH``/``OFFSET``), whose
    result depends on it.

    :return: the query without the clause, and whether one was removed.
    """
    words, semicolons = _top_level_tokens(query)
    if semicolons:
        if any(position > semicolons[0] for position, _ in words):
            raise ValueError("SuiteQL query holds more than one statement; give a single SELECT")
        query = query[: semicolons[0]]
        words = [(p, w) for p, w in words if p < semicolons[0]]

    for index in range(len(words) - 2, -1, -1):
        if words[index][1] == "ORDER" and words[index + 1][1] == "BY":
            if any(word in _ROW_LIMITING for _, word in words[index + 2 :]):
                return query.rstrip(), False
            return query[: words[index][0]].rstrip(), True
    return query.rstrip(), False


def check_key_columns(key_columns: Sequence[str]) -> tuple[str, ...]:
    """Validate key column names (plain identifiers only, as they are written into the SQL)."""
    keys = tuple(key_columns)
    if not keys:
        raise ValueError("key_columns must name at least one column of a unique key")
    for key in keys:
        if not isinstance(key, str) or not _IDENTIFIER.match(key):
            raise ValueError(f"key_columns: {key!r} is not a plain column name")
    return keys


def order_by_clause(keys: Sequence[str]) -> str:
    """Return ``ORDER BY a, b`` for the key columns."""
    return "ORDER BY " + ", ".join(keys)


def keyset_predicate(keys: Sequence[str]) -> str:
    """Return the predicate "key after the last one seen": ``a > ?`` or ``(a > ?) OR (a = ? AND b > ?)``."""
    if len(keys) == 1:
        return f"{keys[0]} > ?"
    disjuncts = []
    for index, key in enumerate(keys):
        equal = [f"{previous} = ?" for previous in keys[:index]]
        disjuncts.append("(" + " AND ".join([*equal, f"{key} > ?"]) + ")")
    return " OR ".join(disjuncts)


def keyset_params(last_key: Sequence[Any]) -> list[Any]:
    """Return the parameters of :func:`keyset_predicate` for the last key seen."""
    params: list[Any] = []
    for index in range(len(last_key)):
        params.extend(last_key[: index + 1])
    return params


def range_predicate(key: str) -> str:
    """Return the half-open range predicate ``k >= ? AND k < ?``."""
    return f"{key} >= ? AND {key} < ?"


def wrap_query(query: str, keys: Sequence[str], where: str | None = None) -> str:
    """Wrap a query (already without its ORDER BY) so that it is filtered by ``where`` and ordered by keys.

    The closing parenthesis goes on its own line so a trailing ``--`` comment cannot swallow it.
    """
    where_clause = f" WHERE {where}" if where else ""
    # The query is the user's own SuiteQL; the key names are checked identifiers and values are `?` params.
    return f"SELECT * FROM (\n{query}\n){where_clause} {order_by_clause(keys)}"  # noqa: S608


def key_stats_query(query: str, key: str) -> str:
    """Return the query for the lowest and highest key and the row count of a query."""
    return f"SELECT MIN({key}) AS lo, MAX({key}) AS hi, COUNT(*) AS n FROM (\n{query}\n)"  # noqa: S608


# --------------------------------------------------------------------------------------------------------
# Ordered parallel execution.


def ordered_parallel(
    tasks: Iterable[Callable[[], _T]], max_workers: int, window: int, name: str = "suiteql"
) -> Iterator[_T]:
    """Run tasks on a thread pool and yield their results in submission order.

    At most ``window`` tasks are submitted and not yet consumed, so memory stays bounded. When the consumer
    stops iterating or a task fails, the tasks not started are cancelled and the pool is shut down.
    """
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
    pending: deque[Future[_T]] = deque()
    iterator = iter(tasks)
    try:
        for task in iterator:
            pending.append(pool.submit(task))
            if len(pending) >= window:
                break
        while pending:
            result = pending.popleft().result()
            task = next(iterator, None)
            if task is not None:
                pending.append(pool.submit(task))
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------------------------------
# Paging strategies.


@dataclass
class _Extract:
    """What every strategy needs: the client, the query and the paging settings."""

    client: Any
    query: str
    params: list[Any]
    keys: tuple[str, ...]
    page_size: int
    max_concurrency: int
    result_cap: int
    log: logging.Logger
    _lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0

    @property
    def window(self) -> int:
        """Pages fetched or held and not yet yielded: twice the concurrency."""
        return 2 * self.max_concurrency

    @property
    def workers(self) -> int:
        """Threads fetching pages: one per request slot.

        A thread that finishes a request goes straight on to the next one; more threads than slots
        measured slower (0.77 of the ideal instead of 0.86 at 250,000 rows), because every handover of a
        freed slot to a waiting thread waits for the GIL.
        """
        return self.max_concurrency

    def fetch(self, query: str, params: list[Any], offset: int, limit: int | None = None) -> dict[str, Any]:
        with self._lock:
            self.requests += 1
        page = self.client.suiteql_page(
            query, params=params or None, limit=limit or self.page_size, offset=offset
        )
        page.setdefault("items", [])
        # An empty page that itself says more rows follow is never the end, on the first page or any other.
        if not page["items"] and page.get("hasMore") is True:
            raise _empty_page_error(offset, page_total(page))
        return page


def _empty_page_error(offset: int, total: int | None, where: str = "") -> SuiteQLExtractError:
    expected = "hasMore is true" if total is None else f"totalResults is {total}"
    return SuiteQLExtractError(
        f"SuiteQL returned an empty page at offset {offset}{where} while {expected}: rows "
        "are still expected, so the extract stops instead of finishing short"
    )


class PagingStrategy(ABC):
    """Fetch the pages of a wrapped SuiteQL query in key order.

    :param extract: the query, client and paging settings.
    """

    name: ClassVar[str]

    def __init__(self, extract: _Extract) -> None:
        self.extract = extract
        #: Rows the whole extract must produce, when the strategy knows it; checked at the end.
        self.expected_rows: int | None = None

    @abstractmethod
    def pages(self, first_page: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Yield non-empty lists of items in key order, starting from the planner's first page.

        :param first_page: the page at offset 0 of ``SELECT * FROM (<q>) ORDER BY <keys>``.
        """


class OffsetPaging(PagingStrategy):
    """Page ``SELECT * FROM (<q>) ORDER BY <keys>`` by offset, pages after the first in parallel.

    The first page gives the total; offsets 1000, 2000, ... below it are then fetched concurrently and
    yielded in offset order. Only possible below 100,000 results. Page it expects::

        {"links": [...], "count": 1000, "hasMore": true, "offset": 2000, "totalResults": 4321,
         "items": [{"links": [], "id": "2001", "companyname": "Acme"}, ...]}

    Without ``totalResults`` (missing or null) the pages are fetched one after another until ``hasMore`` is
    false (or, without ``hasMore`` too, until a short page). An empty page that says ``hasMore`` is an error,
    the first page included. When the 100,000 offset cap is reached, or the last page by
    ``totalResults`` still says ``hasMore`` (a total capped at 100,000), paging goes on key-ordered after the
    last key, as :class:`KeysetPaging` does.
    """

    name = "offset"

    def pages(self, first_page: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        total = page_total(first_page)
        if total is None:
            yield from self._sequential(first_page)
            return

        ex = self.extract
        if total > ex.result_cap:
            raise ValueError(
                f"Offset paging reaches only {ex.result_cap} results and this query has {total}; use "
                "strategy 'key_ranges' or 'keyset'"
            )
        self.expected_rows = total
        if not first_page["items"]:
            return
        yield first_page["items"]

        last_page = first_page
        query = wrap_query(ex.query, ex.keys)
        offsets = range(ex.page_size, total, ex.page_size)
        tasks = (partial(self._page, query, offset, total) for offset in offsets)
        with closing(ordered_parallel(tasks, ex.workers, ex.window)) as results:
            for last_page in results:
                yield last_page["items"]

        # A full last page at the offset cap is followed by key whatever hasMore says: a total capped at
        # 100,000 cannot tell a table of exactly 100,000 rows from a larger one, one more request can.
        capped = total >= ex.result_cap and len(last_page["items"]) >= ex.page_size
        if capped or has_more(last_page, False):
            if capped:
                self.expected_rows = None  # the total was NetSuite's cap, not the row count
            yield from self._continue_by_key(last_page["items"], (len(offsets) + 1) * ex.page_size)

    def _page(self, query: str, offset: int, total: int) -> dict[str, Any]:
        page = self.extract.fetch(query, self.extract.params, offset)
        seen = page_total(page)
        if seen is not None and seen != total:
            raise SuiteQLExtractError(
                f"totalResults changed from {total} to {seen} at offset {offset}: the data "
                "changed during the extract; rerun it, or narrow it with a time window"
            )
        if not page["items"]:
            raise _empty_page_error(offset, total)
        return page

    def _sequential(self, first_page: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Page by offset one page after another, for pages whose ``totalResults`` is missing or null."""
        ex = self.extract
        query = wrap_query(ex.query, ex.keys)
        page, offset = first_page, 0
        while page["items"]:
            yield page["items"]
            said_more = page.get("hasMore")
            full = len(page["items"]) >= ex.page_size
            offset += ex.page_size
            if full and offset >= ex.result_cap:  # whatever hasMore says, as in pages()
                yield from self._continue_by_key(page["items"], offset)
                return
            if not has_more(page, full):
                return
            page = ex.fetch(query, ex.params, offset)
            if not page["items"] and said_more is True:
                raise SuiteQLExtractError(
                    f"SuiteQL returned an empty page at offset {offset} after the page before it said "
                    "hasMore: rows are still expected, so the extract stops instead of finishing short"
                )

    def _continue_by_key(self, items: list[dict[str, Any]], offset: int) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages after the last item's key, where offset paging cannot go on."""
        self.extract.log.warning(
            "SuiteQL offset paging stops at offset %d with rows possibly left (offsets end at %d, "
            "totalResults may be capped there); continuing ordered by %s after the last key",
            offset,
            self.extract.result_cap,
            ", ".join(self.extract.keys),
        )
        yield from KeysetPaging(self.extract).after(items[-1])


class KeysetPaging(PagingStrategy):
    """Page ``SELECT * FROM (<q>) WHERE <key after last> ORDER BY <keys>`` one page after another.

    Works for any key type and composite keys; sequential, because each page starts after the previous
    page's last key. For keys ``(a, b)`` the predicate is ``(a > ?) OR (a = ? AND b > ?)``. Page it
    expects (``offset`` is always 0)::

        {"count": 1000, "hasMore": true, "offset": 0, "totalResults": 52000,
         "items": [{"links": [], "tranid": "SO-1001", "line": "1", ...}, ...]}
    """

    name = "keyset"

    def pages(self, first_page: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        return self._follow(first_page)

    def after(self, last_item: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages of the rows whose key follows the key of ``last_item``."""
        return self._follow(self._page_after(last_item))

    def _page_after(self, last_item: dict[str, Any]) -> dict[str, Any]:
        ex = self.extract
        query = wrap_query(ex.query, ex.keys, keyset_predicate(ex.keys))
        last_key = [last_item[key.lower()] for key in ex.keys]
        return ex.fetch(query, ex.params + keyset_params(last_key), 0)

    def _follow(self, page: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        ex = self.extract
        while True:
            items = page["items"]
            if not items:
                total = page_total(page)
                if total:
                    raise _empty_page_error(0, total, " of a key-ordered page")
                return
            yield items
            if not has_more(page, len(items) >= ex.page_size):
                return
            page = self._page_after(items[-1])


class KeyRangePartitions(PagingStrategy):
    """Split a single integer key into ranges of about one page each and fetch the ranges in parallel.

    A statistics query gives the bounds and the count::

        {"count": 1, "hasMore": false, "offset": 0, "totalResults": 1,
         "items": [{"links": [], "lo": "1", "hi": "150000", "n": "150000"}]}

    then the planner's first page (the lowest keys) is yielded and each range ``[lo, hi)`` after its last
    key is paged by offset over ``WHERE k >= ? AND k < ?`` until ``hasMore`` is false. A range that still
    holds more than 100,000 results (very skewed keys) is halved until it fits.
    """

    name = "key_ranges"

    def pages(self, first_page: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        ex = self.extract
        key = ex.keys[0]
        stats = ex.fetch(key_stats_query(ex.query, key), ex.params, 0, limit=1)["items"]
        row = stats[0] if stats else {}
        count = int(row.get("n") or 0)
        self.expected_rows = count
        if count == 0:
            return
        low, high = int(row["lo"]), int(row["hi"])
        items = first_page["items"]
        remaining = count
        if items:
            # The planner's first page holds the lowest keys already: the ranges start after its last.
            low, remaining = int(items[-1][key.lower()]) + 1, count - len(items)
            yield items
            if low > high or remaining <= 0:
                return
        width = max(1, math.ceil((high - low + 1) * ex.page_size / remaining))
        ranges = [(start, min(start + width, high + 1)) for start in range(low, high + 1, width)]
        ex.log.info(
            "SuiteQL key ranges: %s from %s to %s, %d rows in %d ranges of width %d",
            key,
            low,
            high,
            count,
            len(ranges),
            width,
        )

        query = wrap_query(ex.query, ex.keys, range_predicate(key))
        tasks = (partial(self._range, query, start, stop) for start, stop in ranges)
        with closing(ordered_parallel(tasks, ex.workers, ex.window)) as results:
            for pages in results:
                yield from pages

    def _range(self, query: str, start: int, stop: int) -> list[list[dict[str, Any]]]:
        ex = self.extract
        pages: list[list[dict[str, Any]]] = []
        offset = 0
        while True:
            page = ex.fetch(query, [*ex.params, str(start), str(stop)], offset)
            total = page_total(page) or 0
            if offset == 0 and total > ex.result_cap and stop - start > 1:
                return self._halves(query, start, stop)
            items = page["items"]
            if not items:
                if offset < total:
                    raise _empty_page_error(offset, total, f" of key range [{start}, {stop})")
                return pages
            pages.append(items)
            offset += ex.page_size
            if not has_more(page, len(items) >= ex.page_size):
                return pages
            if offset >= ex.result_cap:
                # Without totalResults the range's size shows only here: start over in two halves.
                return self._halves(query, start, stop)

    def _halves(self, query: str, start: int, stop: int) -> list[list[dict[str, Any]]]:
        if stop - start <= 1:
            raise SuiteQLExtractError(
                f"Key {start} holds more than {self.extract.result_cap} rows: the key column is not unique; "
                "set key_columns to a unique key"
            )
        middle = (start + stop) // 2
        return self._range(query, start, middle) + self._range(query, middle, stop)


_STRATEGY_CLASSES: dict[str, type[PagingStrategy]] = {
    cls.name: cls for cls in (OffsetPaging, KeysetPaging, KeyRangePartitions)
}


# --------------------------------------------------------------------------------------------------------
# The extract.


@dataclass
class ExtractStats:
    """Counters of one extract: rows and pages yielded, requests sent, retries of the client, time taken."""

    rows: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    strategy: str | None = None


class _KeyOrderCheck:
    """Check that keys strictly increase across page boundaries (first key of a page vs last of previous).

    Integer keys are compared as numbers. Text keys are only checked for repetition, because NetSuite's
    collation may order text differently from Python.
    """

    def __init__(self, keys: Sequence[str], integer: bool) -> None:
        self.names = [key.lower() for key in keys]
        self.integer = integer
        self.last: tuple[Any, ...] | None = None

    def _key(self, item: dict[str, Any]) -> tuple[Any, ...]:
        values = tuple(item.get(name) for name in self.names)
        return tuple(int(v) for v in values) if self.integer else values

    def check(self, items: list[dict[str, Any]]) -> None:
        first = self._key(items[0])
        if self.last is not None:
            bad = first <= self.last if self.integer else first == self.last
            if bad:
                raise SuiteQLExtractError(
                    f"Key {first} follows key {self.last} across a page boundary: paging is not stable "
                    "(is the key unique?) or the data changed during the extract"
                )
        self.last = self._key(items[-1])


class SuiteQLExtract:
    """Extract the whole result of a SuiteQL query, page by page, in key order, each row exactly once.

    The query is wrapped and ordered by ``key_columns``, which must be selected by the query and unique in
    its result; a top-level ``ORDER BY`` of the query is replaced (logged at INFO). The strategy is chosen
    by :meth:`_plan` unless forced.

    :param client: a :class:`~airflow_provider_netsuite.core.client.NetSuiteClient` (or anything with
        ``suiteql_page`` and ``stats``).
    :param query: the SuiteQL query.
    :param params: values for the query's ``?`` placeholders.
    :param key_columns: columns of a unique key of the result (compared lower-case with item keys).
    :param page_size: rows per request, 1 to 1000.
    :param max_concurrency: pages fetched at the same time (the client's governor caps requests too).
    :param strategy: ``auto``, ``offset``, ``key_ranges`` or ``keyset``.
    :param result_cap: results NetSuite pages by offset (100,000 without SuiteAnalytics Connect).
    :param progress_interval: seconds between progress lines at INFO.
    :param logger: logger to use; the module's by default.
    """

    def __init__(
        self,
        client: Any,
        query: str,
        *,
        params: Sequence[Any] | None = None,
        key_columns: Sequence[str] = ("id",),
        page_size: int = MAX_PAGE_SIZE,
        max_concurrency: int = 4,
        strategy: str = "auto",
        result_cap: int = RESULT_CAP,
        progress_interval: float = 5.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.log = logger or logging.getLogger(__name__)
        body, had_order_by = strip_order_by(query)
        self._had_order_by = had_order_by
        self._requested = strategy
        self._progress_interval = progress_interval
        self._extract = _Extract(
            client=client,
            query=body,
            params=list(params or []),
            keys=check_key_columns(key_columns),
            page_size=page_size,
            max_concurrency=max_concurrency,
            result_cap=result_cap,
            log=self.log,
        )
        self._strategy: PagingStrategy | None = None
        self._stats = ExtractStats()

    @property
    def strategy(self) -> str | None:
        """The strategy in use (``offset``, ``key_ranges`` or ``keyset``); ``None`` before paging starts."""
        return self._strategy.name if self._strategy else None

    @property
    def stats(self) -> ExtractStats:
        """Rows, pages, requests, retries and seconds so far."""
        return self._stats

    def _fetch_first_page(self) -> dict[str, Any]:
        ex = self._extract
        try:
            return ex.fetch(wrap_query(ex.query, ex.keys), ex.params, 0)
        except NetSuiteAPIError as error:
            named = str(error).lower()
            if error.status != 400 or not any(key.lower() in named for key in ex.keys):
                raise
            hint = (
                f"{error} -- the query is paged ordered by {', '.join(ex.keys)}: the query must select "
                "these columns, or set key_columns to a unique key it selects"
            )
            raise error.reworded(hint) from error

    def _check_keys_selected(self, items: list[dict[str, Any]]) -> None:
        missing = [key for key in self._extract.keys if key.lower() not in items[0]]
        if missing:
            raise NetSuiteError(
                f"Key column(s) {', '.join(missing)} are not in the SuiteQL result (columns: "
                f"{', '.join(k for k in items[0] if k != 'links')}). Select them in the query, or set "
                "key_columns to a unique key the query selects"
            )

    def _integer_key(self, items: list[dict[str, Any]]) -> bool:
        keys = self._extract.keys
        if len(keys) != 1 or not items:
            return False
        name = keys[0].lower()
        return all(isinstance(v, str) and _INTEGER.match(v) for v in (item.get(name) for item in items))

    def _plan(self) -> tuple[PagingStrategy, dict[str, Any]]:
        """Fetch the first offset page and choose the strategy from its ``totalResults`` and keys."""
        ex = self._extract
        first = self._fetch_first_page()
        items = first["items"]
        # totalResults is documented, but an answer without it (or with null) is paged page after page.
        total = page_total(first)
        if items:
            self._check_keys_selected(items)
        elif total:
            raise _empty_page_error(0, total)

        integer_key = self._integer_key(items)
        name = self._requested
        if name == "auto":
            # A total of exactly the cap may be the cap itself with more rows behind it.
            if total is None or total < ex.result_cap:
                name = "offset"
            else:
                name = "key_ranges" if integer_key else "keyset"
        elif name == "key_ranges" and items and not integer_key:
            raise ValueError("strategy 'key_ranges' needs a single key column with integer values")

        if self._had_order_by:
            self.log.info(
                "The query's own ORDER BY was removed: the output is ordered by the unique key %s, "
                "because a non-unique order cannot be paged without duplicating or skipping rows",
                ", ".join(ex.keys),
            )
        self.log.info(
            "SuiteQL extract plan: strategy %s, totalResults %s, page size %d, concurrency %d, key %s",
            name,
            "not given" if total is None else total,
            ex.page_size,
            ex.max_concurrency,
            ", ".join(ex.keys),
        )
        strategy = _STRATEGY_CLASSES[name](ex)
        self._key_check = _KeyOrderCheck(ex.keys, integer_key)
        return strategy, first

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        """Yield the result's pages (lists of items as NetSuite sends them) in key order.

        For a large extract, iterate inside :func:`~airflow_provider_netsuite.core.heap.frozen_heap`, as
        the operator does, so that full garbage collections do not stall the requests in flight.

        :raises SuiteQLExtractError: on an empty page while rows are expected, a row count different from
            ``totalResults``, or keys out of order across pages.
        """
        started = time.monotonic()
        retries_before = self._client_retries()
        strategy, first = self._plan()
        self._strategy = strategy
        stats = self._stats
        stats.strategy = strategy.name
        next_progress = started + self._progress_interval

        with closing(strategy.pages(first)) as pages:
            for items in pages:
                self._key_check.check(items)
                stats.rows += len(items)
                stats.pages += 1
                now = time.monotonic()
                if now >= next_progress:
                    self._log_progress(now - started, strategy.expected_rows)
                    next_progress = now + self._progress_interval
                yield items

        stats.seconds = time.monotonic() - started
        stats.requests = self._extract.requests
        stats.retries = self._client_retries() - retries_before
        self._check_total(strategy)
        self.log.info(
            "SuiteQL extract done: %d rows, %d pages, %d requests, %d retries, %.1f s, strategy %s",
            stats.rows,
            stats.pages,
            stats.requests,
            stats.retries,
            stats.seconds,
            strategy.name,
        )

    def _client_retries(self) -> int:
        return int(getattr(getattr(self._extract.client, "stats", None), "retries", 0) or 0)

    def _check_total(self, strategy: PagingStrategy) -> None:
        expected = strategy.expected_rows
        if expected is not None and expected != self._stats.rows:
            raise SuiteQLExtractError(
                f"Extracted {self._stats.rows} rows but NetSuite announced {expected}: the data changed "
                "during the extract or paging is unstable; rerun it, or narrow it with a time window"
            )

    def _log_progress(self, elapsed: float, expected: int | None) -> None:
        rows = self._stats.rows
        rate = rows / elapsed if elapsed > 0 else 0.0
        if expected and rate > 0:
            eta = max(expected - rows, 0) / rate
            self.log.info(
                "SuiteQL extract: %d of %d rows, %.0f rows/s, %.1f s elapsed, about %.0f s left",
                rows,
                expected,
                rate,
                elapsed,
                eta,
            )
        else:
            self.log.info("SuiteQL extract: %d rows, %.0f rows/s, %.1f s elapsed", rows, rate, elapsed)
