"""Upserts while NetSuite has a bad day: exact accounting, resumable retries, only permanent failures.

One emulator serves this module. 30 % of answers are transient faults of every kind (the same mix as the
extract tests), a few records fail permanently (400 ``USER_ERROR``, locked by a workflow), a few fail
transiently on their own, and a few are refused locally (bad external ID). Every request leaving the
client is recorded at the transport adapter, which is how "no succeeded record is sent again" is checked.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_netsuite.core.errors import NetSuiteTransientError
from airflow_provider_netsuite.operators.records import NetSuiteRecordUpsertOperator
from tests.reliability.conftest import FAULT_MIX, PATIENT_RETRIES, RequestLog, use_connection

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_backoff")]

RECORDS = 150
PERMANENT = ("REL-0007", "REL-0041", "REL-0077", "REL-0102", "REL-0149")
TRANSIENT = ("REL-0010", "REL-0120")
BAD_IDS = ("bad id!", "semi;colon", "slash/id")


@pytest.fixture(autouse=True)
def faults_reset(module_emulator):
    module_emulator.configure(faults={}, record_failures={})
    module_emulator.admin("POST", "stats/reset")
    yield
    module_emulator.configure(faults={}, record_failures={})


def write_input(path: Path, prefix: str) -> list[dict]:
    """Write the input file: RECORDS upserts plus locally invalid ones; return what was written."""
    records = [
        {
            "externalId": f"{prefix}-{n:04d}",
            "companyName": f"Reliability {prefix} {n} Zoë",
            "email": f"r{n}@x.test",
        }
        for n in range(RECORDS)
    ]
    for position, bad in zip((5, 50, 100), BAD_IDS, strict=True):
        records.insert(position, {"externalId": bad, "companyName": "never sent"})
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return records


def inject_record_failures(emulator, prefix: str, transient: tuple[str, ...] = TRANSIENT) -> None:
    emulator.configure(
        record_failures={
            "permanent": [f"customer/eid:{key.replace('REL', prefix)}" for key in PERMANENT],
            "transient": {f"eid:{key.replace('REL', prefix)}": 2 for key in transient},
        }
    )


def faulty_run_input(
    tmp_path: Path, emulator, prefix: str, transient: tuple[str, ...] = TRANSIENT
) -> tuple[Path, list[dict]]:
    """Write the input, make its PERMANENT and ``transient`` records fail, switch FAULT_MIX on."""
    source = tmp_path / "customers.jsonl"
    records = write_input(source, prefix)
    inject_record_failures(emulator, prefix, transient)
    emulator.configure(faults=FAULT_MIX)
    return source, records


def upsert(monkeypatch, extra: dict, source: Path, **kwargs) -> dict:
    use_connection(monkeypatch, extra)
    operator = NetSuiteRecordUpsertOperator(
        task_id="upsert", record_type="customer", records=str(source), max_failures=10, **kwargs
    )
    return operator.execute({})


def puts(log: RequestLog, status: int | None = None) -> Counter:
    """Count PUTs per external ID (optionally only those answered with ``status``)."""
    with log.lock:
        sent = list(log.sent)
    return Counter(
        item.url.rsplit("eid:", 1)[1]
        for item in sent
        if item.method == "PUT" and "/eid:" in item.url and (status is None or item.status == status)
    )


def report(source: Path) -> list[dict]:
    path = source.parent / f"{source.name}.failures.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def stored(emulator, prefix: str) -> dict[str, str]:
    rows = emulator.query_db("SELECT externalid, companyname FROM customer WHERE externalid LIKE '%-%'")
    return {
        row["externalid"]: row["companyname"] for row in rows if row["externalid"].startswith(prefix + "-")
    }


def test_accounting_holds_and_only_permanent_failures_are_reported(
    monkeypatch, tmp_path, module_emulator, module_extra, request_log
):
    source, records = faulty_run_input(tmp_path, module_emulator, "ACC")

    summary = upsert(monkeypatch, {**module_extra, **PATIENT_RETRIES}, source)

    assert summary["input"] == len(records) == summary["succeeded"] + summary["failed"] + summary["skipped"]
    assert summary["failed"] == len(PERMANENT)
    assert summary["skipped"] == len(BAD_IDS)
    assert summary["retries"] > 0
    entries = report(source)
    assert sorted(e["key"] for e in entries if e["code"] == "USER_ERROR") == [
        key.replace("REL", "ACC") for key in PERMANENT
    ]
    assert sorted(e["record"]["externalId"] for e in entries if e["code"] == "LOCAL_VALIDATION") == sorted(
        BAD_IDS
    )
    assert len(entries) == len(PERMANENT) + len(BAD_IDS)
    # What NetSuite holds is exactly the succeeded records, with their values intact.
    expected = {
        r["externalId"]: r["companyName"]
        for r in records
        if r["externalId"] not in BAD_IDS and r["externalId"].replace("ACC", "REL") not in PERMANENT
    }
    assert stored(module_emulator, "ACC") == expected
    # A permanent failure is answered 400 once and never sent after that; a refused record is never sent.
    refused = puts(request_log, 400)
    assert {key: refused[key] for key in refused} == {key.replace("REL", "ACC"): 1 for key in PERMANENT}
    assert not any(bad in puts(request_log) for bad in BAD_IDS)
    assert sum(module_emulator.stats()["faults_injected"].values()) > 0


def test_forced_stop_then_rerun_sends_no_succeeded_record_again(
    monkeypatch, tmp_path, module_emulator, module_extra, request_log
):
    source, records = faulty_run_input(tmp_path, module_emulator, "RES")
    extra = {**module_extra, **PATIENT_RETRIES}
    finished = threading.Event()

    # An outage that outlasts the retry budget starts once 60 records went through.
    def outage() -> None:
        while sum(puts(request_log, 204).values()) < 60 and not finished.wait(0.01):
            pass
        module_emulator.configure(faults={"fail_next": 1_000_000, "kind": "503"})

    trigger = threading.Thread(target=outage)
    trigger.start()
    try:
        with pytest.raises(NetSuiteTransientError, match="503"):
            upsert(monkeypatch, extra, source)
    finally:
        finished.set()
        trigger.join()
    first_run = puts(request_log, 204)
    assert 60 <= sum(first_run.values()) < RECORDS
    sent_before = len(request_log.sent)

    module_emulator.configure(faults=FAULT_MIX)  # NetSuite is back, with its usual bad day
    summary = upsert(monkeypatch, extra, source)

    with request_log.lock:
        second = [item for item in request_log.sent[sent_before:] if item.method == "PUT"]
    resent = {item.url.rsplit("eid:", 1)[1] for item in second} & set(first_run)
    assert resent == set(), f"records that had succeeded were sent again: {sorted(resent)[:5]}"
    assert summary["resumed"] >= len(first_run)
    assert summary["input"] == len(records) == summary["succeeded"] + summary["failed"] + summary["skipped"]
    assert summary["failed"] == len(PERMANENT)
    assert summary["skipped"] == len(BAD_IDS)
    entries = report(source)
    assert {e["code"] for e in entries} == {"USER_ERROR", "LOCAL_VALIDATION"}
    assert len(entries) == len(PERMANENT) + len(BAD_IDS)
    assert len(stored(module_emulator, "RES")) == RECORDS - len(PERMANENT)


def test_batches_under_faults_keep_the_accounting(monkeypatch, tmp_path, module_emulator, module_extra):
    source, records = faulty_run_input(tmp_path, module_emulator, "BAT", transient=())

    summary = upsert(monkeypatch, {**module_extra, **PATIENT_RETRIES}, source, batch=True)

    assert summary["input"] == len(records) == summary["succeeded"] + summary["failed"] + summary["skipped"]
    assert summary["skipped"] == len(BAD_IDS)
    assert summary["failed"] == len(PERMANENT)
    assert len(stored(module_emulator, "BAT")) == summary["succeeded"]


def test_a_batch_record_that_failed_transiently_is_submitted_again_and_written(
    monkeypatch, tmp_path, module_emulator, module_extra
):
    """A task whose result is a 503 goes into a new job (a new idempotency key) within the same run."""
    source = tmp_path / "customers.jsonl"
    source.write_text(json.dumps({"externalId": "BTR-1", "companyName": "Batch transient"}) + "\n")
    module_emulator.configure(record_failures={"transient": {"eid:BTR-1": 2}})
    extra = {**module_extra, "max_retries": 2, "max_retry_wait": 1}

    summary = upsert(monkeypatch, extra, source, batch=True)

    assert (summary["succeeded"], summary["failed"]) == (1, 0)
    assert stored(module_emulator, "BTR") == {"BTR-1": "Batch transient"}
