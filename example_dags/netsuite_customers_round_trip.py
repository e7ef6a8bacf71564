"""
Round trip: extract customers with SuiteQL, clean them in a task, upsert them back by external ID.

1. ``extract_customers`` selects customers that have an external ID into a JSON lines file.
2. ``transform`` lower-cases and trims each e-mail address and writes the phone number without spaces
   (``+1 555 123 4567`` becomes ``+15551234567``), keeping only the fields to change plus ``externalId``.
3. ``upsert_customers`` sends each record as ``PUT /record/v1/customer/eid:<externalId>``; records NetSuite
   refuses go to a failure report (JSON lines) beside the input, with NetSuite's status, ``o:errorCode``,
   ``detail`` and ``o:errorPath``. Up to 5 % of the records may fail before the task fails.
4. ``report`` prints the counts and one line per failure report entry.

The failure report's checkpoint makes a task retry resume where a crash stopped it; each DAG run writes
to its own folder, so a new run writes again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_netsuite.operators.records import NetSuiteRecordUpsertOperator
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator

OUTPUT_ROOT = os.environ.get("NETSUITE_OUTPUT_ROOT", os.path.join(tempfile.gettempdir(), "netsuite"))
RUN_FOLDER = OUTPUT_ROOT + "/round_trip/{{ ds }}/{{ run_id | replace(':', '-') | replace('+', '-') }}"

REPORT_FIELDS = ("key", "status", "code", "detail", "error_path")

CUSTOMERS = """
SELECT id, externalid, email, phone
FROM customer
WHERE externalid IS NOT NULL AND id <= 200
"""


def clean_customer(row: dict) -> dict:
    """Return the upsert body of one extracted customer: its external ID and the cleaned fields."""
    record = {"externalId": row["externalid"]}
    if row.get("email"):
        record["email"] = row["email"].strip().lower()
    if row.get("phone"):
        record["phone"] = "".join(row["phone"].split())
    return record


with DAG(
    dag_id="netsuite_customers_round_trip",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["netsuite", "example"],
    doc_md=__doc__,
):
    extract = NetSuiteSuiteQLOperator(
        task_id="extract_customers",
        query=CUSTOMERS,
        output_path=RUN_FOLDER + "/extracted.jsonl",
        output_format="jsonl",
    )

    @task
    def transform(extracted: dict) -> str:
        """Clean every extracted customer; return the path of the records to upsert."""
        source = Path(extracted["path"].removeprefix("file://"))
        target = source.with_name("to_upsert.jsonl")
        with source.open(encoding="utf-8") as rows, target.open("w", encoding="utf-8") as out:
            for line in rows:
                out.write(json.dumps(clean_customer(json.loads(line)), ensure_ascii=False) + "\n")
        return str(target)

    to_upsert = transform(extract.output)

    upsert = NetSuiteRecordUpsertOperator(
        task_id="upsert_customers",
        record_type="customer",
        records=to_upsert,
        external_id_field="externalId",
        failure_path=RUN_FOLDER + "/failures.jsonl",
        max_failures=0.05,
        max_concurrency=4,
    )

    @task
    def report(result: dict) -> None:
        """Print the counts and each failure report entry (without the record's field values)."""
        print("NETSUITE_UPSERT_RESULT", result)
        path = result.get("failure_path")
        if not path:
            return
        with Path(path.removeprefix("file://")).open(encoding="utf-8") as failures:
            for line in failures:
                entry = json.loads(line)
                summary = {name: entry.get(name) for name in REPORT_FIELDS}
                print("NETSUITE_UPSERT_FAILURE", json.dumps(summary, ensure_ascii=False))

    report(upsert.output)
