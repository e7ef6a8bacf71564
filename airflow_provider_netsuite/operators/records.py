"""Operator that writes records to NetSuite (upsert, create or update) with a failure report."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_netsuite.core.record_sources import iter_records
from airflow_provider_netsuite.core.records import (
    MODES,
    RecordFailuresExceededError,
    RecordWriter,
    allowed_failures,
)
from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook
from airflow_provider_netsuite.utils.lineage import record_write_lineage, to_operator_lineage
from airflow_provider_netsuite.utils.storage import as_storage_path, publish_atomically

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

RESULT_KEYS = ("input", "succeeded", "failed", "skipped", "resumed", "requests", "retries", "seconds")


def publish_report(local: IO[bytes], target: ObjectStoragePath) -> None:
    """Copy a finished failure report to ``target`` through a temporary sibling, atomically."""
    with publish_atomically(target) as temporary, temporary.open("wb") as stream:
        shutil.copyfileobj(local, stream)


class NetSuiteRecordUpsertOperator(BaseOperator):
    """
    Write records of one record type to NetSuite and report the ones NetSuite refused.

    Each input record ends succeeded, failed (refused by NetSuite, written to the failure report with its
    ``o:errorCode``, ``detail`` and ``o:errorPath``) or skipped (refused locally, e.g. an external ID with
    characters other than letters, digits, ``_`` and ``-``). A concurrency limit or outage that outlasts
    the client's retries fails the task; thanks to the checkpoint beside the failure report, the task's
    retry resumes without sending succeeded records again and, in create mode, without creating a record
    twice. The return value (XCom) holds the counts and the failure report's path.

    :param record_type: The REST record type: ``customer``, ``salesOrder``, ``customrecord_abc``
        (templated).
    :param records: A list of dicts (e.g. an upstream task's XCom; use ``render_template_as_native_obj``
        when templating it), or the path of a ``.jsonl``, ``.json``, ``.csv`` or ``.parquet`` file (``.gz``
        allowed for text formats): a plain path, ``file://...`` or ``s3://conn_id@bucket/key`` (templated).
        Files are streamed, never loaded whole. CSV empty cells are omitted from the record.
    :param mode: ``upsert`` (``PUT .../eid:<externalId>``), ``create`` (``POST``) or ``update``
        (``PATCH .../<internalId>``).
    :param external_id_field: The input field holding the external ID.
    :param id_field: The input field holding the internal ID (update mode).
    :param replace: Sublists to replace rather than merge (``?replace=item,addressbook``).
    :param property_name_validation: ``X-NetSuite-PropertyNameValidation``: ``ignore``, ``warning``,
        ``error`` (NetSuite's default is ``warning``).
    :param property_value_validation: ``X-NetSuite-PropertyValueValidation`` (default ``error``).
    :param failure_path: Where to publish the failure report (JSON lines) (templated). Its checkpoint
        directory ``<failure_path>.checkpoint`` makes task retries safe. Default: beside an input file
        (``<input>.failures.jsonl``); for a list input no report or checkpoint is kept, which create mode
        refuses.
    :param max_failures: Failed plus skipped records allowed before the task fails: an ``int`` count or a
        ``float`` fraction of the input below 1 (``0.01`` = 1 %). The task fails after the report is
        published.
    :param max_concurrency: Requests in flight; keep the sum over parallel tasks within the account's
        concurrency limit.
    :param batch: Send asynchronous batches of up to 100 records (one job per batch) instead of one
        request per record.
    :param resend_uncertain: Send again records whose write an earlier crash left uncertain: creates, and
        updates that add lines to a sublist not named in ``replace`` (they may then exist, or the lines be
        appended, twice).
    :param netsuite_conn_id: The NetSuite connection (templated).
    """

    template_fields: Sequence[str] = ("records", "failure_path", "netsuite_conn_id", "record_type")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        record_type: str,
        records: list[dict[str, Any]] | str | ObjectStoragePath,
        mode: str = "upsert",
        external_id_field: str = "externalId",
        id_field: str = "id",
        replace: Sequence[str] | None = None,
        property_name_validation: str | None = None,
        property_value_validation: str | None = None,
        failure_path: str | ObjectStoragePath | None = None,
        max_failures: int | float = 0,
        max_concurrency: int = 4,
        batch: bool = False,
        resend_uncertain: bool = False,
        netsuite_conn_id: str = "netsuite_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        allowed_failures(max_failures, 0)  # validates the setting
        self.record_type = record_type
        self.records = records
        self.mode = mode
        self.external_id_field = external_id_field
        self.id_field = id_field
        self.replace = replace
        self.property_name_validation = property_name_validation
        self.property_value_validation = property_value_validation
        self.failure_path = failure_path
        self.max_failures = max_failures
        self.max_concurrency = max_concurrency
        self.batch = batch
        self.resend_uncertain = resend_uncertain
        self.netsuite_conn_id = netsuite_conn_id
        self._lineage: dict[str, Any] | None = None

    def _source(self) -> Any:
        records = self.records
        if isinstance(records, str):
            if records.lstrip().startswith(("[", "{")):
                raise ValueError(
                    "records was rendered as text, not a list: set render_template_as_native_obj=True on "
                    "the DAG to pass an XCom list, or pass a file path"
                )
            return as_storage_path(records)
        if hasattr(records, "open") and hasattr(records, "name"):
            return as_storage_path(records)
        return records

    def _failure_path(self, source: Any) -> ObjectStoragePath | None:
        if self.failure_path:
            return as_storage_path(self.failure_path)
        if hasattr(source, "open") and hasattr(source, "parent"):
            return source.parent / f"{source.name}.failures.jsonl"
        if self.mode == "create":
            raise ValueError(
                "failure_path is required in create mode for list input: its checkpoint is what keeps a "
                "task retry from creating records twice"
            )
        if self.mode == "update":
            self.log.warning(
                "No failure_path for list input: no checkpoint is kept, so a task retry sends every update "
                "again, and NetSuite appends the lines of sublists not named in replace a second time"
            )
        return None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Report the input file read and the record type written; ``None`` without OpenLineage."""
        if self._lineage is None:
            return None
        lineage = record_write_lineage(record_type=self.record_type, **self._lineage)
        return to_operator_lineage(lineage)

    def execute(self, context: Context) -> dict[str, Any]:
        source = self._source()
        failure_path = self._failure_path(source)
        hook = NetSuiteHook(netsuite_conn_id=self.netsuite_conn_id, max_concurrency=self.max_concurrency)
        self._lineage = {
            "account_id": hook.config.account_id,
            "source": source if hasattr(source, "open") else None,
            "failure_report": failure_path,
        }
        writer = RecordWriter(
            hook.get_conn(),
            self.record_type,
            mode=self.mode,
            external_id_field=self.external_id_field,
            id_field=self.id_field,
            replace=self.replace,
            property_name_validation=self.property_name_validation,
            property_value_validation=self.property_value_validation,
            max_concurrency=self.max_concurrency,
            failure_path=failure_path,
            batch=self.batch,
            resend_uncertain=self.resend_uncertain,
            publish=publish_report,
        )
        result = writer.write(iter_records(source))
        summary = {key: getattr(result, key) for key in RESULT_KEYS}
        summary["failure_path"] = result.failure_path
        if result.exceeded(self.max_failures):
            raise RecordFailuresExceededError(
                f"{result.failures} of {result.input} {self.record_type} records were not written "
                f"({result.failed} refused by NetSuite, {result.skipped} refused locally), more than "
                f"max_failures={self.max_failures!r} allows; see the failure report at {result.failure_path}",
                result=result,
            )
        return summary
