"""
Upsert customers from a JSON lines file and publish a failure report beside it.

The input file is one customer per line, keyed by ``externalId``::

    {"externalId": "CRM-1001", "companyName": "Zoë Ångström AB", "email": "zoe@example.com"}

Pass its path in the run's configuration (``{"input_path": "/data/customers.jsonl"}``; ``s3://`` and
other object storage paths work too), or set ``NETSUITE_UPSERT_INPUT``. The file is streamed, so its size
does not matter. Records NetSuite refuses, and records refused before sending (a missing external ID, an
external ID with characters other than letters, digits, ``_`` and ``-``, a line that is not JSON), are
written to ``<input>.failures.jsonl``; the task fails when more than 1 % of the records fail.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_netsuite.operators.records import NetSuiteRecordUpsertOperator

DEFAULT_INPUT = os.environ.get(
    "NETSUITE_UPSERT_INPUT", os.path.join(tempfile.gettempdir(), "netsuite", "customers_to_upsert.jsonl")
)

with DAG(
    dag_id="netsuite_upsert_from_file",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"input_path": Param(DEFAULT_INPUT, type="string", description="JSON lines file to upsert")},
    tags=["netsuite", "example"],
    doc_md=__doc__,
):
    upsert = NetSuiteRecordUpsertOperator(
        task_id="upsert_customers",
        record_type="customer",
        records="{{ params.input_path }}",
        failure_path="{{ params.input_path }}.failures.jsonl",
        max_failures=0.01,
    )

    @task
    def report(result: dict) -> None:
        """Print the counts and each failure report entry (without the record's field values)."""
        print("NETSUITE_UPSERT_RESULT", result)
        with Path(result["failure_path"].removeprefix("file://")).open(encoding="utf-8") as failures:
            for line in failures:
                entry = json.loads(line)
                summary = {name: entry.get(name) for name in ("line", "key", "code", "detail")}
                print("NETSUITE_UPSERT_FAILURE", json.dumps(summary, ensure_ascii=False))

    report(upsert.output)
