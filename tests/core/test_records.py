"""Record writes against the fake record service: accounting, failure report, checkpoint and resume, batch."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_record_service import FakeRecordService, SimulatedCrash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_netsuite.core.errors import NetSuiteConcurrencyLimitError, NetSuiteTransientError
from airflow_provider_netsuite.core.record_sources import InvalidInput
from airflow_provider_netsuite.core.records import (
    LOCAL_VALIDATION,
    UNCERTAIN_AFTER_CRASH,
    BatchSender,
    CheckpointMismatchError,
    RecordFailuresExceededError,
    RecordWriter,
    RecordWriteResult,
    allowed_failures,
)


def customers(count: int, prefix: str = "CUST") -> list[dict]:
    return [{"externalId": f"{prefix}-{n}", "companyName": f"Company {n}"} for n in range(count)]


def read_report(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def writer(fake, tmp_path: Path | None = None, **kwargs) -> RecordWriter:
    failure_path = tmp_path / "failures.jsonl" if tmp_path is not None else None
    return RecordWriter(fake, "customer", failure_path=failure_path, sleep=lambda _: None, **kwargs)


def test_upsert_sends_put_to_external_id_with_json_body(tmp_path):
    fake = FakeRecordService()
    result = writer(fake, tmp_path, property_name_validation="error", replace=["addressbook"]).write(
        [{"externalId": "CUST-1", "companyName": "Acme"}]
    )

    assert (result.input, result.succeeded, result.failed, result.skipped) == (1, 1, 0, 0)
    [call] = fake.calls
    assert (call.method, call.path) == ("PUT", "/services/rest/record/v1/customer/eid:CUST-1")
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-NetSuite-PropertyNameValidation"] == "error"
    assert "X-NetSuite-PropertyValueValidation" not in call.headers
    assert call.params == {"replace": "addressbook"}
    assert call.body() == {"companyName": "Acme"}  # the URL carries the external ID
    assert fake.by_external_id("customer", "CUST-1") == {"companyName": "Acme"}
    assert read_report(tmp_path / "failures.jsonl") == []


def test_two_of_fifty_permanent_failures_are_reported_not_retried(tmp_path):
    fake = FakeRecordService(
        permanent={
            "CUST-7": (400, "USER_ERROR", "The record is locked by a workflow.", None),
            "CUST-31": (
                400,
                "INVALID_CONTENT",
                "Invalid Field Value 9999 for the following field: item",
                "item",
            ),
        }
    )
    result = writer(fake, tmp_path).write(customers(50))

    assert (result.input, result.succeeded, result.failed, result.skipped) == (50, 48, 2, 0)
    assert sorted(fake.sent_keys()) == sorted(f"CUST-{n}" for n in range(50))  # each sent once
    report = sorted(read_report(tmp_path / "failures.jsonl"), key=lambda entry: entry["position"])
    assert [(e["position"], e["status"], e["code"], e["error_path"]) for e in report] == [
        (7, 400, "USER_ERROR", None),
        (31, 400, "INVALID_CONTENT", "item"),
    ]
    assert report[0]["detail"] == "The record is locked by a workflow."
    assert report[1]["record"] == {"externalId": "CUST-31", "companyName": "Company 31"}
    assert result.exceeded(0)
    assert not result.exceeded(2)


@pytest.mark.parametrize("external_id", ["A|B", "has space", "Zoë", "", "x" * 256, None, 1.5, True])
def test_bad_external_ids_are_refused_locally(tmp_path, external_id):
    fake = FakeRecordService()
    records = [{"externalId": external_id, "companyName": "x"}, {"externalId": "GOOD-1"}]
    result = writer(fake, tmp_path).write(records)

    assert (result.succeeded, result.failed, result.skipped) == (1, 0, 1)
    assert fake.sent_keys() == ["GOOD-1"]
    [entry] = read_report(tmp_path / "failures.jsonl")
    assert entry["status"] is None
    assert entry["code"] == LOCAL_VALIDATION
    assert "external ID" in entry["detail"]


def test_other_local_refusals(tmp_path):
    fake = FakeRecordService()
    records = ["not an object", {"externalId": "NAN-1", "balance": float("nan")}, InvalidInput(3, "bad json")]
    result = writer(fake, tmp_path).write(records)

    assert (result.input, result.skipped, len(fake.calls)) == (3, 3, 0)
    codes = [entry["code"] for entry in read_report(tmp_path / "failures.jsonl")]
    assert codes == [LOCAL_VALIDATION, LOCAL_VALIDATION, "INVALID_INPUT"]


def test_update_mode_needs_numeric_internal_id_and_patches(tmp_path):
    fake = FakeRecordService()
    fake.records[("customer", "42")] = {"companyName": "Old"}
    records = [{"id": "42", "companyName": "New"}, {"id": "4x2"}, {"companyName": "no id"}]
    result = writer(fake, tmp_path, mode="update").write(records)

    assert (result.succeeded, result.skipped) == (1, 2)
    [call] = fake.calls
    assert (call.method, call.path, call.body()) == (
        "PATCH",
        "/services/rest/record/v1/customer/42",
        {"companyName": "New"},
    )
    assert fake.records[("customer", "42")] == {"companyName": "New"}


def test_non_ascii_body_arrives_byte_exact():
    fake = FakeRecordService()
    writer(fake).write([{"externalId": "ZOE-1", "companyName": "Zoë Ångström", "memo": "日本"}])

    [call] = fake.calls
    assert call.data == '{"companyName":"Zoë Ångström","memo":"日本"}'.encode()
    assert fake.by_external_id("customer", "ZOE-1")["companyName"] == "Zoë Ångström"


def test_invalid_arguments_fail_before_any_request():
    fake = FakeRecordService()
    for bad in ("sales order", "1customer", "", "customer/1", "eid:x"):
        with pytest.raises(ValueError, match="record type"):
            RecordWriter(fake, bad)
    with pytest.raises(ValueError, match="mode"):
        RecordWriter(fake, "customer", mode="delete")
    with pytest.raises(ValueError, match="PropertyNameValidation"):
        RecordWriter(fake, "customer", property_name_validation="strict")
    with pytest.raises(ValueError, match="sublist"):
        RecordWriter(fake, "customer", replace=["item,bad name"])
    assert fake.calls == []


def test_transient_failure_stops_the_run_and_a_retry_resumes(tmp_path):
    fake = FakeRecordService(transient={"CUST-250": 1})
    records = customers(500)
    with pytest.raises(NetSuiteTransientError):
        writer(fake, tmp_path, max_concurrency=1).write(records)
    assert not (tmp_path / "failures.jsonl").exists()  # published only when the run finishes
    first_run = list(fake.sent_keys())

    result = writer(fake, tmp_path, max_concurrency=1).write(records)

    assert (result.input, result.succeeded, result.failed) == (500, 500, 0)
    assert 200 <= result.resumed < 500
    succeeded_first = [key for key in first_run if key != "CUST-250"]
    second_run = fake.sent_keys()[len(first_run) :]
    assert not set(succeeded_first) & set(second_run)  # no succeeded record sent twice
    assert sorted(set(fake.sent_keys())) == sorted(r["externalId"] for r in records)


def test_concurrency_limit_after_retries_is_raised_not_a_record_failure(tmp_path):
    fake = FakeRecordService(throttled={"CUST-3": 1})
    with pytest.raises(NetSuiteConcurrencyLimitError):
        writer(fake, tmp_path, mode="create", max_concurrency=1).write(customers(10))

    result = writer(fake, tmp_path, mode="create", max_concurrency=1).write(customers(10))

    # the 429'd record was recorded as not sent, so the resumed create sends it and nothing is uncertain
    assert (result.succeeded, result.failed) == (10, 0)
    assert sorted(fake.external) == sorted(("customer", f"CUST-{n}") for n in range(10))


def test_crash_then_resume_sends_no_succeeded_record_twice(tmp_path):
    fake = FakeRecordService(crash_after=333)
    records = customers(1000)
    with pytest.raises(SimulatedCrash):
        writer(fake, tmp_path).write(records)
    fake.crash_after = None
    accepted_first = set(fake.sent_keys()[:333])  # the fake accepts the first 333 writes, in call order
    sent_before = len(fake.sent_keys())

    result = writer(fake, tmp_path).write(records)

    second = fake.sent_keys()[sent_before:]
    assert len(accepted_first) == 333
    assert (result.input, result.succeeded, result.failed, result.skipped) == (1000, 1000, 0, 0)
    assert result.resumed == 1000 - len(second) >= 200
    assert not accepted_first & set(second)
    assert accepted_first | set(second) == {r["externalId"] for r in records}


def test_create_mode_never_resends_an_uncertain_record(tmp_path):
    # The crash happens after NetSuite created the record but before its answer was recorded.
    fake = FakeRecordService(crash_after=5, crash_applies=True)
    records = customers(12)
    with pytest.raises(SimulatedCrash):
        writer(fake, tmp_path, mode="create", max_concurrency=1).write(records)
    fake.crash_after = None
    sent_before = len(fake.write_calls())

    result = writer(fake, tmp_path, mode="create", max_concurrency=1).write(records)

    assert (result.input, result.succeeded, result.failed) == (12, 11, 1)
    resent = [call.body()["externalId"] for call in fake.write_calls()[sent_before:]]
    assert "CUST-5" not in resent
    assert len(resent) == 6
    [entry] = read_report(tmp_path / "failures.jsonl")
    assert entry["code"] == UNCERTAIN_AFTER_CRASH
    assert "CUST-5" in entry["detail"]
    assert len([key for key in fake.external if key[1] == "CUST-5"]) == 1

    # A third run replays; with resend_uncertain the user accepts the duplicate risk.
    again = writer(fake, tmp_path, mode="create", max_concurrency=1, resend_uncertain=True).write(records)
    assert len(fake.write_calls()) == sent_before + 7
    assert (again.succeeded, again.failed) == (11, 1)  # NetSuite refuses the duplicate external ID


def test_hard_crash_between_intent_and_outcome_leaves_the_chunk_uncertain(tmp_path):
    fake = FakeRecordService()
    records = customers(5)
    writer(fake, tmp_path, mode="create").write(records)
    checkpoint = tmp_path / "failures.jsonl.checkpoint"
    for part in checkpoint.glob("part-*-outcome-*.json"):
        part.unlink()  # as if the process died before writing the outcome
    (checkpoint / "done.json").unlink()

    result = writer(fake, tmp_path, mode="create").write(records)

    assert (result.succeeded, result.failed) == (0, 5)
    assert len(fake.write_calls()) == 5
    assert {entry["code"] for entry in read_report(tmp_path / "failures.jsonl")} == {UNCERTAIN_AFTER_CRASH}


def test_finished_write_is_replayed_not_repeated(tmp_path):
    fake = FakeRecordService(permanent={"CUST-1": (400, "USER_ERROR", "locked", None)})
    first = writer(fake, tmp_path, mode="create").write(customers(4))
    second = writer(fake, tmp_path, mode="create").write(customers(4))

    assert len(fake.write_calls()) == 4
    assert (second.succeeded, second.failed, second.resumed) == (first.succeeded, first.failed, 4)
    assert len(read_report(tmp_path / "failures.jsonl")) == 1


def test_checkpoint_of_another_write_or_input_is_refused(tmp_path):
    fake = FakeRecordService()
    writer(fake, tmp_path).write(customers(3))
    with pytest.raises(CheckpointMismatchError):
        writer(fake, tmp_path, mode="create").write(customers(3))
    with pytest.raises(CheckpointMismatchError, match="input changed"):
        writer(fake, tmp_path).write(customers(3, prefix="OTHER"))


def test_no_failure_path_keeps_no_checkpoint(tmp_path):
    fake = FakeRecordService(permanent={"CUST-0": (403, "INSUFFICIENT_PERMISSION", "no", None)})
    result = writer(fake).write(customers(3))
    assert (result.succeeded, result.failed, result.failure_path) == (2, 1, None)
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(["ok", "permanent", "transient", "bad_id", "throttled"]),
            st.integers(min_value=0, max_value=2),
        ),
        min_size=0,
        max_size=60,
    ),
    mode=st.sampled_from(["upsert", "create"]),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_accounting_identity_under_random_failures(tmp_path_factory, data, mode, concurrency):
    tmp_path = tmp_path_factory.mktemp("identity")
    fake = FakeRecordService()
    records = []
    for n, (kind, times) in enumerate(data):
        key = f"K-{n}"
        records.append({"externalId": "bad id" if kind == "bad_id" else key, "n": n})
        if kind == "permanent":
            fake.permanent[key] = (400, "USER_ERROR", "refused", None)
        elif kind == "transient":
            fake.transient[key] = times + 1
        elif kind == "throttled":
            fake.throttled[key] = times + 1
    result = None
    for _attempt in range(len(data) * 4 + 2):  # Airflow task retries
        try:
            result = writer(fake, tmp_path, mode=mode, max_concurrency=concurrency, chunk_size=7).write(
                records
            )
            break
        except (NetSuiteTransientError, NetSuiteConcurrencyLimitError):
            continue
    assert result is not None
    assert result.input == len(data) == result.succeeded + result.failed + result.skipped
    assert result.skipped == sum(kind == "bad_id" for kind, _ in data)
    permanent = sum(kind == "permanent" for kind, _ in data)
    transient = sum(kind == "transient" for kind, _ in data)
    # A create whose 5xx stopped the run is uncertain: counted failed, never sent again.
    assert result.failed == permanent + (transient if mode == "create" else 0)
    report = read_report(tmp_path / "failures.jsonl")
    assert len(report) == result.failed + result.skipped
    assert len({entry["position"] for entry in report}) == len(report)
    assert sum(entry["code"] == UNCERTAIN_AFTER_CRASH for entry in report) == (mode == "create") * transient
    assert len(fake.external) == result.succeeded


def test_max_failures_count_and_fraction():
    result = RecordWriteResult(input=100, succeeded=95, failed=3, skipped=2)
    assert result.failures == 5
    assert result.exceeded(0)
    assert result.exceeded(4)
    assert not result.exceeded(5)
    assert result.exceeded(0.04)
    assert not result.exceeded(0.05)
    assert not result.exceeded(5.0)  # a float of 1 or more is a count
    assert allowed_failures(0.5, 10) == 5
    for bad in (-1, True, "3", None):
        with pytest.raises(ValueError, match="max_failures"):
            allowed_failures(bad, 10)


def test_batch_upsert_maps_task_results_back(tmp_path):
    fake = FakeRecordService(
        permanent={"CUST-4": (400, "NONEXISTENT_FIELD", "Field 'foo' does not exist.", "foo")}, job_polls=3
    )
    sleeps = []
    records = customers(150)
    result = RecordWriter(
        fake, "customer", batch=True, failure_path=tmp_path / "f.jsonl", sleep=sleeps.append
    ).write(records)

    assert (result.input, result.succeeded, result.failed) == (150, 149, 1)
    submits = sorted(fake.write_calls(), key=lambda call: -len(call.body()["items"]))  # jobs run in parallel
    assert [len(call.body()["items"]) for call in submits] == [100, 50]
    first = submits[0]
    assert (first.method, first.path) == ("PUT", "/services/rest/record/v1/customer")
    assert first.headers["Prefer"] == "respond-async"
    assert first.headers["Content-Type"] == "application/vnd.oracle.resource+json; type=collection"
    assert first.body()["items"][0] == {"companyName": "Company 0", "externalId": "CUST-0"}
    assert len({call.headers["X-NetSuite-Idempotency-Key"] for call in submits}) == 2
    assert sorted(sleeps) == [1.0, 1.0, 2.0, 2.0]  # two jobs, each polled three times with backoff
    [entry] = read_report(tmp_path / "f.jsonl")
    assert (entry["position"], entry["code"], entry["error_path"], entry["status"]) == (
        4,
        "NONEXISTENT_FIELD",
        "foo",
        400,
    )
    assert len(fake.external) == 149


def test_batch_resubmission_after_crash_reuses_the_idempotency_key(tmp_path):
    fake = FakeRecordService()
    records = customers(30)
    path = tmp_path / "f.jsonl"
    batch_writer = RecordWriter(fake, "customer", mode="create", batch=True, failure_path=path, chunk_size=10)
    # Simulate a crash after the second job was accepted but before its outcome was recorded.
    original = fake._get
    calls = {"n": 0}

    def crashing_get(path_):
        if path_.endswith("/job/2"):
            calls["n"] += 1
            if calls["n"] == 1:
                raise SimulatedCrash("died while polling")
        return original(path_)

    fake._get = crashing_get
    with pytest.raises(SimulatedCrash):
        RecordWriter(
            fake,
            "customer",
            mode="create",
            batch=True,
            failure_path=path,
            chunk_size=10,
            max_concurrency=1,
            sleep=lambda _: None,
        ).write(records)
    jobs_before = len(fake.jobs)

    result = batch_writer.write(records)

    assert (result.succeeded, result.failed) == (30, 0)
    assert len(fake.external) == 30  # nothing created twice
    assert len(fake.jobs) == jobs_before + 1  # job 2 was polled again, only chunk 3 submitted


def _batch_writer(fake, path, mode="upsert", **kwargs):
    return RecordWriter(
        fake, "customer", mode=mode, batch=True, failure_path=path, sleep=lambda _: None, **kwargs
    )


def test_batch_task_that_failed_transiently_is_submitted_again_in_a_new_job(tmp_path):
    fake = FakeRecordService(transient={"CUST-3": 2})

    result = _batch_writer(fake, tmp_path / "f.jsonl").write(customers(20))

    assert (result.succeeded, result.failed) == (20, 0)
    submits = fake.write_calls()
    assert [len(call.body()["items"]) for call in submits] == [20, 1, 1]
    assert [item["externalId"] for call in submits[1:] for item in call.body()["items"]] == ["CUST-3"] * 2
    assert len({call.headers["X-NetSuite-Idempotency-Key"] for call in submits}) == 3
    assert fake.by_external_id("customer", "CUST-3") == {"companyName": "Company 3"}
    assert read_report(tmp_path / "f.jsonl") == []


def test_batch_task_failing_transiently_in_every_job_is_reported(tmp_path):
    fake = FakeRecordService(transient={"CUST-3": 99})

    result = _batch_writer(fake, tmp_path / "f.jsonl").write(customers(5))

    assert (result.input, result.succeeded, result.failed) == (5, 4, 1)
    assert len(fake.write_calls()) == BatchSender.rounds
    [entry] = read_report(tmp_path / "f.jsonl")
    assert (entry["key"], entry["status"]) == ("CUST-3", 503)
    assert "failed transiently" in entry["detail"]


def test_batch_create_that_failed_transiently_is_not_submitted_again(tmp_path):
    fake = FakeRecordService(transient={"CUST-3": 1})

    result = _batch_writer(fake, tmp_path / "f.jsonl", mode="create").write(customers(5))

    assert (result.succeeded, result.failed) == (4, 1)
    assert len(fake.write_calls()) == 1
    [entry] = read_report(tmp_path / "f.jsonl")
    assert "may have created" in entry["detail"]


def test_crash_while_a_resubmitted_job_runs_resumes_with_that_job(tmp_path):
    fake = FakeRecordService(transient={"CUST-3": 1})
    original = fake._get
    crashed = []

    def crash_once_on_job_2(path_):
        if path_.endswith("/job/2") and not crashed:
            crashed.append(path_)
            raise SimulatedCrash("died while polling the second job")
        return original(path_)

    fake._get = crash_once_on_job_2
    with pytest.raises(SimulatedCrash):
        _batch_writer(fake, tmp_path / "f.jsonl").write(customers(10))

    result = _batch_writer(fake, tmp_path / "f.jsonl").write(customers(10))

    assert (result.succeeded, result.failed, result.resumed) == (10, 0, 9)
    assert len(fake.jobs) == 2  # the second job was followed again, not submitted a third time
    assert fake.by_external_id("customer", "CUST-3") == {"companyName": "Company 3"}


# -- the Airflow operator (thin layer): hook replaced by the fake


@pytest.fixture
def operator_fake(monkeypatch):
    records_operator = pytest.importorskip("airflow_provider_netsuite.operators.records")
    fake = FakeRecordService(permanent={"CUST-2": (400, "USER_ERROR", "locked", None)})

    class FakeHook:
        def __init__(self, netsuite_conn_id, max_concurrency):
            self.netsuite_conn_id = netsuite_conn_id
            self.config = SimpleNamespace(account_id="1234567_SB1", timezone="UTC")

        def get_conn(self):
            return fake

    monkeypatch.setattr(records_operator, "NetSuiteHook", FakeHook)
    return records_operator, fake


def test_operator_returns_counts_and_fails_past_max_failures(tmp_path, operator_fake):
    module, _fake = operator_fake

    source = tmp_path / "customers.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in customers(10)) + "{bad\n", encoding="utf-8")
    ok = module.NetSuiteRecordUpsertOperator(
        task_id="upsert", record_type="customer", records=str(source), max_failures=2
    )
    summary = ok.execute(context={})

    assert {k: summary[k] for k in ("input", "succeeded", "failed", "skipped", "resumed")} == {
        "input": 11,
        "succeeded": 9,
        "failed": 1,
        "skipped": 1,
        "resumed": 0,
    }
    assert summary["failure_path"].endswith("customers.jsonl.failures.jsonl")
    assert len(read_report(tmp_path / "customers.jsonl.failures.jsonl")) == 2

    strict = module.NetSuiteRecordUpsertOperator(
        task_id="strict",
        record_type="customer",
        records=customers(10),
        failure_path=str(tmp_path / "strict.jsonl"),
        max_failures=0.05,
    )
    with pytest.raises(RecordFailuresExceededError, match="max_failures"):
        strict.execute(context={})
    assert len(read_report(tmp_path / "strict.jsonl")) == 1  # published before failing


def test_operator_refuses_create_without_failure_path_for_lists(operator_fake):
    module, fake = operator_fake
    operator = module.NetSuiteRecordUpsertOperator(
        task_id="create", record_type="customer", records=customers(2), mode="create"
    )
    with pytest.raises(ValueError, match="failure_path"):
        operator.execute(context={})
    assert fake.calls == []
    assert "records" in module.NetSuiteRecordUpsertOperator.template_fields
