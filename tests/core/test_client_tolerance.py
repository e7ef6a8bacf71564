"""NetSuiteClient with answers NetSuite or what sits in front of it may give: retried assertions, pages that
are not pages, concurrency refusals that are not 429, odd token answers and scopes, Retry-After budgets,
and token endpoint failures seen by many threads at once.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from urllib.parse import parse_qsl

import jwt
import pytest
import requests
from cryptography import x509

from airflow_provider_netsuite.core import assertion as assertion_module
from airflow_provider_netsuite.core.client import NetSuiteClient, RetryPolicy
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import (
    NetSuiteAuthError,
    NetSuiteConcurrencyLimitError,
    NetSuiteConfigError,
    NetSuiteTokenError,
    NetSuiteTransientError,
)
from airflow_provider_netsuite.core.tokens import AccessToken, TokenCache
from airflow_provider_netsuite.get_provider_info import get_provider_info
from tests.conftest import CLIENT_ID, TBA_EXTRA, run_threads

try:
    from tests.core.test_client import CERT_ID, FakeNetSuite, Recorder, _client
except ImportError:  # tests/ is not a package: pytest put this directory on sys.path instead
    from test_client import CERT_ID, FakeNetSuite, Recorder, _client

PAGE = {"links": [], "count": 1, "hasMore": False, "offset": 0, "totalResults": 1, "items": [{"id": "7"}]}
CONCURRENCY_CODES = [
    "CONCURRENCY_LIMIT_EXCEEDED",
    "SSS_REQUEST_LIMIT_EXCEEDED",
    "WS_REQUEST_BLOCKED",
    "WS_CONCUR_SESSION_DISALLWD",
]


@pytest.fixture
def extra(rsa_keypair) -> dict:
    return {
        "account_id": "1234567-sb1",
        "client_id": CLIENT_ID,
        "certificate_id": CERT_ID,
        "private_key": rsa_keypair.private_key,
    }


@pytest.fixture
def config(extra) -> ConnectionConfig:
    return ConnectionConfig.from_extra(extra)


@pytest.fixture
def fake(rsa_keypair) -> FakeNetSuite:
    return FakeNetSuite(x509.load_pem_x509_certificate(rsa_keypair.cert_path.read_bytes()).public_key())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _refusal(status: int, code: str, *, top_level: bool) -> dict:
    """Return a REST error body carrying ``code`` at the top level or in ``o:errorDetails``."""
    if top_level:
        return {"title": "Request blocked", "status": status, "o:errorCode": code}
    return {
        "title": "Bad Request",
        "status": status,
        "o:errorCode": "USER_ERROR",
        "o:errorDetails": [{"detail": "Request limit exceeded.", "o:errorCode": code}],
    }


def _assertions(fake: FakeNetSuite) -> list[str]:
    return [dict(parse_qsl(request.body))["client_assertion"] for request in fake.token_requests]


# --- Token endpoint retries sign a new client assertion each time ------------------------------------


def test_each_token_attempt_signs_a_new_assertion(config, fake, recorder, monkeypatch):
    clock = [time.time() - 120]  # in the past, so the fake's check of the last assertion accepts its iat
    monkeypatch.setattr(assertion_module, "time", SimpleNamespace(time=lambda: clock[0]))

    def sleep(seconds: float) -> None:
        recorder.sleep(seconds)
        clock[0] += 5

    fake.token_script.extend([(503, b"<html>busy</html>"), requests.ConnectionError("reset")])
    client = _client(config, fake, recorder)
    client.auth.sleep = sleep
    assert client.request("GET", "/x").status_code == 200

    assertions = _assertions(fake)
    claims = [jwt.decode(a, options={"verify_signature": False}) for a in assertions]
    assert len(assertions) == 3
    assert len({c["jti"] for c in claims}) == 3
    assert [c["iat"] for c in claims] == sorted({c["iat"] for c in claims})  # each attempt signs anew
    assert all(c["exp"] - c["iat"] == 300 for c in claims)
    assert all(a in recorder.masked for a in assertions)


# --- A 2xx SuiteQL answer that is not a page is incomplete, never "no rows" --------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"{}", b'{"items": null, "hasMore": false}', b'{"items": {}}', b"[]", b"null", b'"ok"'],
    ids=["empty", "empty-object", "items-null", "items-object", "array", "null", "string"],
)
def test_a_suiteql_answer_without_items_is_retried(config, fake, recorder, raw):
    fake.data_script.extend([(200, raw, {"Content-Type": "application/json"}), (200, PAGE)])
    client = _client(config, fake, recorder)
    page = client.suiteql_page("SELECT id FROM customer", limit=10)
    assert page["items"] == [{"id": "7"}]
    assert len(fake.data_requests) == 2
    assert len(recorder.waits) == 1


def test_a_suiteql_answer_that_stays_incomplete_is_an_error(config, fake, recorder):
    fake.data_script.extend([(200, b"{}", {"Content-Type": "application/json"})] * 10)
    client = _client(config, fake, recorder, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(NetSuiteTransientError, match="no items list"):
        client.suiteql_page("SELECT id FROM customer")
    assert len(fake.data_requests) == 3


# --- Concurrency refusals that are not 429, TBA included ---------------------------------------------


@pytest.mark.parametrize("code", CONCURRENCY_CODES)
@pytest.mark.parametrize("status", [400, 401, 403])
@pytest.mark.parametrize("top_level", [True, False], ids=["top-level", "in-details"])
def test_a_concurrency_code_is_retried_like_a_429(config, fake, recorder, code, status, top_level):
    fake.data_script.extend([(status, _refusal(status, code, top_level=top_level))] * 2)
    client = _client(config, fake, recorder, max_concurrency=8)
    assert client.request("GET", "/x").status_code == 200
    assert len(fake.data_requests) == 3
    assert len(recorder.waits) == 2
    assert client.stats.throttled == 2
    assert client.governor.limit == 2
    assert len(fake.token_requests) == 1  # no re-mint: the limit is not a credential problem


@pytest.mark.parametrize("status", [400, 401])
def test_a_persistent_concurrency_code_ends_in_a_concurrency_error(config, fake, recorder, status):
    fake.data_script.extend([(status, _refusal(status, "SSS_REQUEST_LIMIT_EXCEEDED", top_level=False))] * 9)
    client = _client(config, fake, recorder, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(NetSuiteConcurrencyLimitError, match="concurrency") as info:
        client.request("GET", "/x")
    assert info.value.status == status
    assert info.value.code == "SSS_REQUEST_LIMIT_EXCEEDED"
    assert "SSS_REQUEST_LIMIT_EXCEEDED" in str(info.value)
    assert len(fake.data_requests) == 4
    assert all(0 <= wait <= 0.5 * 2**index for index, wait in enumerate(recorder.waits))  # jittered


class _TBAFake(FakeNetSuite):
    """Answer signed (TBA) data requests from the script, then with 200."""

    def _data(self, request):
        with self.lock:
            self.data_requests.append(request)
            item = self.data_script.popleft() if self.data_script else None
        if item is not None:
            return self._scripted(request, item)
        return self._scripted(request, (200, {"ok": True}))


#: NetSuite's 401 for refused credentials, as TBA users also see the concurrency limit reported.
LOGIN_REFUSAL = _refusal(401, "INVALID_LOGIN", top_level=False)


def _tba_client(fake: FakeNetSuite, recorder: Recorder, **kwargs) -> NetSuiteClient:
    session = requests.Session()
    session.mount("https://", fake)
    config = ConnectionConfig.from_extra(TBA_EXTRA)
    return NetSuiteClient(config, session=session, sleep=recorder.sleep, **kwargs)


def test_tba_401_with_a_concurrency_code_is_retried(recorder):
    fake = _TBAFake()
    body = _refusal(401, "CONCURRENCY_LIMIT_EXCEEDED", top_level=False)
    fake.data_script.extend([(401, body), (401, body)])
    client = _tba_client(fake, recorder)
    assert client.request("GET", "/x").status_code == 200
    assert len(fake.data_requests) == 3
    assert len(recorder.waits) == 2
    assert client.stats.throttled == 2


def test_tba_401_before_any_success_fails_at_once_naming_both_causes(recorder):
    fake = _TBAFake()
    fake.data_script.extend([(401, LOGIN_REFUSAL)] * 5)
    with pytest.raises(NetSuiteAuthError) as info:
        _tba_client(fake, recorder).request("GET", "/x")
    assert len(fake.data_requests) == 1  # no retry can fix a wrong secret
    assert recorder.waits == []
    message = str(info.value)
    assert "concurrency limit" in message
    assert "consumer key ck-abc" in message
    assert "ts-secret-3" not in message
    assert "cs-secret-1" not in message


def test_tba_401_after_a_success_is_backed_off_like_a_429(recorder):
    # Other tools see the concurrency limit arrive as a plain login error under TBA (field case 13).
    fake = _TBAFake()
    fake.data_script.extend([(200, {"ok": 1})] + [(401, LOGIN_REFUSAL)] * 5)
    client = _tba_client(fake, recorder, max_concurrency=4)
    client.request("GET", "/first")
    assert client.request_json("GET", "/second") == {"ok": True}
    assert len(fake.data_requests) == 7
    assert len(recorder.waits) == 5
    assert client.stats.throttled == 5
    assert client.governor.limit < 4


def test_tba_401_after_a_success_that_persists_says_concurrency(recorder):
    fake = _TBAFake()
    fake.data_script.extend([(200, {"ok": 1})] + [(401, LOGIN_REFUSAL)] * 20)
    client = _tba_client(fake, recorder, retry=RetryPolicy(max_attempts=4))
    client.request("GET", "/first")
    with pytest.raises(NetSuiteConcurrencyLimitError) as info:
        client.request("GET", "/second")
    assert len(fake.data_requests) == 1 + 4
    message = str(info.value)
    assert "concurrency limit" in message
    assert "401 INVALID_LOGIN" in message
    assert "max_concurrency" in message
    assert info.value.status == 401


# --- Token endpoint answers: token_type null, 429 with Retry-After -----------------------------------


def test_token_type_null_counts_as_bearer(config, fake, recorder):
    fake.token_script.append((200, {"access_token": "tok-null-type", "token_type": None, "expires_in": 3600}))
    assert _client(config, fake, recorder).auth.token().value == "tok-null-type"


def test_token_endpoint_429_honours_retry_after(config, fake, recorder):
    fake.token_script.append((429, {"error": "too_many_requests"}, {"Retry-After": "7"}))
    assert _client(config, fake, recorder).request("GET", "/x").status_code == 200
    assert len(fake.token_requests) == 2
    assert len(recorder.waits) == 1
    assert 7.0 <= recorder.waits[0] <= 8.0


def test_token_endpoint_429s_end_in_an_error_that_says_concurrency(config, fake, recorder):
    fake.token_script.extend([(429, {"error": "too_many_requests"}, {"Retry-After": "1"})] * 10)
    with pytest.raises(NetSuiteTokenError, match="concurrency limit") as info:
        _client(config, fake, recorder).request("GET", "/x")
    assert info.value.error == "temporarily_unavailable"
    assert all(1.0 <= wait <= 2.0 for wait in recorder.waits)


# --- Scopes present but blank, or separated by spaces ------------------------------------------------


@pytest.mark.parametrize("scopes", ["", "  ", ",", " , ,", "\t"])
def test_blank_scopes_are_refused_naming_the_field(extra, scopes):
    extra["scopes"] = scopes
    with pytest.raises(NetSuiteConfigError) as info:
        ConnectionConfig.from_extra(extra)
    assert info.value.field == "scopes"
    assert str(info.value).startswith("scopes:")


def test_absent_or_null_scopes_default_to_rest_webservices(extra):
    assert ConnectionConfig.from_extra(extra).scopes == ("rest_webservices",)
    assert ConnectionConfig.from_extra({**extra, "scopes": None}).scopes == ("rest_webservices",)


@pytest.mark.parametrize(
    "scopes", ["rest_webservices restlets", "rest_webservices  restlets\n", "rest_webservices, restlets"]
)
def test_scopes_separated_by_spaces_or_commas(extra, scopes):
    extra["scopes"] = scopes
    assert ConnectionConfig.from_extra(extra).scopes == ("rest_webservices", "restlets")


def test_the_form_fills_scopes_so_an_untouched_field_works(extra):
    field = get_provider_info()["connection-types"][0]["conn-fields"]["scopes"]
    assert field["schema"]["default"] == "rest_webservices"
    extra["scopes"] = field["schema"]["default"]
    assert ConnectionConfig.from_extra(extra).scopes == ("rest_webservices",)


# --- Retry-After with jitter, and a last attempt within the wait budget ------------------------------


def test_retry_after_gets_a_small_jitter(config, fake, recorder):
    throttled = (429, _refusal(429, "CONCURRENCY_LIMIT_EXCEEDED", top_level=False), {"Retry-After": "2"})
    fake.data_script.extend([throttled] * 5)
    assert _client(config, fake, recorder).request("GET", "/x").status_code == 200
    assert len(recorder.waits) == 5
    assert all(2.0 <= wait <= 3.0 for wait in recorder.waits)
    assert len(set(recorder.waits)) > 1  # workers told the same delay do not retry in step


def test_retry_after_beyond_the_budget_waits_the_rest_then_tries_once_more(config, fake, recorder):
    throttled = (429, _refusal(429, "CONCURRENCY_LIMIT_EXCEEDED", top_level=False), {"Retry-After": "600"})
    fake.data_script.extend([throttled, throttled])
    client = _client(config, fake, recorder, retry=RetryPolicy(max_total_wait=300))
    with pytest.raises(NetSuiteConcurrencyLimitError, match="concurrency"):
        client.request("GET", "/x")
    assert recorder.waits == [300.0]
    assert len(fake.data_requests) == 2


def test_retry_after_beyond_the_budget_can_still_succeed(config, fake, recorder):
    fake.data_script.append((503, b"<html>maintenance</html>", {"Retry-After": "900"}))
    client = _client(config, fake, recorder, retry=RetryPolicy(max_total_wait=60))
    assert client.request("GET", "/x").status_code == 200
    assert recorder.waits == [60.0]


# --- A failed mint is shared with the threads waiting for it -----------------------------------------


def test_threads_waiting_for_a_failed_mint_do_not_mint_again():
    cache, calls, errors = TokenCache(), [], []
    barrier = threading.Barrier(10)

    def failing_mint() -> AccessToken:
        calls.append(1)
        time.sleep(0.1)
        raise NetSuiteTokenError("refused", error="invalid_grant", status=400)

    def work() -> None:
        barrier.wait()
        try:
            cache.get("key", failing_mint)
        except NetSuiteTokenError as error:
            errors.append(error)

    run_threads(threading.Thread(target=work) for _ in range(10))
    assert len(calls) == 1
    assert len(errors) == 10


def test_twenty_clients_seeing_invalid_grant_send_one_token_request(config, fake):
    fake.token_script.extend([(400, {"error": "invalid_grant"})] * 20)
    cache, errors, session = TokenCache(), [], requests.Session()
    session.mount("https://", fake)
    clients = [NetSuiteClient(config, session=session, token_cache=cache) for _ in range(20)]
    barrier = threading.Barrier(20)

    def work(client: NetSuiteClient) -> None:
        barrier.wait()
        try:
            client.request("GET", "/x")
        except NetSuiteTokenError as error:
            errors.append(error.error)

    run_threads(threading.Thread(target=work, args=(client,)) for client in clients)
    assert errors == ["invalid_grant"] * 20
    assert len(fake.token_requests) == 1


def test_a_failed_mint_is_forgotten_after_a_few_seconds(monkeypatch):
    cache, now = TokenCache(), [1000.0]
    monkeypatch.setattr("airflow_provider_netsuite.core.tokens.time.monotonic", lambda: now[0])

    def failing() -> AccessToken:
        raise RuntimeError("token endpoint down")

    with pytest.raises(RuntimeError):
        cache.get("key", failing)
    with pytest.raises(RuntimeError):
        cache.get("key", lambda: AccessToken("not-asked", time.time() + 3600))  # still remembered
    now[0] += cache.failure_memory + 0.1
    assert cache.get("key", lambda: AccessToken("fresh", time.time() + 3600)).value == "fresh"
