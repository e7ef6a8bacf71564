"""An in-memory stand-in for ``NetSuiteClient`` that plays NetSuite's REST record service.

It answers like the client does after its own retries: 204 + ``Location`` on success, and raises
``NetSuiteAPIError`` (parsed from a NetSuite error body) for permanent errors, ``NetSuiteTransientError`` /
``NetSuiteConcurrencyLimitError`` for injected transient failures that "outlasted the retries". Failures are
injected per key (the external ID, or the internal ID for updates). Asynchronous batch requests create a
job with one task per item, completed after a configurable number of polls.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from airflow_provider_netsuite.core.errors import (
    NetSuiteAPIError,
    NetSuiteConcurrencyLimitError,
    NetSuiteTransientError,
    parse_error_response,
)
from airflow_provider_netsuite.core.governor import ConcurrencyGovernor

HOST = "https://1234567-sb1.suitetalk.api.netsuite.com"
RECORD = re.compile(r"/services/rest/record/v1/(?P<type>[A-Za-z0-9_]+)(?:/(?P<key>[^/?]+))?$")
JOB = re.compile(
    r"/services/rest/async/v1/job/(?P<job>\d+)(?P<rest>(?:/task(?:/(?P<task>\d+)(?:/result)?)?)?)$"
)
EXTERNAL_ID = re.compile(r"[A-Za-z0-9_-]+")


class SimulatedCrash(Exception):
    """Raised by the fake to simulate the worker dying mid-run (not a NetSuite error)."""


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    params: dict[str, Any] | None
    headers: dict[str, str]
    data: bytes | None
    kwargs: dict[str, Any]

    def body(self) -> Any:
        return json.loads(self.data.decode("utf-8")) if self.data else None


@dataclass
class Stats:
    requests: int = 0
    retries: int = 0


@dataclass
class Job:
    tasks: list[dict[str, Any]]
    polls_left: int
    polls: int = 0


@dataclass
class FakeRecordService:
    """The fake client. ``permanent`` maps a key to ``(status, code, detail, error_path)``.

    :param transient: key -> how many times to raise ``NetSuiteTransientError`` before accepting.
    :param throttled: key -> how many times to raise ``NetSuiteConcurrencyLimitError`` before accepting.
    :param crash_after: raise :class:`SimulatedCrash` on every write request after this many writes.
    :param crash_applies: when crashing, apply the write first (the answer is lost, not the write).
    :param job_polls: GETs of a job before it reports ``completed``.
    :param failed_progress: the ``progress`` of a task whose record failed (NetSuite documents no value).
    """

    permanent: dict[str, tuple[int, str, str, str | None]] = field(default_factory=dict)
    transient: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    crash_after: int | None = None
    crash_applies: bool = False
    job_polls: int = 1
    failed_progress: str = "failed"
    status_on_success: int = 204
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    external: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    jobs: dict[int, Job] = field(default_factory=dict)
    idempotency: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    stats: Stats = field(default_factory=Stats)
    governor: ConcurrencyGovernor = field(default_factory=lambda: ConcurrencyGovernor(8))

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._next_id = 1000

    # -- helpers for tests

    def write_calls(self) -> list[Call]:
        return [call for call in self.calls if call.method != "GET"]

    def sent_keys(self) -> list[str]:
        """Return the key of every single-record write request, in order (repeats included)."""
        keys = []
        for call in self.write_calls():
            match = RECORD.match(call.path)
            if match and match["key"]:
                keys.append(match["key"].removeprefix("eid:"))
            elif call.body() and "externalId" in call.body():
                keys.append(call.body()["externalId"])
        return keys

    def by_external_id(self, record_type: str, external_id: str) -> dict[str, Any] | None:
        internal = self.external.get((record_type, external_id))
        return None if internal is None else self.records[(record_type, internal)]

    # -- the client interface

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        with self._lock:
            self.stats.requests += 1
            self.calls.append(Call(method, path, params, dict(headers or {}), data, kwargs))
            if method == "GET":
                return self._get(path)
            return self._write(method, path, dict(headers or {}), data)

    # -- writes

    def _write(
        self, method: str, path: str, headers: dict[str, str], data: bytes | None
    ) -> requests.Response:
        match = RECORD.match(path)
        if not match:
            return self._fail(404, "NONEXISTENT_ID", f"unknown path {path}")
        if headers.get("Prefer") == "respond-async":
            return self._batch(method, match["type"], headers, data)
        key = match["key"]
        body = self._body(headers, data, "application/json")
        if method == "PUT":
            if not key or not key.startswith("eid:") or not EXTERNAL_ID.fullmatch(key[4:]):
                return self._fail(400, "INVALID_REQUEST", "PUT needs eid:<externalId>")
            return self._apply(match["type"], key[4:], lambda: self._upsert(match["type"], key[4:], body))
        if method == "POST" and key is None:
            external_id = body.get("externalId")
            return self._apply(match["type"], external_id, lambda: self._create(match["type"], body))
        if method == "PATCH" and key and key.isdigit():
            return self._apply(match["type"], key, lambda: self._update(match["type"], key, body))
        return self._fail(400, "INVALID_REQUEST", "unsupported method or path")

    def _body(self, headers: dict[str, str], data: bytes | None, content_type: str) -> dict[str, Any]:
        if not headers.get("Content-Type", "").startswith(content_type):
            self._fail(400, "INVALID_HEADER", "wrong Content-Type")
        body = json.loads((data or b"").decode("utf-8"))
        if not isinstance(body, dict):
            self._fail(400, "INVALID_CONTENT", "body is not an object")
        return body

    def _apply(self, record_type: str, key: str | None, action) -> requests.Response:
        self._inject(key)
        internal_id = action()
        response = _response(self.status_on_success)
        response.headers["Location"] = f"{HOST}/services/rest/record/v1/{record_type}/{internal_id}"
        return response

    def _inject(self, key: str | None) -> None:
        """Raise the failure injected for this key, or a crash; count the write otherwise."""
        if self.crash_after is not None and self.writes >= self.crash_after:
            if not self.crash_applies:
                raise SimulatedCrash(f"simulated crash after {self.writes} writes")
            self.crash_applies_pending = True
        if key is not None and self.throttled.get(key, 0) > 0:
            self.throttled[key] -= 1
            raise NetSuiteConcurrencyLimitError(
                "concurrency limit", status=429, code="CONCURRENCY_LIMIT_EXCEEDED"
            )
        if key is not None and self.transient.get(key, 0) > 0:
            self.transient[key] -= 1
            raise NetSuiteTransientError("503 persisted", status=503, code="UNEXPECTED_ERROR")
        if key is not None and key in self.permanent:
            status, code, detail, error_path = self.permanent[key]
            self._fail(status, code, detail, error_path)
        self.writes += 1

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _upsert(self, record_type: str, external_id: str, body: dict[str, Any]) -> str:
        internal = self.external.get((record_type, external_id)) or self._new_id()
        self.external[(record_type, external_id)] = internal
        self.records[(record_type, internal)] = {**self.records.get((record_type, internal), {}), **body}
        return self._maybe_crash_after_apply(internal)

    def _create(self, record_type: str, body: dict[str, Any]) -> str:
        internal = self._new_id()
        if body.get("externalId"):
            if (record_type, body["externalId"]) in self.external:
                self._fail(400, "USER_ERROR", "a record with this external ID already exists")
            self.external[(record_type, body["externalId"])] = internal
        self.records[(record_type, internal)] = dict(body)
        return self._maybe_crash_after_apply(internal)

    def _update(self, record_type: str, internal: str, body: dict[str, Any]) -> str:
        if (record_type, internal) not in self.records:
            self._fail(404, "NONEXISTENT_ID", "Record does not exist.")
        self.records[(record_type, internal)].update(body)
        return self._maybe_crash_after_apply(internal)

    def _maybe_crash_after_apply(self, internal: str) -> str:
        if getattr(self, "crash_applies_pending", False):
            self.crash_applies_pending = False
            raise SimulatedCrash("simulated crash after the write was applied")
        return internal

    # -- asynchronous batches

    def _batch(self, method: str, record_type: str, headers: dict[str, str], data: bytes | None):
        self._body(headers, data, "application/vnd.oracle.resource+json; type=collection")
        key = headers.get("X-NetSuite-Idempotency-Key")
        if key in self.idempotency:
            location = f"{HOST}/services/rest/async/v1/job/{self.idempotency[key]}"
            detail = "A request with the same idempotency key is already submitted."
            self._fail(400, "IDEMPOTENCY_ERROR", detail, headers={"Location": location})
        if self.crash_after is not None and self.writes >= self.crash_after:
            raise SimulatedCrash("simulated crash before the batch was accepted")
        items = json.loads(data.decode("utf-8"))["items"]
        tasks = [self._batch_item(method, record_type, item) for item in items]
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = Job(tasks=tasks, polls_left=self.job_polls)
        if key:
            self.idempotency[key] = job_id
        response = _response(202)
        response.headers["Location"] = f"{HOST}/services/rest/async/v1/job/{job_id}"
        response.headers["Preference-Applied"] = "respond-async"
        return response

    def _batch_item(self, method: str, record_type: str, item: dict[str, Any]) -> dict[str, Any]:
        key = item.get("id") if method == "PATCH" else item.get("externalId")
        try:
            if method == "PUT":
                body = {k: v for k, v in item.items() if k != "externalId"}
                self._apply(record_type, key, lambda: self._upsert(record_type, key, body))
            elif method == "POST":
                self._apply(record_type, key, lambda: self._create(record_type, item))
            else:
                body = {k: v for k, v in item.items() if k != "id"}
                self._apply(record_type, str(key), lambda: self._update(record_type, str(key), body))
        except NetSuiteAPIError as exc:
            error = {
                "type": "x",
                "title": "Bad Request",
                "status": exc.status,
                "o:errorDetails": [
                    {
                        "detail": exc.detail,
                        "o:errorCode": exc.code,
                        **({"o:errorPath": exc.error_path} if exc.error_path else {}),
                    }
                ],
            }
            return {"progress": self.failed_progress, "result": error}
        return {"progress": "succeeded"}

    def _get(self, path: str) -> requests.Response:
        match = JOB.match(path)
        if not match:
            self._fail(404, "NONEXISTENT_ID", f"unknown path {path}")
        job = self.jobs.get(int(match["job"]))
        if job is None:
            self._fail(404, "NONEXISTENT_ID", "no such job")
        base = f"{HOST}/services/rest/async/v1/job/{match['job']}"
        rest = match["rest"]
        if not rest:
            job.polls += 1
            completed = job.polls >= job.polls_left
            return _response(
                200,
                {
                    "id": match["job"],
                    "completed": completed,
                    "progress": "succeeded" if completed else "pending",
                    "links": [{"rel": "self", "href": base}],
                    "task": {"links": [{"rel": "related", "href": base + "/task"}]},
                },
            )
        if rest == "/task":
            items = [
                {"links": [{"rel": "self", "href": f"{base}/task/{n + 1}"}]} for n in range(len(job.tasks))
            ]
            return _response(200, {"items": items, "count": len(items), "hasMore": False})
        task = job.tasks[int(match["task"]) - 1]
        if rest.endswith("/result"):
            return _response(200, task.get("result") or {})
        return _response(
            200,
            {
                "completed": True,
                "progress": task["progress"],
                "links": [{"rel": "self", "href": f"{base}/task/{match['task']}"}],
            },
        )

    # -- errors

    def _fail(self, status: int, code: str, detail: str, error_path: str | None = None, headers=None):
        first = {"detail": detail, "o:errorCode": code, **({"o:errorPath": error_path} if error_path else {})}
        body = {
            "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
            "title": "Bad Request",
            "status": status,
            "o:errorDetails": [first],
        }
        response = _response(status, body)
        response.headers.update(headers or {})
        raise parse_error_response(response, NetSuiteAPIError)


def _response(status: int, body: Any = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict()
    response._content = b"" if body is None else json.dumps(body).encode("utf-8")
    if body is not None:
        response.headers["Content-Type"] = "application/json"
    response.url = HOST
    return response
