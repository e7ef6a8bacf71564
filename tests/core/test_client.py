"""NetSuiteClient and its auth against a fake NetSuite: tokens, 401 re-mint, retries, governance, TBA."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import jwt
import pytest
import requests
from cryptography import x509
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from airflow_provider_netsuite.core.auth import ClientCredentialsAuth, TokenBasedAuth
from airflow_provider_netsuite.core.client import NetSuiteClient, RetryPolicy, parse_retry_after
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import (
    NetSuiteAPIError,
    NetSuiteAuthError,
    NetSuiteConcurrencyLimitError,
    NetSuiteTokenError,
    NetSuiteTransientError,
)
from airflow_provider_netsuite.core.tokens import TokenCache
from tests.conftest import CLIENT_ID, CONCURRENCY_LIMIT_BODY, TBA_EXTRA, run_threads

BASE = "https://1234567-sb1.suitetalk.api.netsuite.com"
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
CERT_ID = "cert-xyz-123"
UNAUTHORIZED = {
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html",
    "title": "Unauthorized",
    "status": 401,
    "o:errorDetails": [{"detail": "Invalid login attempt.", "o:errorCode": "INVALID_LOGIN"}],
}
THROTTLED = {name: value for name, value in CONCURRENCY_LIMIT_BODY.items() if name != "type"}


def _response(request, status=200, body=None, headers=None, raw=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    response.headers = CaseInsensitiveDict(headers or {"Content-Type": "application/json"})
    response.url = request.url
    response.request = request
    response.encoding = "utf-8"
    return response


class FakeNetSuite(BaseAdapter):
    """A requests transport that plays NetSuite's token endpoint and data endpoints.

    ``token_script`` and ``data_script`` are queues of scripted answers (``(status, body, headers)``,
    raw-bytes tuples, or exceptions to raise); when empty, the fake answers like a healthy account.
    """

    def __init__(self, public_key=None) -> None:
        super().__init__()
        self.public_key = public_key
        self.token_script: deque = deque()
        self.data_script: deque = deque()
        self.valid_tokens: set[str] = set()
        self.token_requests: list = []
        self.data_requests: list = []
        self.lock = threading.Lock()
        self.delay = 0.0

    def close(self) -> None:
        pass

    def send(self, request, **kwargs):
        if urlsplit(request.url).path == TOKEN_PATH:
            return self._token(request)
        return self._data(request)

    def _scripted(self, request, item):
        if isinstance(item, BaseException):
            raise item
        status, body, *rest = item
        headers = rest[0] if rest else None
        if isinstance(body, bytes):
            return _response(request, status, raw=body, headers=headers or {"Content-Type": "text/html"})
        return _response(request, status, body, headers)

    def _token(self, request):
        with self.lock:
            self.token_requests.append(request)
            item = self.token_script.popleft() if self.token_script else None
        if item is not None:
            return self._scripted(request, item)
        form = dict(parse_qsl(request.body))
        assert form["grant_type"] == "client_credentials"
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        if self.public_key is not None:
            header = jwt.get_unverified_header(form["client_assertion"])
            jwt.decode(
                form["client_assertion"], self.public_key, algorithms=[header["alg"]], audience=request.url
            )
        time.sleep(self.delay)
        with self.lock:
            value = f"access-token-{len(self.token_requests)}-{'z' * 20}"
            self.valid_tokens.add(value)
        return _response(request, 200, {"access_token": value, "expires_in": 3600, "token_type": "Bearer"})

    def _data(self, request):
        with self.lock:
            self.data_requests.append(request)
            header = request.headers.get("Authorization", "")
            header = header.decode() if isinstance(header, bytes) else header
            authorized = header.removeprefix("Bearer ") in self.valid_tokens
            item = self.data_script.popleft() if (self.data_script and authorized) else None
        if not authorized:
            return _response(
                request,
                401,
                UNAUTHORIZED,
                {"WWW-Authenticate": 'Bearer realm="1234567_SB1", error="invalid_token"'},
            )
        if item is not None:
            return self._scripted(request, item)
        path = urlsplit(request.url).path
        if path == "/services/rest/query/v1/suiteql":  # a SuiteQL answer is always a page with items
            return _response(request, 200, {"ok": True, "path": path, "items": [], "hasMore": False})
        return _response(request, 200, {"ok": True, "path": path})

    def revoke_all(self) -> None:
        with self.lock:
            self.valid_tokens.clear()


@pytest.fixture
def config(rsa_keypair) -> ConnectionConfig:
    return ConnectionConfig.from_extra(
        {
            "account_id": "1234567-sb1",
            "client_id": CLIENT_ID,
            "certificate_id": CERT_ID,
            "private_key": rsa_keypair.private_key,
            "scopes": ["rest_webservices", "restlets"],
        }
    )


@pytest.fixture
def fake(rsa_keypair) -> FakeNetSuite:
    return FakeNetSuite(x509.load_pem_x509_certificate(rsa_keypair.cert_path.read_bytes()).public_key())


class Recorder:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.masked: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def mask(self, value: str) -> None:
        self.masked.append(value)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _client(config, fake, recorder, **kwargs) -> NetSuiteClient:
    session = requests.Session()
    session.mount("https://", fake)
    return NetSuiteClient(
        config,
        session=session,
        token_cache=TokenCache(),
        sleep=recorder.sleep,
        secret_masker=recorder.mask,
        **kwargs,
    )


def _secret_texts(rsa_keypair) -> list[str]:
    return [line[:24] for line in rsa_keypair.private_key.splitlines()[1:-1]]


# --- tokens ------------------------------------------------------------------------------------------


def test_token_minted_once_and_reused(config, fake, recorder, caplog):
    client = _client(config, fake, recorder)
    with caplog.at_level(logging.INFO, logger="airflow_provider_netsuite"):
        for _ in range(3):
            assert client.request_json("GET", "/services/rest/record/v1/customer/1")["ok"] is True
    assert len(fake.token_requests) == 1
    assert client.stats.token_mints == 1
    minted = [r for r in caplog.records if "Minted" in r.getMessage()]
    assert len(minted) == 1
    message = minted[0].getMessage()
    assert "1234567_SB1" in message
    assert CLIENT_ID in message
    assert CERT_ID in message
    token = next(iter(fake.valid_tokens))
    assert token not in caplog.text
    assert token in recorder.masked
    assertion = dict(parse_qsl(fake.token_requests[0].body))["client_assertion"]
    assert assertion in recorder.masked


def test_assertion_carries_ids_and_token_url(config, fake, recorder):
    _client(config, fake, recorder).request("GET", "/x")
    assertion = dict(parse_qsl(fake.token_requests[0].body))["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert header["kid"] == CERT_ID
    assert header["alg"] == "PS256"
    assert claims["iss"] == CLIENT_ID
    assert claims["aud"] == BASE + TOKEN_PATH
    assert claims["scope"] == ["rest_webservices", "restlets"]


def test_20_threads_one_token(config, fake, recorder):
    fake.delay = 0.1
    client = _client(config, fake, recorder, max_concurrency=20)
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def work():
        barrier.wait()
        try:
            client.request("GET", "/x")
        except BaseException as exc:
            errors.append(exc)

    run_threads(threading.Thread(target=work) for _ in range(20))
    assert not errors
    assert len(fake.token_requests) == 1


def test_expires_in_missing_and_lowercase_bearer(config, fake, recorder):
    fake.token_script.append((200, {"access_token": "tok-abcdef", "token_type": "bearer"}))
    fake.valid_tokens.add("tok-abcdef")
    auth = _client(config, fake, recorder).auth
    token = auth.token()
    assert token.value == "tok-abcdef"
    assert 3590 < token.expires_at - time.time() <= 3600


EXPECTED_CAUSES = {
    "invalid_client": ["integration record", "client ID"],
    "invalid_grant": ["sandbox refresh", "expired or revoked", "PS256", "clock", "Log in using OAuth 2.0"],
    "unauthorized_client": ["Log in using OAuth 2.0", "integration record"],
    "invalid_request": ["base_url", "iat/exp"],
    "invalid_scope": ["scopes match the integration record"],
    "unsupported_grant_type": ["Client Credentials"],
}


def _assert_refused_once(error, expected: list[str], rsa_keypair, fake, recorder) -> None:
    """The token error names the IDs and ``expected`` but no secret; one token request, never retried."""
    message = str(error)
    for text in ["1234567_SB1", CLIENT_ID, CERT_ID, *expected]:
        assert text in message
    for secret in _secret_texts(rsa_keypair):
        assert secret not in message
    assert not any(masked in message for masked in recorder.masked)  # no assertion
    assert len(fake.token_requests) == 1  # never retried
    assert fake.data_requests == []
    assert recorder.waits == []


@pytest.mark.parametrize("code", sorted(EXPECTED_CAUSES))
def test_token_error_codes(config, fake, recorder, rsa_keypair, code):
    status = 401 if code == "invalid_client" else 400
    fake.token_script.append((status, {"error": code}))
    client = _client(config, fake, recorder)
    with pytest.raises(NetSuiteTokenError) as info:
        client.request("GET", "/x")
    error = info.value
    assert error.error == code
    assert error.status == status
    _assert_refused_once(error, EXPECTED_CAUSES[code], rsa_keypair, fake, recorder)


def _rest_error_body(status, code, detail, title="Unauthorized"):
    return {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
        "title": title,
        "status": status,
        "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
    }


INVALID_LOGIN_DETAIL = (
    "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at Setup > "
    "Users/Roles > User Management > View Login Audit Trail."
)


@pytest.mark.parametrize(
    ("status", "body", "code", "expected"),
    [
        (
            401,
            _rest_error_body(401, "INVALID_LOGIN", INVALID_LOGIN_DETAIL),
            "invalid_client",
            ["INVALID_LOGIN", "Invalid login attempt", "integration record", "sandbox refresh", "PS256"],
        ),
        (
            400,
            _rest_error_body(400, "INVALID_LOGIN", INVALID_LOGIN_DETAIL, "Bad Request"),
            "invalid_client",
            ["INVALID_LOGIN", "client ID is the one configured", "expired or revoked", "clock"],
        ),
        (
            400,
            _rest_error_body(400, "INVALID_PARAMETER", "Invalid grant_type.", "Bad Request"),
            "invalid_request",
            ["INVALID_PARAMETER: Invalid grant_type.", "base_url", "iat/exp"],
        ),
        (
            403,
            _rest_error_body(403, "INSUFFICIENT_PERMISSION", "Permission denied.", "Forbidden"),
            "unauthorized_client",
            ["INSUFFICIENT_PERMISSION", "Log in using OAuth 2.0"],
        ),
        (
            401,
            {"title": "Unauthorized", "status": 401},
            "invalid_client",
            ["Unauthorized", "integration record"],
        ),
    ],
)
def test_token_endpoint_rest_style_errors(config, fake, recorder, rsa_keypair, status, body, code, expected):
    fake.token_script.append((status, body))
    with pytest.raises(NetSuiteTokenError) as info:
        _client(config, fake, recorder).request("GET", "/x")
    error = info.value
    assert (error.error, error.status) == (code, status)
    _assert_refused_once(error, ["Login Audit Trail", *expected], rsa_keypair, fake, recorder)


def test_token_endpoint_rest_style_5xx_retried_and_described(config, fake, recorder):
    unexpected = _rest_error_body(500, "UNEXPECTED_ERROR", "An unexpected error occurred.", "Server Error")
    fake.token_script.extend([(500, unexpected)] * 10)
    with pytest.raises(NetSuiteTokenError) as info:
        _client(config, fake, recorder).request("GET", "/x")
    assert info.value.error == "temporarily_unavailable"
    assert "HTTP 500 UNEXPECTED_ERROR: An unexpected error occurred." in str(info.value)
    assert len(fake.token_requests) == 4


@pytest.mark.parametrize(
    ("status", "raw", "headers", "code"),
    [
        (
            200,
            b"<!DOCTYPE html><html><body>Login</body></html>",
            {"Content-Type": "text/html"},
            "html_response",
        ),
        (
            400,
            b"<html><body>Bad</body></html>",
            {"Content-Type": "text/html; charset=utf-8"},
            "html_response",
        ),
        (403, b"Forbidden by proxy", {"Content-Type": "text/plain"}, "invalid_response"),
        (200, b'{"token_type": "Bearer"}', {"Content-Type": "application/json"}, "invalid_response"),
        (
            200,
            b'{"access_token": "x", "token_type": "MAC"}',
            {"Content-Type": "application/json"},
            "invalid_response",
        ),
    ],
)
def test_token_endpoint_odd_answers(config, fake, recorder, status, raw, headers, code):
    fake.token_script.append((status, raw, headers))
    with pytest.raises(NetSuiteTokenError) as info:
        _client(config, fake, recorder).request("GET", "/x")
    assert info.value.error == code
    assert CERT_ID in str(info.value)
    assert "base_url" in str(info.value)
    assert len(fake.token_requests) == 1


def test_token_endpoint_5xx_and_network_errors_retried(config, fake, recorder):
    fake.token_script.extend([(503, b"<html>down</html>"), requests.ConnectionError("reset")])
    client = _client(config, fake, recorder)
    assert client.request("GET", "/x").status_code == 200
    assert len(fake.token_requests) == 3
    assert len(recorder.waits) == 2


def test_token_endpoint_down_gives_up(config, fake, recorder):
    fake.token_script.extend([(502, b"bad gateway")] * 10)
    with pytest.raises(NetSuiteTokenError) as info:
        _client(config, fake, recorder).request("GET", "/x")
    assert info.value.error == "temporarily_unavailable"
    assert len(fake.token_requests) == 4
    assert fake.data_requests == []


# --- 401 re-mint --------------------------------------------------------------------------------------


def test_401_remints_and_repeats_same_request_once(config, fake, recorder):
    client = _client(config, fake, recorder)
    client.request("GET", "/warmup")
    fake.revoke_all()
    page = client.suiteql_page("SELECT id FROM customer", params=["1"], limit=10, offset=20)
    assert page["ok"] is True
    assert len(fake.token_requests) == 2
    first, second = fake.data_requests[-2:]
    assert (first.method, first.url, first.body) == (second.method, second.url, second.body)
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert client.stats.unauthorized == 1


def test_second_401_raises_auth_error(config, fake, recorder):
    client = _client(config, fake, recorder)
    fake.data_script.append((401, UNAUTHORIZED))
    fake.data_script.append((401, UNAUTHORIZED))
    with pytest.raises(NetSuiteAuthError) as info:
        client.request("GET", "/services/rest/record/v1/customer/1")
    assert not isinstance(info.value, NetSuiteTokenError)
    assert "INVALID_LOGIN" in str(info.value)
    assert "1234567_SB1" in str(info.value)
    assert len(fake.data_requests) == 2
    assert len(fake.token_requests) == 2
    assert recorder.waits == []


def test_ten_threads_seeing_401_remint_once(config, fake, recorder):
    client = _client(config, fake, recorder, max_concurrency=10)
    client.request("GET", "/warmup")
    fake.revoke_all()
    barrier = threading.Barrier(10)
    results: list[int] = []

    def work():
        barrier.wait()
        results.append(client.request("GET", "/x").status_code)

    run_threads(threading.Thread(target=work) for _ in range(10))
    assert results == [200] * 10
    assert len(fake.token_requests) == 2


# --- retries and governance ---------------------------------------------------------------------------


def test_429_with_retry_after_then_success(config, fake, recorder):
    client = _client(config, fake, recorder, max_concurrency=8)
    fake.data_script.extend([(429, THROTTLED, {"Retry-After": "2"}), (429, THROTTLED, {"Retry-After": "3"})])
    assert client.request("GET", "/x").status_code == 200
    first, second = recorder.waits  # Retry-After plus a small jitter
    assert 2.0 <= first <= 2.5
    assert 3.0 <= second <= 4.0
    assert client.governor.limit == 2
    stats = client.stats
    assert (stats.throttled, stats.retries, stats.requests) == (2, 2, 3)


def test_503_with_http_date_retry_after(config, fake, recorder):
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    fake.data_script.append((503, b"<html>busy</html>", {"Retry-After": when}))
    _client(config, fake, recorder).request("GET", "/x")
    assert len(recorder.waits) == 1
    assert 7 <= recorder.waits[0] <= 10.5


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_retried_with_jittered_backoff(config, fake, recorder, status):
    fake.data_script.extend([(status, {"o:errorDetails": [{"o:errorCode": "UNEXPECTED_ERROR"}]})] * 3)
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=30)
    assert _client(config, fake, recorder, retry=policy).request("GET", "/x").status_code == 200
    assert len(recorder.waits) == 3
    for attempt, wait in enumerate(recorder.waits, start=1):
        assert 0 <= wait <= 0.5 * 2 ** (attempt - 1)


def test_429_exhausted_raises_concurrency_error(config, fake, recorder, caplog):
    fake.data_script.extend([(429, THROTTLED)] * 20)
    client = _client(config, fake, recorder, retry=RetryPolicy(max_attempts=5))
    with caplog.at_level(logging.WARNING), pytest.raises(NetSuiteConcurrencyLimitError) as info:
        client.request("GET", "/x")
    message = str(info.value)
    assert "concurrency limit" in message
    assert "max_concurrency" in message
    assert "pool" in message
    assert info.value.status == 429
    assert info.value.code == "CONCURRENCY_LIMIT_EXCEEDED"
    assert len(fake.data_requests) == 5
    assert len(recorder.waits) == 4
    assert caplog.text.count("retrying in") == 4
    assert "lowered concurrency" in caplog.text


def test_total_wait_cap(config, fake, recorder):
    fake.data_script.extend([(503, b"busy", {"Retry-After": "100"})] * 20)
    client = _client(config, fake, recorder, retry=RetryPolicy(max_total_wait=250))
    with pytest.raises(NetSuiteTransientError):
        client.request("GET", "/x")
    first, second, last = recorder.waits
    assert 100.0 <= first <= 101.0
    assert 100.0 <= second <= 101.0
    assert last == pytest.approx(250.0 - first - second)  # what is left of the budget, for a last attempt
    assert len(fake.data_requests) == 4


def test_connection_errors_and_timeouts_retried(config, fake, recorder):
    fake.data_script.extend([requests.ConnectionError("reset by peer"), requests.ReadTimeout("slow")])
    assert _client(config, fake, recorder).request("GET", "/x").status_code == 200
    assert len(recorder.waits) == 2


def test_persistent_timeouts_raise_transient_error(config, fake, recorder):
    fake.data_script.extend([requests.ConnectTimeout("x")] * 10)
    with pytest.raises(NetSuiteTransientError, match="timeout"):
        _client(config, fake, recorder, retry=RetryPolicy(max_attempts=3)).request("GET", "/x")


def test_truncated_json_retried_only_when_json_expected(config, fake, recorder):
    fake.data_script.append((200, b'{"items": [{"id": "1"', {"Content-Type": "application/json"}))
    client = _client(config, fake, recorder)
    assert client.request_json("GET", "/x")["ok"] is True
    assert len(recorder.waits) == 1
    fake.data_script.append((200, b'{"items": [', {"Content-Type": "application/json"}))
    assert client.request("GET", "/x").content == b'{"items": ['


def test_permanent_4xx_raised_at_once(config, fake, recorder):
    body = {
        "title": "Bad Request",
        "status": 400,
        "o:errorDetails": [
            {
                "detail": "Invalid Field Value 9999 for the following field: item",
                "o:errorCode": "INVALID_CONTENT",
                "o:errorPath": "item.items[0].item",
            }
        ],
    }
    fake.data_script.append((400, body))
    with pytest.raises(NetSuiteAPIError) as info:
        _client(config, fake, recorder).request("PATCH", "/services/rest/record/v1/salesOrder/1", json={})
    error = info.value
    assert type(error) is NetSuiteAPIError
    assert (error.status, error.code, error.error_path) == (400, "INVALID_CONTENT", "item.items[0].item")
    assert len(fake.data_requests) == 1
    assert recorder.waits == []


def test_retry_transient_false_does_not_repeat_5xx(config, fake, recorder):
    fake.data_script.append((503, b"busy"))
    with pytest.raises(NetSuiteTransientError):
        _client(config, fake, recorder).request("POST", "/x", json={}, retry_transient=False)
    assert len(fake.data_requests) == 1


def test_suiteql_page_request_shape(config, fake, recorder):
    client = _client(config, fake, recorder)
    client.suiteql_page("SELECT id FROM customer", limit=500, offset=1000)
    request = fake.data_requests[-1]
    parts = urlsplit(request.url)
    assert request.method == "POST"
    assert parts.path == "/services/rest/query/v1/suiteql"
    assert dict(parse_qsl(parts.query)) == {"limit": "500", "offset": "1000"}
    assert request.headers["Prefer"] == "transient"
    assert json.loads(request.body) == {"q": "SELECT id FROM customer"}
    client.suiteql_page("SELECT id FROM customer WHERE id > ?", params=["5"])
    assert json.loads(fake.data_requests[-1].body)["params"] == ["5"]


def test_debug_log_per_request_without_bodies(config, fake, recorder, caplog):
    client = _client(config, fake, recorder)
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_netsuite"):
        client.request("POST", "/services/rest/record/v1/customer", json={"companyname": "Zoë Ångström"})
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("POST /services/rest/record/v1/customer -> 200" in line and "ms" in line for line in lines)
    assert "Zoë" not in caplog.text


def test_refuses_absolute_url_to_other_host(config, fake, recorder):
    client = _client(config, fake, recorder)
    with pytest.raises(ValueError, match="refusing"):
        client.request("GET", "https://evil.example/services/rest/query/v1/suiteql")
    assert client.request("GET", BASE + "/services/rest/record/v1/customer/1").status_code == 200


def test_governor_caps_requests_in_flight(config, fake, recorder):
    client = _client(config, fake, recorder, max_concurrency=3)
    client.request("GET", "/warmup")
    original = fake._data

    def slow(request):
        time.sleep(0.02)
        return original(request)

    fake._data = slow
    run_threads(threading.Thread(target=client.request, args=("GET", "/x")) for _ in range(15))
    assert client.governor.peak_in_flight == 3


def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_default_session_pool_and_context_manager(config):
    with NetSuiteClient(config, max_concurrency=16, token_cache=TokenCache()) as client:
        adapter = client.session.get_adapter(BASE)
        assert adapter._pool_maxsize >= 16
        assert isinstance(client.auth, ClientCredentialsAuth)


# --- over a real socket -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    served: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.served.append(self.path)
        if self.path == TOKEN_PATH:
            self._send(200, {"access_token": "socket-token-123", "expires_in": 3600, "token_type": "Bearer"})
        elif self.headers.get("Authorization") != "Bearer socket-token-123":
            self._send(401, UNAUTHORIZED)
        else:
            query = json.loads(body)["q"]
            self._send(200, {"items": [{"links": [], "q": query}], "hasMore": False, "count": 1})


def test_over_loopback_http(rsa_keypair, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = ConnectionConfig.from_extra(
            {
                "account_id": "1234567",
                "client_id": CLIENT_ID,
                "certificate_id": CERT_ID,
                "private_key": rsa_keypair.private_key,
                "base_url": f"http://127.0.0.1:{server.server_port}/",
                "verify_tls": False,
                "token_cache_dir": str(tmp_path / "tokens"),
            }
        )
        with NetSuiteClient(config, token_cache=TokenCache()) as client:
            page = client.suiteql_page("SELECT 1 FROM dual")
            assert page["items"][0]["q"] == "SELECT 1 FROM dual"
        assert _Handler.served[0] == TOKEN_PATH
        # a second process-like client with an empty memory cache reuses the token from the file cache
        with NetSuiteClient(config, token_cache=TokenCache()) as client:
            client.suiteql_page("SELECT 2 FROM dual")
        assert _Handler.served.count(TOKEN_PATH) == 1
    finally:
        server.shutdown()
        server.server_close()


# --- TBA ----------------------------------------------------------------------------------------------


def _oauth_params(header: str) -> dict[str, str]:
    assert header.startswith("OAuth ")
    params = {}
    for part in header[len("OAuth ") :].split(","):
        name, _, value = part.strip().partition("=")
        params[name] = value.strip('"')
    return params


def test_tba_header_realm_and_hmac_sha256(recorder):
    config = ConnectionConfig.from_extra(TBA_EXTRA)
    auth = TokenBasedAuth(config, secret_masker=recorder.mask)
    url = BASE + "/services/rest/query/v1/suiteql?limit=10&offset=0"
    request = requests.Request("POST", url, json={"q": "SELECT 1"}, auth=auth).prepare()
    header = request.headers["Authorization"]
    header = header.decode() if isinstance(header, bytes) else header
    params = _oauth_params(header)
    assert params["realm"] == "1234567_SB1"
    assert params["oauth_signature_method"] == "HMAC-SHA256"
    assert params["oauth_consumer_key"] == "ck-abc"
    assert params["oauth_token"] == "tid-secret-2"
    assert params["oauth_version"] == "1.0"

    # recompute the RFC 5849 signature independently: realm excluded, query parameters included
    signed = [
        (name, requests.utils.unquote(value))
        for name, value in params.items()
        if name not in ("realm", "oauth_signature")
    ]
    signed += [("limit", "10"), ("offset", "0")]
    pairs = sorted((quote(name, safe="~"), quote(value, safe="~")) for name, value in signed)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base_uri = BASE + "/services/rest/query/v1/suiteql"
    base_string = "&".join(quote(s, safe="~") for s in ("POST", base_uri, normalized))
    key = "cs-secret-1&ts-secret-3"
    expected = base64.b64encode(
        hmac.new(key.encode(), base_string.encode(), hashlib.sha256).digest()
    ).decode()
    assert requests.utils.unquote(params["oauth_signature"]) == expected
    assert header in recorder.masked
    assert expected in recorder.masked
    assert "ts-secret-3" in recorder.masked


def test_tba_client_401_is_not_repeated(recorder):
    config = ConnectionConfig.from_extra(TBA_EXTRA)
    fake = FakeNetSuite()
    session = requests.Session()
    session.mount("https://", fake)
    client = NetSuiteClient(config, session=session, sleep=recorder.sleep)
    with pytest.raises(NetSuiteAuthError) as info:
        client.request("GET", "/x")
    assert len(fake.data_requests) == 1
    assert "ts-secret-3" not in str(info.value)
    assert "consumer key ck-abc" in str(info.value)


def _record_send_arguments(fake, monkeypatch) -> list[dict]:
    """Record the keyword arguments (proxies, verify...) requests hands the adapter for every request."""
    sent: list[dict] = []
    answer = fake.send

    def recording_send(request, **kwargs):
        sent.append(kwargs)
        return answer(request, **kwargs)

    monkeypatch.setattr(fake, "send", recording_send)
    return sent


def test_environment_proxy_and_ca_bundle_read_once_and_applied_to_every_request(
    config, fake, recorder, monkeypatch, tmp_path
):
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("not read by the fake adapter")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sent = _record_send_arguments(fake, monkeypatch)
    with NetSuiteClient(config, token_cache=TokenCache(), sleep=recorder.sleep) as client:
        client.session.mount("https://", fake)
        client.suiteql_page("SELECT id FROM customer")
        # Changed after the first request: requests would read it on every request, the client does not.
        monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.example:1")
        client.suiteql_page("SELECT id FROM customer")

    assert len(sent) == 3  # the token, then two pages
    assert all(kwargs["proxies"].get("https") == "http://proxy.example:3128" for kwargs in sent), sent
    assert all(kwargs["verify"] == str(bundle) for kwargs in sent), sent


def test_environment_no_proxy_and_verify_tls_off_respected(rsa_keypair, fake, recorder, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    config = ConnectionConfig.from_extra(
        {
            "account_id": "1234567-sb1",
            "client_id": CLIENT_ID,
            "certificate_id": CERT_ID,
            "private_key": rsa_keypair.private_key,
            "base_url": "http://127.0.0.1:9",
            "verify_tls": False,
        }
    )
    sent = _record_send_arguments(fake, monkeypatch)
    with NetSuiteClient(config, token_cache=TokenCache(), sleep=recorder.sleep) as client:
        client.session.mount("http://", fake)
        client.suiteql_page("SELECT id FROM customer")

    assert sent
    assert all(not kwargs["proxies"].get("http") for kwargs in sent), sent
    assert all(kwargs["verify"] is False for kwargs in sent), sent
