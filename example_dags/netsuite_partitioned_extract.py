"""
Full extract of NetSuite customers, split into key ranges that run as separate tasks on separate workers.

``plan_partitions`` sends one statistics query (``MIN``, ``MAX``, ``COUNT`` of ``id``) and returns
``PARTITIONS`` contiguous ranges ``[lower, upper)``. ``extract_partition`` is mapped over them with dynamic
task mapping: one task, and one file ``part-NNNNN.jsonl``, per range. With an object storage root
(``NETSUITE_OUTPUT_ROOT=s3://aws_default@my-bucket/netsuite``) every worker writes to the same place.
Keep ``max_active_tis_per_dagrun`` times ``max_concurrency`` within the account's concurrency limit.

``publish_manifest`` writes ``_manifest.json`` beside the parts and updates the asset
``netsuite_customers_full``; the second DAG, ``netsuite_customers_full_consumer``, is scheduled on that
asset and runs each time a new full extract is published.
"""

from __future__ import annotations

import json
import os
import tempfile

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, task

from airflow_provider_netsuite.operators.partitions import NetSuitePartitionPlanOperator
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator

OUTPUT_ROOT = os.environ.get("NETSUITE_OUTPUT_ROOT", os.path.join(tempfile.gettempdir(), "netsuite"))
PARTITIONS = int(os.environ.get("NETSUITE_PARTITIONS", "4"))
FOLDER = OUTPUT_ROOT.rstrip("/") + "/customers_full"
SNAPSHOT = FOLDER + "/snapshot={{ dag_run.run_after.strftime('%Y%m%dT%H%M%S') }}"

CUSTOMERS = "SELECT id, entityid, companyname, email, isperson, isinactive FROM customer"

# The asset is named, not tied to OUTPUT_ROOT: each event carries the manifest's location in its extra, so
# the consumer finds the snapshot wherever the root points. (A fixed location can be the URI instead:
# Asset("s3://my-bucket/netsuite/customers_full").)
CUSTOMERS_FULL = Asset(name="netsuite_customers_full")

with DAG(
    dag_id="netsuite_partitioned_extract",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["netsuite", "example"],
    doc_md=__doc__,
):
    plan = NetSuitePartitionPlanOperator(task_id="plan_partitions", query=CUSTOMERS, partitions=PARTITIONS)

    parts = NetSuiteSuiteQLOperator.partial(
        task_id="extract_partition",
        query=CUSTOMERS,
        output_path=SNAPSHOT + "/part-{{ '%05d' % ti.map_index }}.jsonl",
        max_concurrency=2,
        max_active_tis_per_dagrun=4,
    ).expand(key_range=plan.output)

    @task(outlets=[CUSTOMERS_FULL])
    def publish_manifest(results: list[dict], **context) -> dict:
        """Write the manifest of the parts and attach it to the asset event."""
        results = sorted(results, key=lambda result: result["partition"]["index"])
        manifest = {
            "rows": sum(result["rows"] for result in results),
            "files": [result["path"] for result in results],
            "partitions": [result["partition"] for result in results],
        }
        target = ObjectStoragePath(results[0]["path"]).parent / "_manifest.json"
        target.write_text(json.dumps(manifest, indent=2))
        context["outlet_events"][CUSTOMERS_FULL].extra = {"manifest": str(target), "rows": manifest["rows"]}
        print("NETSUITE_PARTITIONS_RESULT", {**manifest, "manifest": str(target)})
        return {"manifest": str(target), "rows": manifest["rows"]}

    publish_manifest(parts.output)


with DAG(
    dag_id="netsuite_customers_full_consumer",
    schedule=[CUSTOMERS_FULL],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["netsuite", "example"],
):

    @task
    def read_manifest(**context) -> dict:
        """Read the manifest of the full extract that triggered this run (or the newest one)."""
        events = context["triggering_asset_events"].get(CUSTOMERS_FULL) or []
        if events:
            path = ObjectStoragePath(events[-1].extra["manifest"])
        else:  # a manual run: take the newest snapshot
            path = max(ObjectStoragePath(FOLDER).glob("snapshot=*/_manifest.json"), key=str)
        manifest = json.loads(path.read_text())
        print("NETSUITE_CONSUMER_RESULT", {"manifest": str(path), "rows": manifest["rows"]})
        return {"manifest": str(path), "rows": manifest["rows"]}

    read_manifest()
