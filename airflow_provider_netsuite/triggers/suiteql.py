"""Trigger that waits in the triggerer, not on a worker, until a SuiteQL condition holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_netsuite.core.suiteql import MAX_PAGE_SIZE, RESULT_CAP, has_more, page_total


@dataclass(frozen=True)
class SuiteQLCondition:
    """A SuiteQL condition checked with a cheap request (``limit=1``).

    Without ``count_column`` the condition is "the query has at least ``min_rows`` results", read from the
    page's ``totalResults``. When NetSuite leaves ``totalResults`` out (or sends null), the rows themselves
    are counted: pages of ``min(min_rows, 1000)`` rows are fetched until ``min_rows`` rows were seen or the
    result ends. With ``count_column`` the query should return one row, such as
    ``SELECT COUNT(*) AS n FROM ...``, and the condition is "its value is at least ``threshold``". The page
    read in both cases::

        {"count": 1, "hasMore": false, "offset": 0, "totalResults": 1, "items": [{"links": [], "n": "42"}]}

    :param query: the SuiteQL query.
    :param params: values for its ``?`` placeholders.
    :param min_rows: results needed (row mode).
    :param count_column: the column holding the value (count mode); matched case-insensitively.
    :param threshold: the value needed (count mode).
    """

    query: str
    params: tuple[Any, ...] = ()
    min_rows: int = 1
    count_column: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.count_column and self.threshold is None:
            raise ValueError("threshold is required with count_column")
        if not self.count_column and self.min_rows < 1:
            raise ValueError("min_rows must be at least 1")

    def check(self, client: Any) -> tuple[bool, int | float]:
        """Run the query's first page and return whether the condition holds, and the value seen.

        :param client: a :class:`~airflow_provider_netsuite.core.client.NetSuiteClient`.
        """
        page = client.suiteql_page(self.query, params=list(self.params) or None, limit=1)
        if not self.count_column:
            rows = page_total(page)
            if rows is None:
                rows = self._count_rows(client, page)
            return rows >= self.min_rows, rows
        value = self._count_value(page.get("items") or [])
        return value >= self.threshold, value

    def _count_rows(self, client: Any, first: dict[str, Any]) -> int:
        """Count the result's rows, up to ``min_rows``, for a page that gave no ``totalResults``."""
        items = first.get("items") or []
        if self.min_rows <= 1 or not items or not has_more(first, True):
            return len(items)
        limit = min(self.min_rows, MAX_PAGE_SIZE)
        rows, offset = 0, 0
        while rows < self.min_rows and offset < RESULT_CAP:
            page = client.suiteql_page(
                self.query, params=list(self.params) or None, limit=limit, offset=offset
            )
            items = page.get("items") or []
            rows += len(items)
            offset += limit
            if len(items) < limit or not has_more(page, True):
                break
        return rows

    def _count_value(self, items: list[dict[str, Any]]) -> int | float:
        if not items:
            return 0  # an aggregate over a grouped, empty result: nothing counted yet
        name = self.count_column.lower()
        row = {key.lower(): value for key, value in items[0].items()}
        if name not in row:
            columns = ", ".join(key for key in row if key != "links")
            raise ValueError(f"count_column {self.count_column!r} is not in the result (columns: {columns})")
        raw = row[name]
        try:
            number = Decimal(str(raw if raw is not None else 0))
        except InvalidOperation:
            raise ValueError(f"count_column {self.count_column!r} holds {raw!r}, not a number") from None
        return int(number) if number == number.to_integral_value() else float(number)


class NetSuiteSuiteQLTrigger(BaseTrigger):
    """
    Check a SuiteQL condition every ``poke_interval`` seconds in the triggerer until it holds.

    Each check runs the blocking hook call in a thread, so the triggerer's event loop is never blocked.
    Fires ``{"status": "success", "rows": n}`` (``n`` is the result count or the count column's value),
    ``{"status": "timeout", ...}`` once ``deadline`` has passed, or ``{"status": "error", "message": ...}``.
    Its serialized form holds the connection ID and the query, never a credential.

    :param query: the rendered SuiteQL query.
    :param query_params: values for its ``?`` placeholders (JSON-safe).
    :param min_rows: results needed (row mode).
    :param count_column: the column holding the value (count mode).
    :param threshold: the value needed (count mode).
    :param poke_interval: seconds between checks.
    :param deadline: Unix time after which the trigger gives up; ``None`` waits forever.
    :param netsuite_conn_id: the NetSuite connection, read inside the triggerer.
    :param max_concurrency: requests in flight for the hook.
    """

    def __init__(
        self,
        *,
        query: str,
        query_params: Sequence[Any] | None = None,
        min_rows: int = 1,
        count_column: str | None = None,
        threshold: float | None = None,
        poke_interval: float = 60.0,
        deadline: float | None = None,
        netsuite_conn_id: str = "netsuite_default",
        max_concurrency: int = 1,
    ) -> None:
        super().__init__()
        self.condition = SuiteQLCondition(
            query=query,
            params=tuple(query_params or ()),
            min_rows=min_rows,
            count_column=count_column,
            threshold=threshold,
        )
        self.poke_interval = float(poke_interval)
        self.deadline = deadline
        self.netsuite_conn_id = netsuite_conn_id
        self.max_concurrency = max_concurrency

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the import path and the JSON-safe arguments that re-create this trigger."""
        condition = self.condition
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "query": condition.query,
                "query_params": list(condition.params),
                "min_rows": condition.min_rows,
                "count_column": condition.count_column,
                "threshold": condition.threshold,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "netsuite_conn_id": self.netsuite_conn_id,
                "max_concurrency": self.max_concurrency,
            },
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetSuiteSuiteQLTrigger) and self.serialize() == other.serialize()

    __hash__ = None  # type: ignore[assignment]

    def _check(self) -> tuple[bool, int | float]:
        from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

        hook = NetSuiteHook(netsuite_conn_id=self.netsuite_conn_id, max_concurrency=self.max_concurrency)
        with hook.get_conn() as client:
            return self.condition.check(client)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, sleep, check again until the condition holds, the deadline passes or a check fails."""
        checks = 0
        while True:
            try:
                met, value = await asyncio.to_thread(self._check)
            except Exception as error:  # the task reports it; the triggerer must keep running
                self.log.warning("SuiteQL condition check failed: %s", error)
                yield TriggerEvent({"status": "error", "message": f"{type(error).__name__}: {error}"})
                return
            checks += 1
            if met:
                self.log.info("SuiteQL condition holds after %d checks: value %s", checks, value)
                yield TriggerEvent({"status": "success", "rows": value})
                return
            wait = self.poke_interval
            if self.deadline is not None:
                if time.time() >= self.deadline:
                    message = f"condition not met after {checks} checks"
                    yield TriggerEvent({"status": "timeout", "rows": value, "message": message})
                    return
                wait = min(wait, max(0.0, self.deadline - time.time()))
            self.log.info("SuiteQL condition not met (value %s); next check in %.1f s", value, wait)
            await asyncio.sleep(wait)
