"""Record writes with answers and bodies NetSuite allows: 2xx bodies that are not JSON, updates that add
sublist lines (not safe to repeat), and upsert bodies that carry the external ID or a read-only ``id``.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest
import requests
from fake_record_service import FakeRecordService
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteTransientError
from airflow_provider_netsuite.core.records import (
    UNCERTAIN_AFTER_CRASH,
    RecordWriter,
    appends_sublist_lines,
    written_record_id,
)
from tests.conftest import TBA_EXTRA

BASE = "https://1234567-sb1.suitetalk.api.netsuite.com"
RECORD = f"{BASE}/services/rest/record/v1/customer"
SUBLIST_UPDATE = {"id": "42", "item": {"items": [{"item": {"id": "7"}, "quantity": 1}]}}
NO_CONTENT = (204, b"", {"Location": f"{RECORD}/42"})


class ScriptedNetSuite(BaseAdapter):
    """A requests transport answering from a script: ``(status, body bytes, headers)`` or an exception.

    The last answer is repeated once the script runs out.
    """

    def __init__(self, *answers) -> None:
        super().__init__()
        self.answers = deque(answers)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs) -> requests.Response:
        self.requests.append(request)
        answer = self.answers.popleft() if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        status, body, headers = answer
        response = requests.Response()
        response.status_code = status
        response._content = body
        response.headers = CaseInsensitiveDict(headers)
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def client_for(transport: ScriptedNetSuite) -> NetSuiteClient:
    session = requests.Session()
    session.mount("https://", transport)
    return NetSuiteClient(ConnectionConfig.from_extra(TBA_EXTRA), session=session, sleep=lambda _: None)


def writer(client, tmp_path: Path | None, **kwargs) -> RecordWriter:
    failure_path = tmp_path / "failures.jsonl" if tmp_path is not None else None
    return RecordWriter(client, "customer", failure_path=failure_path, sleep=lambda _: None, **kwargs)


def read_report(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]


def checkpoint_ids(tmp_path: Path) -> list[str | None]:
    parts = sorted((tmp_path / "failures.jsonl.checkpoint").glob("part-*-outcome-*.json"))
    return [internal for part in parts for _, _, internal in json.loads(part.read_text())["succeeded"]]


# -- a 2xx with no body, JSON or plain text is success; HTML or JSON cut short is not NetSuite's answer ----


@pytest.mark.parametrize(
    ("answer", "internal_id"),
    [
        ((201, b"Created", {"Content-Type": "text/plain", "Location": f"{RECORD}/647"}), "647"),
        ((200, b"", {}), None),
        ((201, b'{"id": 649}', {"Content-Type": "application/json"}), "649"),
        ((204, b"", {"location": f"{RECORD}/650"}), "650"),
    ],
)
@pytest.mark.parametrize("mode", ["create", "upsert", "update"])
def test_any_2xx_answer_is_success_sent_once(tmp_path, mode, answer, internal_id):
    transport = ScriptedNetSuite(answer)
    record = {"externalId": "CUST-1", "id": "42", "companyName": "Acme"}

    result = writer(client_for(transport), tmp_path, mode=mode).write([record])

    assert (result.succeeded, result.failed) == (1, 0)
    assert len(transport.requests) == 1
    assert checkpoint_ids(tmp_path) == [internal_id]


SUSPECT_ANSWERS = [
    (200, b"<html><body>Scheduled maintenance</body></html>", {"Content-Type": "text/html"}),
    (201, b'{"id": "648"', {"Content-Type": "application/json"}),
]


@pytest.mark.parametrize("suspect", SUSPECT_ANSWERS)
@pytest.mark.parametrize("mode", ["upsert", "update"])
def test_html_or_cut_short_2xx_is_retried_for_repeatable_writes(tmp_path, mode, suspect):
    transport = ScriptedNetSuite(suspect, NO_CONTENT)
    record = {"externalId": "CUST-1", "id": "42", "companyName": "Acme"}

    result = writer(client_for(transport), tmp_path, mode=mode).write([record])

    assert (result.succeeded, result.failed) == (1, 0)
    assert len(transport.requests) == 2


@pytest.mark.parametrize("suspect", SUSPECT_ANSWERS)
def test_html_or_cut_short_2xx_stops_a_create_instead_of_counting_it(tmp_path, suspect):
    transport = ScriptedNetSuite(suspect, NO_CONTENT)

    with pytest.raises(NetSuiteTransientError):
        writer(client_for(transport), tmp_path, mode="create").write([{"companyName": "Acme"}])

    assert len(transport.requests) == 1


def test_written_record_id_reads_location_then_a_json_body():
    def response(body: bytes, headers: dict) -> requests.Response:
        answer = requests.Response()
        answer.status_code, answer._content, answer.headers = 201, body, CaseInsensitiveDict(headers)
        return answer

    assert written_record_id(response(b'{"id": "2"}', {"Location": f"{RECORD}/1"})) == "1"
    assert written_record_id(response(b'{"id": "2"}', {})) == "2"
    assert written_record_id(response(b"[1, 2]", {})) is None
    assert written_record_id(response(b"<html/>", {})) is None


# -- updates that add sublist lines are not repeated after a 5xx or a broken connection --------------------


@pytest.mark.parametrize(
    ("body", "replace", "appends"),
    [
        ({"companyName": "x"}, [], False),
        ({"item": {"items": [{"item": "7"}]}}, [], True),
        ({"addressbook": [{"label": "Home"}]}, [], True),
        ({"item": {"items": []}}, ["item"], False),
        ({"item": {"items": []}, "addressbook": {"items": []}}, ["item"], True),
        ({"subsidiary": {"id": "1"}}, [], False),
    ],
)
def test_appends_sublist_lines(body, replace, appends):
    assert appends_sublist_lines(body, replace) is appends


@pytest.mark.parametrize(
    "failure",
    [
        (503, b"busy", {"Content-Type": "text/html"}),
        (500, b'{"o:errorDetails": [{"o:errorCode": "UNEXPECTED_ERROR"}]}', {}),
        requests.ConnectionError("connection reset"),
        requests.ReadTimeout("read timed out"),
    ],
)
def test_update_adding_sublist_lines_is_not_repeated_and_is_uncertain_on_resume(tmp_path, failure):
    transport = ScriptedNetSuite(failure, NO_CONTENT)
    with pytest.raises(NetSuiteTransientError):
        writer(client_for(transport), tmp_path, mode="update").write([SUBLIST_UPDATE])
    assert len(transport.requests) == 1

    result = writer(client_for(transport), tmp_path, mode="update").write([SUBLIST_UPDATE])

    assert len(transport.requests) == 1  # not sent again on resume either
    assert (result.input, result.succeeded, result.failed) == (1, 0, 1)
    [entry] = read_report(tmp_path)
    assert (entry["code"], entry["key"]) == (UNCERTAIN_AFTER_CRASH, "42")
    assert "sublist lines" in entry["detail"]


def test_uncertain_update_is_sent_again_with_resend_uncertain(tmp_path):
    transport = ScriptedNetSuite((503, b"busy", {}), NO_CONTENT)
    with pytest.raises(NetSuiteTransientError):
        writer(client_for(transport), tmp_path, mode="update").write([SUBLIST_UPDATE])

    result = writer(client_for(transport), tmp_path, mode="update", resend_uncertain=True).write(
        [SUBLIST_UPDATE]
    )
    assert (result.succeeded, result.failed, len(transport.requests)) == (1, 0, 2)


@pytest.mark.parametrize(
    ("record", "replace", "failure"),
    [
        (SUBLIST_UPDATE, [], (429, b"{}", {"Retry-After": "0"})),  # refused before anything was done
        (SUBLIST_UPDATE, ["item"], (503, b"busy", {})),  # replacing lines is safe to repeat
        ({"id": "42", "companyName": "Acme"}, [], (503, b"busy", {})),
    ],
)
def test_repeatable_update_is_retried(tmp_path, record, replace, failure):
    transport = ScriptedNetSuite(failure, NO_CONTENT)
    result = writer(client_for(transport), tmp_path, mode="update", replace=replace).write([record])
    assert (result.succeeded, result.failed, len(transport.requests)) == (1, 0, 2)


def test_update_accounting_with_sublists_matches_create(tmp_path):
    fake = FakeRecordService(transient={"105": 1, "107": 1})
    for n in range(100, 110):
        fake.records[("customer", str(n))] = {"companyName": f"Company {n}"}
    lines = {"item": {"items": [{"item": {"id": "7"}}]}}
    records = [{"id": str(n), **(lines if n % 2 else {"companyName": "x"})} for n in range(100, 110)]

    result = None
    for _attempt in range(5):  # Airflow task retries
        try:
            result = writer(fake, tmp_path, mode="update", max_concurrency=1, chunk_size=3).write(records)
            break
        except NetSuiteTransientError:
            continue

    assert result is not None
    assert (result.input, result.succeeded, result.failed) == (10, 8, 2)
    report = read_report(tmp_path)
    assert sorted((entry["key"], entry["code"]) for entry in report) == [
        ("105", UNCERTAIN_AFTER_CRASH),
        ("107", UNCERTAIN_AFTER_CRASH),
    ]
    sent = [key for key in fake.sent_keys() if key in ("105", "107")]
    assert sent == ["105", "107"]  # each sent once, never repeated


def test_batch_update_adding_sublist_lines_is_not_submitted_again(tmp_path):
    fake = FakeRecordService(transient={"42": 1, "43": 1})
    fake.records[("customer", "42")] = {}
    fake.records[("customer", "43")] = {}
    records = [SUBLIST_UPDATE, {"id": "43", "companyName": "x"}]

    result = writer(fake, tmp_path, mode="update", batch=True).write(records)

    assert (result.succeeded, result.failed) == (1, 1)
    submits = fake.write_calls()
    assert [[item["id"] for item in call.body()["items"]] for call in submits] == [["42", "43"], ["43"]]
    [entry] = read_report(tmp_path)
    assert entry["key"] == "42"
    assert "sublist lines" in entry["detail"]


# -- upsert bodies ---------------------------------------------------------------------------------------


def test_upsert_drops_the_external_id_field_and_a_read_only_id(tmp_path):
    fake = FakeRecordService()
    record = {"ext_id": "CUST-1", "id": "5", "externalId": "CUST-1", "companyName": "Acme"}

    result = writer(fake, tmp_path, external_id_field="ext_id").write([record])

    assert result.succeeded == 1
    [call] = fake.calls
    assert call.path == "/services/rest/record/v1/customer/eid:CUST-1"
    assert call.body() == {"companyName": "Acme"}


def test_create_drops_a_read_only_id_and_sends_the_external_id_field_as_external_id(tmp_path):
    fake = FakeRecordService()
    record = {"ext_id": "CUST-9", "id": "5", "companyName": "Acme"}

    result = writer(fake, tmp_path, mode="create", external_id_field="ext_id").write([record])

    assert result.succeeded == 1
    [call] = fake.write_calls()
    assert (call.method, call.path) == ("POST", "/services/rest/record/v1/customer")
    assert call.body() == {"companyName": "Acme", "externalId": "CUST-9"}


@pytest.mark.parametrize("progress", ["failed", "error", "FAILED"])
def test_batch_task_ended_otherwise_than_succeeded_reports_netsuite_error(tmp_path, progress):
    # NetSuite documents "succeeded" only; whatever a completed failed task says, its result has the error.
    fake = FakeRecordService(
        permanent={"CUST-2": (400, "USER_ERROR", "Record is locked by a workflow.", None)},
        failed_progress=progress,
    )
    records = [{"externalId": f"CUST-{n}", "companyName": f"C{n}"} for n in range(1, 4)]

    result = writer(fake, tmp_path, batch=True).write(records)

    assert (result.succeeded, result.failed) == (2, 1)
    [entry] = read_report(tmp_path)
    assert (entry["key"], entry["code"]) == ("CUST-2", "USER_ERROR")
    assert entry["detail"] == "Record is locked by a workflow."


def test_batch_upsert_item_carries_the_external_id_once(tmp_path):
    fake = FakeRecordService()
    record = {"ext_id": "CUST-1", "id": "5", "companyName": "Acme"}

    result = writer(fake, tmp_path, external_id_field="ext_id", batch=True).write([record])

    assert result.succeeded == 1
    [submit] = fake.write_calls()
    assert submit.body()["items"] == [{"companyName": "Acme", "externalId": "CUST-1"}]


# -- a batch accepted without a job Location is submitted again under the same idempotency key -----------


class LocationLosingRecordService(FakeRecordService):
    """Answers the first batch submission 200 without ``Location``, after accepting it or not."""

    def __init__(self, *, accept_first: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.accept_first = accept_first
        self.submissions = 0

    def _batch(self, method, record_type, headers, data):
        self.submissions += 1
        if self.submissions > 1:
            return super()._batch(method, record_type, headers, data)
        if self.accept_first:
            super()._batch(method, record_type, headers, data)
        response = requests.Response()
        response.status_code, response._content = 200, b"<html><body>OK</body></html>"
        return response


@pytest.mark.parametrize("accept_first", [True, False])
def test_batch_answer_without_location_is_submitted_again_with_the_same_key(tmp_path, accept_first):
    fake = LocationLosingRecordService(accept_first=accept_first)
    records = [{"externalId": f"CUST-{n}", "companyName": f"Acme {n}"} for n in range(5)]

    result = writer(fake, tmp_path, mode="upsert", batch=True).write(records)

    assert (result.succeeded, result.failed) == (5, 0)
    keys = [call.headers["X-NetSuite-Idempotency-Key"] for call in fake.write_calls()]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(fake.jobs) == 1  # followed the accepted job, or made it on the second try: never two jobs
