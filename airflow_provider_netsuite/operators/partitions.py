"""Plan key-range partitions of a SuiteQL extract, for dynamic task mapping across workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_netsuite.core.partitions import plan_key_partitions

if TYPE_CHECKING:
    from airflow.sdk import Context


def plan_partitions(
    query: str,
    *,
    key_column: str = "id",
    partitions: int | None = None,
    rows_per_partition: int | None = None,
    query_params: Sequence[Any] | None = None,
    netsuite_conn_id: str = "netsuite_default",
) -> list[dict[str, Any]]:
    """Return key-range partitions of a SuiteQL query; call it inside a ``@task`` or an operator.

    The connection is read here, so call it only while a task runs, never at DAG parse time.

    :param query: the SuiteQL query the mapped extract tasks will run; it must select ``key_column``.
    :param key_column: a single integer column, unique in the result.
    :param partitions: the number of partitions wanted.
    :param rows_per_partition: the rows wanted per partition (instead of ``partitions``).
    :param query_params: values for the query's ``?`` placeholders.
    :param netsuite_conn_id: the NetSuite connection.
    :return: ``[{"index": 0, "key_column": "id", "lower": 1, "upper": 2501}, ...]``.
    """
    from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

    hook = NetSuiteHook(netsuite_conn_id=netsuite_conn_id, max_concurrency=1)
    with hook.get_conn() as client:
        return plan_key_partitions(
            client,
            query,
            key_column,
            partitions=partitions,
            rows_per_partition=rows_per_partition,
            params=query_params,
        )


class NetSuitePartitionPlanOperator(BaseOperator):
    """
    Split a SuiteQL extract into key-range partitions and return them (XCom) for dynamic task mapping.

    One statistics request (``MIN``, ``MAX`` and ``COUNT`` of the key) is sent. Map the extract over the
    result, one task and one file per partition::

        plan = NetSuitePartitionPlanOperator(task_id="plan", query=QUERY, partitions=8)
        NetSuiteSuiteQLOperator.partial(
            task_id="extract", query=QUERY, output_path=ROOT + "/part-{{ ti.map_index }}.jsonl"
        ).expand(key_range=plan.output)

    An empty result gives no partitions, and the mapped tasks are then skipped.

    :param query: The SuiteQL query to split, or a ``.sql`` file (templated).
    :param key_column: A single integer column, unique in the result.
    :param partitions: The number of partitions wanted.
    :param rows_per_partition: The rows wanted per partition (instead of ``partitions``).
    :param query_params: Values for the query's ``?`` placeholders (templated).
    :param netsuite_conn_id: The NetSuite connection (templated).
    """

    template_fields: Sequence[str] = ("netsuite_conn_id", "query", "query_params")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"query": "sql"}

    def __init__(
        self,
        *,
        query: str,
        key_column: str = "id",
        partitions: int | None = None,
        rows_per_partition: int | None = None,
        query_params: Sequence[Any] | None = None,
        netsuite_conn_id: str = "netsuite_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (partitions is None) == (rows_per_partition is None):
            raise ValueError("give exactly one of partitions and rows_per_partition")
        self.query = query
        self.key_column = key_column
        self.partitions = partitions
        self.rows_per_partition = rows_per_partition
        self.query_params = query_params
        self.netsuite_conn_id = netsuite_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        planned = plan_partitions(
            self.query,
            key_column=self.key_column,
            partitions=self.partitions,
            rows_per_partition=self.rows_per_partition,
            query_params=self.query_params,
            netsuite_conn_id=self.netsuite_conn_id,
        )
        if planned:
            self.log.info(
                "Planned %d key-range partitions of %s from %s to %s",
                len(planned),
                self.key_column,
                planned[0]["lower"],
                planned[-1]["upper"] - 1,
            )
        else:
            self.log.info("The query returned no rows: no partitions planned")
        return planned
