"""Record upserts end to end against the emulator over HTTP: field cases 13 to 15, accounting, resume.

The module runs its own emulator, because it changes customers that other tests read as generated.
The emulator's admin counter ``/_emulator/records/writes`` tells how often each record key was written.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.records import RecordFailuresExceededError, RecordWriter
from airflow_provider_netsuite.operators.records import NetSuiteRecordUpsertOperator
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from tests.conftest import CLIENT_ID, SCOPES, make_keypair, start_emulator, stop_emulator

pytestmark = pytest.mark.integration

LOCKED = "This record has been locked by a user defined workflow."


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    instance = start_emulator(tmp_path_factory.mktemp("upsert-emulator"))
    keypair = make_keypair(tmp_path_factory.mktemp("upsert-keys"), "ec:prime256v1")
    keypair.certificate_id = "cert-upsert-tests"
    instance.register(keypair)
    instance.extra = {
        "account_id": instance.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": keypair.certificate_id,
        "private_key": keypair.private_key,
        "scopes": SCOPES,
        "base_url": instance.base_url,
    }
    yield instance
    stop_emulator(instance)


@pytest.fixture
def conn(em, monkeypatch):
    """Point ``netsuite_default`` at the module's emulator; restore its settings afterwards."""
    value = json.dumps({"conn_type": "netsuite", "extra": em.extra})
    monkeypatch.setenv("AIRFLOW_CONN_NETSUITE_DEFAULT", value)
    yield value
    em.admin("POST", "records/config", {"permanent": [], "transient": {}, "job_delay_ms": 200})
    em.configure(concurrency_limit=5, latency_ms=0)


def prefix() -> str:
    return "T" + uuid.uuid4().hex[:8].upper()


def customers(tag: str, count: int) -> list[dict]:
    return [
        {"externalId": f"{tag}-{n:04d}", "companyName": f"{tag} Company {n}", "email": f"c{n}@{tag}.example"}
        for n in range(count)
    ]


def write_counts(em, contains: str) -> dict[str, int]:
    response = requests.get(
        f"{em.base_url}/_emulator/records/writes", params={"contains": contains}, timeout=30
    )
    response.raise_for_status()
    return response.json()


def per_key(counts: dict[str, int]) -> dict[str, int]:
    """Fold ``<action> customer/eid:<id>`` counters into external ID -> writes."""
    folded: dict[str, int] = {}
    for name, count in counts.items():
        key = name.split("/eid:", 1)[1]
        folded[key] = folded.get(key, 0) + count
    return folded


def upsert(**kwargs) -> dict:
    kwargs.setdefault("record_type", "customer")
    return NetSuiteRecordUpsertOperator(task_id="upsert", **kwargs).execute(context={})


def balanced(result: dict) -> bool:
    return result["input"] == result["succeeded"] + result["failed"] + result["skipped"]


