"""Operator that extracts a SuiteQL query's result to a file (JSON Lines, CSV or Parquet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_netsuite.core.heap import frozen_heap
from airflow_provider_netsuite.core.partitions import check_key_range, key_range_query
from airflow_provider_netsuite.core.suiteql import STRATEGIES, SuiteQLExtract
from airflow_provider_netsuite.core.values import RowTyper
from airflow_provider_netsuite.core.windows import incremental_window
from airflow_provider_netsuite.core.writers import COMPRESSIONS, FORMATS, make_writer
from airflow_provider_netsuite.utils.lineage import extract_lineage, to_operator_lineage
from airflow_provider_netsuite.utils.storage import publish_atomically

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath


class NetSuiteSuiteQLOperator(BaseOperator):
    """
    Run a SuiteQL query and write its whole result to a file, each row exactly once.

    The result is paged by a unique key (``key_columns``), beyond NetSuite's 100,000-result offset cap when
    needed, and written to ``<name>.inprogress-<uuid>`` beside the target, which replaces the target only
    when the extract succeeds. The return value (XCom) is a summary: path, rows, pages, bytes, strategy,
    retries, seconds, format.

    :param query: The SuiteQL query, or a ``.sql`` file (templated). It must select the key columns.
    :param output_path: Where to write: a plain path, ``file://...`` or ``s3://conn_id@bucket/key``
        (templated).
    :param output_format: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: ``None`` or ``gzip`` (JSON Lines and CSV).
    :param typed: Turn ``"T"``/``"F"``, integers and decimals into real values and drop ``links``; off
        writes values exactly as NetSuite sent them.
    :param date_format: ``strptime`` format of date columns selected with an explicit ``TO_CHAR`` (only
        used when ``typed``).
    :param query_params: Values for the query's ``?`` placeholders (templated).
    :param key_columns: A unique key of the result, selected by the query.
    :param incremental_column: A date/time column selected by the query; when set, only rows with it in
        the run's ``[data_interval_start, data_interval_end)`` are extracted, compared in the connection's
        time zone.
    :param columns: Fixed column list for CSV and Parquet (default: the first page's columns).
    :param max_concurrency: Pages fetched at the same time.
    :param strategy: ``auto``, ``offset``, ``key_ranges`` or ``keyset``.
    :param key_range: Extract only the rows with the key in ``[lower, upper)``: a partition from
        :class:`~airflow_provider_netsuite.operators.partitions.NetSuitePartitionPlanOperator`, for
        ``.partial(...).expand(key_range=...)`` (templated). Its ``key_column`` defaults to the first of
        ``key_columns``.
    :param netsuite_conn_id: The NetSuite connection (templated).
    """

    template_fields: Sequence[str] = ("netsuite_conn_id", "query", "output_path", "query_params", "key_range")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"query": "sql"}

    def __init__(
        self,
        *,
        query: str,
        output_path: str | ObjectStoragePath,
        output_format: str = "jsonl",
        compression: str | None = None,
        typed: bool = False,
        date_format: str | None = None,
        query_params: Sequence[Any] | None = None,
        key_columns: Sequence[str] = ("id",),
        incremental_column: str | None = None,
        columns: Sequence[str] | None = None,
        max_concurrency: int = 4,
        strategy: str = "auto",
        key_range: dict[str, Any] | None = None,
        netsuite_conn_id: str = "netsuite_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if output_format not in FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, not {output_format!r}")
        if compression not in COMPRESSIONS or (compression and output_format == "parquet"):
            raise ValueError(f"compression {compression!r} is not available for {output_format}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        self.query = query
        self.output_path = output_path
        self.output_format = output_format
        self.compression = compression
        self.typed = typed
        self.date_format = date_format
        self.query_params = query_params
        self.key_columns = tuple(key_columns)
        self.incremental_column = incremental_column
        self.columns = columns
        self.max_concurrency = max_concurrency
        self.strategy = strategy
        self.key_range = key_range
        self.netsuite_conn_id = netsuite_conn_id
        self._lineage_account_id: str | None = None

    def _windowed_query(self, context: Context, timezone: str) -> tuple[str, list[Any], dict[str, str]]:
        """Return the query, its parameters and, for incremental runs, the window as ISO timestamps."""
        params = list(self.query_params or [])
        if not self.incremental_column:
            return self.query, params, {}
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            raise ValueError("incremental_column needs a run with a data interval (a scheduled DAG run)")
        query, bounds = incremental_window(self.query, self.incremental_column, start, end, timezone)
        self.log.info("Extracting %s in [%s, %s) of time zone %s", self.incremental_column, *bounds, timezone)
        return query, params + bounds, {"window_start": start.isoformat(), "window_end": end.isoformat()}

    def _partitioned_query(self, query: str, params: list[Any]) -> tuple[str, list[Any], dict[str, Any]]:
        """Restrict the query to ``key_range`` when one is given; return the partition for the summary."""
        if not self.key_range:
            return query, params, {}
        key, lower, upper = check_key_range(self.key_range, self.key_columns[0])
        self.log.info("Extracting the partition %s in [%s, %s)", key, lower, upper)
        query, bounds = key_range_query(query, self.key_range, self.key_columns[0])
        partition = {"key_column": key, "lower": lower, "upper": upper}
        if "index" in self.key_range:
            partition["index"] = self.key_range["index"]
        return query, params + bounds, {"partition": partition}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Report the NetSuite tables read and the file written; ``None`` without OpenLineage."""
        if self._lineage_account_id is None:
            return None
        lineage = extract_lineage(self._lineage_account_id, self.query, self.output_path)
        return to_operator_lineage(lineage)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

        hook = NetSuiteHook(netsuite_conn_id=self.netsuite_conn_id, max_concurrency=self.max_concurrency)
        query, params, window = self._windowed_query(context, hook.config.timezone)
        query, params, partition = self._partitioned_query(query, params)
        self._lineage_account_id = hook.config.account_id
        extract = SuiteQLExtract(
            hook.get_conn(),
            query,
            params=params,
            key_columns=self.key_columns,
            max_concurrency=self.max_concurrency,
            strategy=self.strategy,
            logger=self.log,
        )
        typer = RowTyper(self.date_format) if self.typed else None
        options = {"columns": self.columns} if self.columns and self.output_format != "jsonl" else {}

        with publish_atomically(self.output_path) as temporary, temporary.open("wb") as fileobj:
            writer = make_writer(self.output_format, fileobj, compression=self.compression, **options)
            with frozen_heap():
                for page in extract.pages():
                    writer.write_page(typer.type_page(page) if typer else page)
            writer.close()

        stats = extract.stats
        summary = {
            "path": str(self.output_path),
            "rows": stats.rows,
            "pages": stats.pages,
            "bytes": writer.bytes_written,
            "strategy": stats.strategy,
            "retries": stats.retries,
            "seconds": round(stats.seconds, 3),
            "format": self.output_format,
            **window,
            **partition,
        }
        self.log.info("Wrote %d rows (%d bytes) to %s", stats.rows, writer.bytes_written, self.output_path)
        return summary
