"""Record writes with answers and bodies NetSuite allows: 2xx bodies that are not JSON, and upsert bodies
that carry the external ID or a read-only ``id``.
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
from airflow_provider_netsuite.core.records import (
    RecordWriter,
    written_record_id,
)

BASE = "https://1234567-sb1.suitetalk.api.netsuite.com"
RECORD = f"{BASE}/services/rest/record/v1/customer"
TBA_EXTRA = {
    "auth_type": "tba",
    "account_id": "1234567-sb1",
    "consumer_key": "ck-abc",
    "consumer_secret": "cs-secret-1",
    "token_id": "tid-secret-2",
    "token_secret": "ts-secret-3",
}


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


def checkpoint_ids(tmp_path: Path) -> list[str | None]:
    parts = sorted((tmp_path / "failures.jsonl.checkpoint").glob("part-*-outcome-*.json"))
    return [internal for part in parts for _, _, internal in json.loads(part.read_text())["succeeded"]]


# -- any 2xx is success, whatever its body ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "internal_id"),
    [
        ((201, b"Created", {"Content-Type": "text/plain", "Location": f"{RECORD}/647"}), "647"),
        ((201, b"<html><body>Created</body></html>", {"Content-Type": "text/html"}), None),
        ((200, b"", {}), None),
        ((201, b'{"id": "648"', {"Content-Type": "application/json"}), None),  # cut short: still written
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


def test_written_record_id_reads_location_then_a_json_body():
    def response(body: bytes, headers: dict) -> requests.Response:
        answer = requests.Response()
        answer.status_code, answer._content, answer.headers = 201, body, CaseInsensitiveDict(headers)
        return answer

    assert written_record_id(response(b'{"id": "2"}', {"Location": f"{RECORD}/1"})) == "1"
    assert written_record_id(response(b'{"id": "2"}', {})) == "2"
    assert written_record_id(response(b"[1, 2]", {})) is None
    assert written_record_id(response(b"<html/>", {})) is None


# -- upsert bodies ---------------------------------------------------------------------------------------


def test_upsert_drops_the_external_id_field_and_a_read_only_id(tmp_path):
    fake = FakeRecordService()
    record = {"ext_id": "CUST-1", "id": "5", "externalId": "CUST-1", "companyName": "Acme"}

    result = writer(fake, tmp_path, external_id_field="ext_id").write([record])

    assert result.succeeded == 1
    [call] = fake.calls
    assert call.path == "/services/rest/record/v1/customer/eid:CUST-1"
    assert call.body() == {"companyName": "Acme"}


def test_batch_upsert_item_carries_the_external_id_once(tmp_path):
    fake = FakeRecordService()
    record = {"ext_id": "CUST-1", "id": "5", "companyName": "Acme"}

    result = writer(fake, tmp_path, external_id_field="ext_id", batch=True).write([record])

    assert result.succeeded == 1
    [submit] = fake.write_calls()
    assert submit.body()["items"] == [{"companyName": "Acme", "externalId": "CUST-1"}]
