"""
Wait for new NetSuite customers without holding a worker slot, then extract them.

``window_start`` turns the run's ``data_interval_start`` into the account's wall-clock time (the
connection's ``timezone``), or takes the ``since`` parameter when one is given at trigger time. The
deferrable ``NetSuiteSuiteQLSensor`` then checks ``COUNT(*)`` of customers created since then with one
cheap SuiteQL request; while fewer than ``MIN_NEW`` exist it waits in the triggerer, not on a worker. When
enough have arrived, the extract writes them as JSON lines.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from airflow_provider_netsuite.sensors.suiteql import NetSuiteSuiteQLSensor

OUTPUT_ROOT = os.environ.get("NETSUITE_OUTPUT_ROOT", os.path.join(tempfile.gettempdir(), "netsuite"))
MIN_NEW = 1
POKE_INTERVAL = float(os.environ.get("NETSUITE_POKE_INTERVAL", "300"))

SINCE = "datecreated >= TO_TIMESTAMP(?, 'YYYY-MM-DD HH24:MI:SS')"
NEW_CUSTOMERS_COUNT = f"SELECT COUNT(*) AS n FROM customer WHERE {SINCE}"  # noqa: S608
NEW_CUSTOMERS = f"SELECT id, entityid, companyname, email, datecreated FROM customer WHERE {SINCE}"  # noqa: S608

with DAG(
    dag_id="netsuite_wait_for_new_records",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "since": Param(None, type=["null", "string"], description="Account time, YYYY-MM-DD HH:MM:SS"),
    },
    tags=["netsuite", "example"],
    doc_md=__doc__,
):

    @task
    def window_start(**context) -> str:
        """Return the account's wall-clock time the wait starts from."""
        from airflow_provider_netsuite.core.windows import to_account_time
        from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

        if context["params"].get("since"):
            return context["params"]["since"]
        start = context.get("data_interval_start") or context["dag_run"].run_after
        return to_account_time(start, NetSuiteHook().config.timezone)

    since = window_start()

    wait = NetSuiteSuiteQLSensor(
        task_id="wait_for_new_customers",
        query=NEW_CUSTOMERS_COUNT,
        query_params=[since],
        count_column="n",
        threshold=MIN_NEW,
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=timedelta(hours=6),
    )

    extract = NetSuiteSuiteQLOperator(
        task_id="extract_new_customers",
        query=NEW_CUSTOMERS,
        query_params=[since],
        output_path=OUTPUT_ROOT + "/new_customers/{{ run_id | replace(':', '-') }}/customers.jsonl",
    )

    @task
    def report(found: int, result: dict) -> None:
        """Print one line that says what arrived and what was extracted."""
        print("NETSUITE_NEW_CUSTOMERS_RESULT", {"counted": found, **result})

    wait >> extract
    report(wait.output, extract.output)