def report_lines(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def company_name(em, external_id: str) -> str:
    rows = em.query_db(f"SELECT companyname FROM customer WHERE externalid = '{external_id}'")  # noqa: S608
    assert len(rows) == 1
    return rows[0]["companyname"]


def db_external_ids(em, tag: str) -> set[str]:
    rows = em.query_db(f"SELECT externalid FROM customer WHERE externalid LIKE '{tag}-%'")  # noqa: S608
    return {row["externalid"] for row in rows}


# --- field case 15: bodies and headers of writes ------------------------------------------------------


def test_upsert_is_a_utf8_json_put_by_external_id(em, conn):
    tag = prefix()
    sent = []
    with NetSuiteClient(ConnectionConfig.from_extra(em.extra)) as client:
        client.session.hooks["response"].append(lambda response, **_: sent.append(response.request))
        record = {"externalId": f"{tag}-zoe", "companyName": "Zoë Ångström AB", "email": "zoe@example.com"}
        result = RecordWriter(client, "customer").write([record])
        page = client.suiteql_page(
            "SELECT companyname, email FROM customer WHERE externalid = ?", params=[f"{tag}-zoe"]
        )

    writes = [request for request in sent if "/record/v1/" in request.url]
    assert result.succeeded == 1
    assert [(request.method, request.url.split("/services/rest")[1]) for request in writes] == [
        ("PUT", f"/record/v1/customer/eid:{tag}-zoe")
    ]
    assert writes[0].headers["Content-Type"] == "application/json"
    assert "Zoë Ångström AB".encode() in writes[0].body
    assert json.loads(writes[0].body.decode("utf-8")) == {
        "companyName": "Zoë Ångström AB",
        "email": "zoe@example.com",
    }
    assert page["items"][0]["companyname"] == "Zoë Ångström AB"
    assert company_name(em, f"{tag}-zoe") == "Zoë Ångström AB"


def test_bad_external_ids_are_refused_without_a_request(em, conn, tmp_path):
    records = [
        {"externalId": "A|B", "companyName": "pipe"},
        {"externalId": "has space", "companyName": "space"},
        {"externalId": "Zoë-1", "companyName": "non-ASCII"},
        {"companyName": "no external ID"},
    ]
    before = em.stats()["requests"]

    result = upsert(records=records, failure_path=str(tmp_path / "failures.jsonl"), max_failures=4)

    assert em.stats()["requests"] == before
    assert (result["input"], result["skipped"], result["succeeded"], result["failed"]) == (4, 4, 0, 0)
    entries = report_lines(tmp_path / "failures.jsonl")
    assert [entry["code"] for entry in entries] == ["LOCAL_VALIDATION"] * 4
    assert [entry["record"] for entry in entries] == records
    assert all(entry["status"] is None for entry in entries)


# --- field case 14: some records of a batch fail -----------------------------------------------------


def test_permanent_failures_are_reported_once_and_max_failures_decides(em, conn, tmp_path):
    tag = prefix()
    records = customers(tag, 50)
    locked = [records[7]["externalId"], records[31]["externalId"]]
    em.configure(record_failures={"permanent": [f"eid:{key}" for key in locked]})
    before = em.stats()

    result = upsert(records=records, failure_path=str(tmp_path / "a" / "failures.jsonl"), max_failures=2)

    after = em.stats()
    token_requests = after["token_requests"] - before["token_requests"]
    assert after["requests"] - before["requests"] == 50 + token_requests
    assert (result["succeeded"], result["failed"], result["skipped"]) == (48, 2, 0)
    assert result["retries"] == 0
    assert per_key(write_counts(em, tag)) == {record["externalId"]: 1 for record in records}
    entries = report_lines(tmp_path / "a" / "failures.jsonl")
    assert sorted(entry["key"] for entry in entries) == sorted(locked)
    for entry in entries:
        assert (entry["status"], entry["code"], entry["detail"]) == (400, "USER_ERROR", LOCKED)
        assert "error_path" in entry
        assert entry["record"] == records[entry["position"]]
    assert db_external_ids(em, tag) == {r["externalId"] for r in records} - set(locked)

    with pytest.raises(RecordFailuresExceededError) as info:
        upsert(records=records, failure_path=str(tmp_path / "b" / "failures.jsonl"), max_failures=0)
    assert (info.value.result.succeeded, info.value.result.failed) == (48, 2)
    assert sorted(e["key"] for e in report_lines(tmp_path / "b" / "failures.jsonl")) == sorted(locked)


# --- field case 13: concurrency limit shared with other integrations ---------------------------------


def test_writes_over_the_concurrency_limit_back_off_and_all_succeed(em, conn, tmp_path):
    tag = prefix()
    em.configure(concurrency_limit=2, latency_ms=80)
    before = em.stats()["throttled"]

    result = upsert(records=customers(tag, 40), failure_path=str(tmp_path / "f.jsonl"), max_concurrency=6)

    assert em.stats()["throttled"] - before > 0
    assert result["retries"] > 0
    assert (result["input"], result["succeeded"], result["failed"]) == (40, 40, 0)
    assert balanced(result)
    assert len(db_external_ids(em, tag)) == 40


# --- accounting under mixed failures ------------------------------------------------------------------


def test_every_record_is_accounted_for_under_mixed_failures(em, conn, tmp_path):
    tag = prefix()
    records = customers(tag, 30)
    transient = {f"eid:{records[3]['externalId']}": 2, f"eid:{records[9]['externalId']}": 1}
    em.configure(record_failures={"permanent": [f"eid:{records[20]['externalId']}"], "transient": transient})
    records[5]["externalId"] = "bad id"
    source = tmp_path / "in.jsonl"
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    lines.insert(12, '{"externalId": "broken"')
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = upsert(records=str(source), max_failures=10)

    assert result["input"] == 31
    assert (result["succeeded"], result["failed"], result["skipped"]) == (28, 1, 2)
    assert balanced(result)
    counts = per_key(write_counts(em, tag))
    assert counts[records[3]["externalId"]] == 3
    assert counts[records[9]["externalId"]] == 2
    assert counts[records[20]["externalId"]] == 1
    entries = report_lines(tmp_path / "in.jsonl.failures.jsonl")
    assert sorted(entry["code"] for entry in entries) == ["INVALID_INPUT", "LOCAL_VALIDATION", "USER_ERROR"]
    assert next(e for e in entries if e["code"] == "INVALID_INPUT")["line"] == 13


# --- resume after a crash -----------------------------------------------------------------------------

CRASH_SCRIPT = """
import json, sys
from airflow_provider_netsuite.operators.records import NetSuiteRecordUpsertOperator
operator = NetSuiteRecordUpsertOperator(
    task_id="upsert", record_type="customer", records=sys.argv[1], failure_path=sys.argv[2],
    mode=sys.argv[3], max_failures=1000, max_concurrency=4,
)
print(json.dumps(operator.execute(context={})))
"""


def crash_mid_run(em, conn_value: str, tmp_path: Path, mode: str) -> tuple[str, list[dict], Path, Path]:
    """Run the operator on 300 new customers (40 ms latency) in a subprocess and SIGKILL it once its first
    chunk's outcome is checkpointed; return the customers' tag, the records, the input and failure paths."""
    tag = prefix()
    records = customers(tag, 300)
    em.configure(latency_ms=40)
    source, failures = tmp_path / "in.jsonl", tmp_path / "out" / "failures.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    script = tmp_path / "run_upsert.py"
    script.write_text(CRASH_SCRIPT, encoding="utf-8")
    env = {**os.environ, "AIRFLOW_CONN_NETSUITE_DEFAULT": conn_value}
    process = subprocess.Popen(
        [sys.executable, str(script), str(source), str(failures), mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = failures.parent / f"{failures.name}.checkpoint"
    deadline = time.monotonic() + 90
    try:
        while not any(checkpoint.glob("part-*-outcome-*.json")):
            assert process.poll() is None, "the upsert ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint outcome appeared"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    time.sleep(0.5)  # let requests already received by the emulator finish
    return tag, records, source, failures


def checkpointed(failures: Path) -> tuple[set[int], set[int]]:
    """Return the positions with a recorded success and those recorded as intended (create mode)."""
    succeeded, intended = set(), set()
    for part in (failures.parent / f"{failures.name}.checkpoint").glob("part-*.json"):
        content = json.loads(part.read_text(encoding="utf-8"))
        succeeded |= {row[0] for row in content.get("succeeded", [])}
        intended |= {row[0] for row in content.get("positions", [])} if content["kind"] == "intent" else set()
    return succeeded, intended


def test_upsert_resumes_after_a_crash_without_resending_recorded_successes(em, conn, tmp_path):
    tag, records, source, failures = crash_mid_run(em, conn, tmp_path, "upsert")
    done_before, _ = checkpointed(failures)
    sent_before = per_key(write_counts(em, tag))
    assert 0 < len(done_before) < 300
    assert sum(sent_before.values()) < 300, "the crash came after every record was sent"

    em.configure(latency_ms=0)
    result = upsert(records=str(source), failure_path=str(failures))

    counts = per_key(write_counts(em, tag))
    assert (result["input"], result["succeeded"], result["resumed"]) == (300, 300, len(done_before))
    assert balanced(result)
    assert all(counts[records[position]["externalId"]] == 1 for position in done_before)
    assert set(counts) == {record["externalId"] for record in records}
    assert len(db_external_ids(em, tag)) == 300


def test_create_never_sends_a_record_twice_after_a_crash(em, conn, tmp_path):
    tag, _, source, failures = crash_mid_run(em, conn, tmp_path, "create")
    done_before, intended = checkpointed(failures)
    assert 0 < len(done_before) < 300

    em.configure(latency_ms=0)
    result = NetSuiteRecordUpsertOperator(
        task_id="create",
        record_type="customer",
        mode="create",
        records=str(source),
        failure_path=str(failures),
        max_failures=300,
    ).execute(context={})

    counts = per_key(write_counts(em, tag))
    assert max(counts.values()) == 1
    assert balanced(result)
    assert result["input"] == 300
    uncertain = [e for e in report_lines(failures) if e["code"] == "UNCERTAIN_AFTER_CRASH"]
    assert len(uncertain) == result["failed"]
    assert {e["position"] for e in uncertain} == intended - done_before
    assert set(counts) == db_external_ids(em, tag)


# --- round trip ----------------------------------------------------------------------------------------


def test_upserted_values_are_seen_by_a_suiteql_extract(em, conn, tmp_path):
    tag = prefix()
    existing = em.query_db(
        "SELECT externalid FROM customer WHERE externalid LIKE 'CUST-%' AND isperson = 'F' LIMIT 1"
    )
    changed = existing[0]["externalid"]
    records = [*customers(tag, 3), {"externalId": changed, "email": f"changed@{tag.lower()}.example"}]

    result = upsert(records=records, failure_path=str(tmp_path / "f.jsonl"))

    target = tmp_path / "extract.jsonl"
    marks = ", ".join("?" for _ in records)
    NetSuiteSuiteQLOperator(
        task_id="extract",
        query=f"SELECT id, externalid, companyname, email FROM customer WHERE externalid IN ({marks})",  # noqa: S608
        query_params=[record["externalId"] for record in records],
        output_path=str(target),
    ).execute(context={})
    rows = {
        row["externalid"]: row for row in map(json.loads, target.read_text(encoding="utf-8").splitlines())
    }
    assert result["succeeded"] == 4
    assert rows[changed]["email"] == f"changed@{tag.lower()}.example"
    for record in records[:3]:
        assert (rows[record["externalId"]]["companyname"], rows[record["externalId"]]["email"]) == (
            record["companyName"],
            record["email"],
        )


# --- asynchronous batch mode ---------------------------------------------------------------------------


def test_batch_mode_maps_task_results_back_to_records(em, conn, tmp_path):
    tag = prefix()
    records = customers(tag, 150)
    locked = [records[30]["externalId"], records[120]["externalId"]]
    em.configure(record_failures={"permanent": [f"eid:{key}" for key in locked], "job_delay_ms": 20})
    records[60]["externalId"] = "A|B"

    result = upsert(records=records, failure_path=str(tmp_path / "f.jsonl"), batch=True, max_failures=3)

    assert (result["input"], result["succeeded"], result["failed"], result["skipped"]) == (150, 147, 2, 1)
    failed = [entry for entry in report_lines(tmp_path / "f.jsonl") if entry["code"] == "USER_ERROR"]
    assert sorted((e["key"], e["position"]) for e in failed) == [(locked[0], 30), (locked[1], 120)]
    assert all(e["status"] == 400 and e["detail"] == LOCKED for e in failed)
    assert all(e["record"] == records[e["position"]] for e in failed)
    assert db_external_ids(em, tag) == {r["externalId"] for r in records} - {*locked, "A|B"}


class SimulatedCrash(Exception):
    """Stands for the worker dying right after NetSuite accepted a batch."""


class CrashAfterSubmit:
    """A client that passes every request on, then 'crashes' once a batch submission was accepted."""

    def __init__(self, client: NetSuiteClient) -> None:
        self.client = client
        self.stats = client.stats

    def request(self, method, path, **kwargs):
        response = self.client.request(method, path, **kwargs)
        if method == "PUT" and path.endswith("/record/v1/customer"):
            raise SimulatedCrash("killed after the job was accepted")
        return response


def test_batch_resubmission_reuses_the_idempotency_key_and_creates_no_duplicates(em, conn, tmp_path):
    tag = prefix()
    records = customers(tag, 40)
    em.configure(record_failures={"job_delay_ms": 20})
    failures = tmp_path / "f.jsonl"
    conflicts_before = em.stats()["by_status"].get("400", 0)

    with NetSuiteClient(ConnectionConfig.from_extra(em.extra)) as client:
        crashing = RecordWriter(CrashAfterSubmit(client), "customer", batch=True, failure_path=failures)
        with pytest.raises(SimulatedCrash):
            crashing.write(records)
        resumed = RecordWriter(client, "customer", batch=True, failure_path=failures, poll_interval=0.1)
        result = resumed.write(records)

    assert (result.input, result.succeeded, result.failed) == (40, 40, 0)
    assert em.stats()["by_status"].get("400", 0) - conflicts_before == 1  # the IDEMPOTENCY_ERROR answer
    assert per_key(write_counts(em, tag)) == {record["externalId"]: 1 for record in records}
    assert len(db_external_ids(em, tag)) == 40


# --- the example DAGs in Airflow -----------------------------------------------------------------------


def dags_test(dag_id: str, tmp_path: Path, *extra: str) -> tuple[dict, list[dict]]:
    env = {
        **os.environ,
        "NETSUITE_OUTPUT_ROOT": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    run = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, "2026-06-15", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.splitlines()
    result_line = next(line for line in lines if "NETSUITE_UPSERT_RESULT" in line)
    result = ast.literal_eval(result_line.split("NETSUITE_UPSERT_RESULT", 1)[1].strip())
    failures = [
        json.loads(line.split("NETSUITE_UPSERT_FAILURE", 1)[1])
        for line in lines
        if "NETSUITE_UPSERT_FAILURE" in line
    ]
    return result, failures


@pytest.mark.airflow
def test_round_trip_dag_cleans_customers_and_reports_locked_ones(em, conn, airflow_db, tmp_path):
    selected = em.query_db(
        "SELECT externalid FROM customer WHERE externalid IS NOT NULL AND id <= 200 ORDER BY id"
    )
    locked = [selected[4]["externalid"], selected[40]["externalid"]]
    em.configure(record_failures={"permanent": [f"eid:{key}" for key in locked]})

    result, failures = dags_test("netsuite_customers_round_trip", tmp_path)

    assert (result["input"], result["succeeded"], result["failed"]) == (len(selected), len(selected) - 2, 2)
    assert sorted(entry["key"] for entry in failures) == sorted(locked)
    assert all(entry["code"] == "USER_ERROR" and entry["status"] == 400 for entry in failures)
    spaced = em.query_db(
        "SELECT externalid FROM customer WHERE externalid IS NOT NULL AND id <= 200 AND phone LIKE '% %'"
    )
    assert sorted(row["externalid"] for row in spaced) == sorted(locked)


@pytest.mark.airflow
def test_upsert_from_file_dag_publishes_its_failure_report(em, conn, airflow_db, tmp_path):
    tag = prefix()
    records = customers(tag, 298)
    records[0]["companyName"] = "Zoë Ångström AB"
    source = tmp_path / "customers.jsonl"
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    lines[10:10] = ['{"externalId": "not json', json.dumps({"externalId": "A|B", "companyName": "x"})]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result, failures = dags_test(
        "netsuite_upsert_from_file", tmp_path, "-c", json.dumps({"input_path": str(source)})
    )

    assert (result["input"], result["succeeded"], result["skipped"], result["failed"]) == (300, 298, 2, 0)
    assert [entry["code"] for entry in failures] == ["INVALID_INPUT", "LOCAL_VALIDATION"]
    assert failures[0]["line"] == 11
    assert len(db_external_ids(em, tag)) == 298
    assert company_name(em, f"{tag}-0000") == "Zoë Ångström AB"
