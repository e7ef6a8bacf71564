"""Sensor that waits until a SuiteQL query returns rows, or a count it returns reaches a threshold."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from airflow_provider_netsuite.triggers.suiteql import NetSuiteSuiteQLTrigger, SuiteQLCondition

if TYPE_CHECKING:
    from airflow.sdk import Context


class NetSuiteSuiteQLSensor(BaseSensorOperator):
    """
    Wait until a SuiteQL query returns at least ``min_rows`` results, or a count column reaches a threshold.

    Each check asks SuiteQL for one row (``limit=1``). In row mode the sensor reads the page's
    ``totalResults``; when NetSuite leaves it out or sends null, it counts rows instead, asking for
    ``min(min_rows, 1000)`` rows a page until ``min_rows`` are seen. In count mode (``count_column`` set) it
    reads that column of the first row, so a ``SELECT COUNT(*) AS n FROM ...`` query waits until
    ``n >= threshold``. The value seen last is returned (XCom).

    With ``deferrable=True`` the sensor checks once and, if the condition does not hold yet, hands the
    waiting to :class:`~airflow_provider_netsuite.triggers.suiteql.NetSuiteSuiteQLTrigger` in the
    triggerer, so no worker slot is held while it waits. ``poke_interval`` and ``timeout`` apply in both
    modes.

    :param query: The SuiteQL query, or a ``.sql`` file (templated).
    :param query_params: Values for the query's ``?`` placeholders (templated); keep them JSON-safe
        (strings, numbers) for deferrable mode.
    :param min_rows: Results needed (row mode).
    :param count_column: The column of the first row to compare with ``threshold`` (count mode).
    :param threshold: The value ``count_column`` must reach (count mode).
    :param deferrable: Wait in the triggerer instead of on a worker.
    :param netsuite_conn_id: The NetSuite connection (templated).
    """

    template_fields: Sequence[str] = ("netsuite_conn_id", "query", "query_params")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"query": "sql"}
    ui_color = "#f0eee4"

    def __init__(
        self,
        *,
        query: str,
        query_params: Sequence[Any] | None = None,
        min_rows: int = 1,
        count_column: str | None = None,
        threshold: float | None = None,
        deferrable: bool = False,
        netsuite_conn_id: str = "netsuite_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        SuiteQLCondition(query="-", min_rows=min_rows, count_column=count_column, threshold=threshold)
        self.query = query
        self.query_params = query_params
        self.min_rows = min_rows
        self.count_column = count_column
        self.threshold = threshold
        self.deferrable = deferrable
        self.netsuite_conn_id = netsuite_conn_id

    def _condition(self) -> SuiteQLCondition:
        return SuiteQLCondition(
            query=self.query,
            params=tuple(self.query_params or ()),
            min_rows=self.min_rows,
            count_column=self.count_column,
            threshold=self.threshold,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        """Check the condition once; the value seen goes to XCom when it holds."""
        from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

        hook = NetSuiteHook(netsuite_conn_id=self.netsuite_conn_id, max_concurrency=1)
        with hook.get_conn() as client:
            met, value = self._condition().check(client)
        target = (
            f"{self.count_column} >= {self.threshold}" if self.count_column else f">= {self.min_rows} rows"
        )
        self.log.info("SuiteQL condition %s: value %s, %s", target, value, "met" if met else "not met yet")
        return PokeReturnValue(is_done=met, xcom_value=value)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(trigger=self._trigger(), method_name="execute_complete")
        return None

    def _trigger(self) -> NetSuiteSuiteQLTrigger:
        return NetSuiteSuiteQLTrigger(
            query=self.query,
            query_params=list(self.query_params or ()),
            min_rows=self.min_rows,
            count_column=self.count_column,
            threshold=self.threshold,
            poke_interval=self.poke_interval,
            deadline=time.time() + self.timeout if self.timeout else None,
            netsuite_conn_id=self.netsuite_conn_id,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the value seen, or fail (or skip) as the event says."""
        event = event or {"status": "error", "message": "the trigger sent no event"}
        status = event.get("status")
        if status == "success":
            self.log.info("SuiteQL condition met in the triggerer: value %s", event.get("rows"))
            return event.get("rows")
        if status == "timeout":
            error: AirflowException = AirflowSensorTimeout(
                f"SuiteQL condition still not met when the sensor's timeout of {self.timeout} s ran out "
                f"(last value {event.get('rows')})"
            )
        else:
            error = AirflowException(f"SuiteQL sensor failed in the triggerer: {event.get('message')}")
        if self.soft_fail:
            raise AirflowSkipException(str(error)) from error
        raise error
