"""Fixtures of the reliability suite: one emulator per module (fault settings change), recorded requests."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from airflow_provider_netsuite.core.client import RetryPolicy
from tests.conftest import CLIENT_ID, SCOPES, Emulator, KeyPair, start_emulator, stop_emulator

#: Every transient kind the emulator can inject, except ``slow`` (which only costs time).
ALL_KINDS = {"429": 1, "500": 1, "502": 1, "503": 1, "reset": 1, "truncate": 1, "html": 1}
#: 30 % of requests fail transiently. The HTML page comes with status 200 (the harder case, and without
#: the maintenance page's ``Retry-After: 60``, which the client honours and would make the suite slow).
FAULT_MIX = {"seed": 7, "rate": 0.3, "kinds": ALL_KINDS, "html_status": 200}
#: Retries for runs under FAULT_MIX: with the default 7, one request in about 4,500 meets 8 faults in a row
#: (0.3 ** 7 after the first), which over a few hundred requests fails a run now and then; with 15 it is
#: one in about 70 million.
PATIENT_RETRIES = {"max_retries": 15, "max_retry_wait": 300}


@pytest.fixture(scope="module")
def module_emulator(tmp_path_factory) -> Iterator[Emulator]:
    """An emulator of this module's own, so that its fault settings cannot leak into other modules."""
    instance = start_emulator(tmp_path_factory.mktemp("reliability-emulator"))
    yield instance
    stop_emulator(instance)


@pytest.fixture(scope="module")
def module_key(module_emulator, rsa_keypair) -> KeyPair:
    keypair = KeyPair(kind=rsa_keypair.kind, key_path=rsa_keypair.key_path, cert_path=rsa_keypair.cert_path)
    keypair.certificate_id = "cert-reliability"
    return module_emulator.register(keypair)


@pytest.fixture(scope="module")
def module_extra(module_emulator, module_key) -> dict[str, Any]:
    """Connection extras pointing at this module's emulator."""
    return {
        "account_id": module_emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": module_key.certificate_id,
        "private_key": module_key.private_key,
        "scopes": SCOPES,
        "base_url": module_emulator.base_url,
    }


def use_connection(monkeypatch, extra: dict[str, Any], conn_id: str = "netsuite_default") -> None:
    """Expose ``extra`` to Airflow as the connection ``conn_id`` (environment variable)."""
    value = json.dumps({"conn_type": "netsuite", "extra": extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)


@dataclass
class SentRequest:
    """One HTTP request as it left the client, and what came of it."""

    method: str
    url: str
    status: int | None
    error: str | None = None


@dataclass
class RequestLog:
    """Every request sent through ``requests`` while installed (all sessions, all threads)."""

    sent: list[SentRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: SentRequest) -> None:
        with self.lock:
            self.sent.append(item)

    def urls(self) -> list[str]:
        with self.lock:
            return [item.url for item in self.sent]


@pytest.fixture
def request_log(monkeypatch) -> RequestLog:
    """Record every request at the transport adapter: nothing can reach a host unseen."""
    log = RequestLog()
    original = HTTPAdapter.send

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            response = original(self, request, *args, **kwargs)
        except Exception as error:
            log.add(SentRequest(request.method or "", request.url or "", None, type(error).__name__))
            raise
        log.add(SentRequest(request.method or "", request.url or "", response.status_code))
        return response

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return log


def files_in(directory: Path) -> list[str]:
    """Return the names of all files under ``directory`` (recursively), sorted."""
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


@pytest.fixture
def fast_backoff(monkeypatch) -> None:
    """Shorten the client's backoff waits (ceiling 0.5 s) so that hundreds of retries take seconds.

    Which failures are retried, how often and when the client gives up are unchanged; the backoff
    schedule itself is covered by the core tests.
    """
    monkeypatch.setattr(
        RetryPolicy, "backoff", lambda self, attempt: random.uniform(0, min(0.5, 0.02 * 2 ** (attempt - 1)))
    )
