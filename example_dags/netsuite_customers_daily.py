"""
Daily incremental extract of NetSuite customers with SuiteQL.

Each run selects the customers whose ``lastmodifieddate`` falls in the run's data interval
``[data_interval_start, data_interval_end)``, in the account's time zone (the connection's ``timezone``),
and writes them as JSON lines to a folder partitioned by date. Consecutive runs, and a backfill over past
dates, cover time with no gap and no overlap.
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator

OUTPUT_ROOT = os.environ.get("NETSUITE_OUTPUT_ROOT", os.path.join(tempfile.gettempdir(), "netsuite"))

CUSTOMERS = """
SELECT id, entityid, companyname, email, isperson, isinactive, balance,
       TO_CHAR(lastmodifieddate, 'YYYY-MM-DD"T"HH24:MI:SS') AS lastmodified, lastmodifieddate
FROM customer
"""

with DAG(
    dag_id="netsuite_customers_daily",
    # A data-interval timetable: each run covers [data_interval_start, data_interval_end), which is what
    # the incremental window is cut from. (Airflow 3's plain "@daily" has no interval.)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    tags=["netsuite", "example"],
    doc_md=__doc__,
):
    extract = NetSuiteSuiteQLOperator(
        task_id="extract_customers",
        query=CUSTOMERS,
        incremental_column="lastmodifieddate",
        output_path=OUTPUT_ROOT + "/customers/dt={{ data_interval_start | ds }}/customers.jsonl",
        output_format="jsonl",
        typed=True,
        date_format="%Y-%m-%dT%H:%M:%S",
    )

    @task
    def report(result: dict) -> None:
        """Print one line that says what was extracted (the demo reads it)."""
        print("NETSUITE_EXTRACT_RESULT", result)

    report(extract.output)
