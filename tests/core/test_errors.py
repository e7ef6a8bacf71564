"""The exception hierarchy and parsing of NetSuite's error bodies."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_netsuite.core.errors import (
    NetSuiteAPIError,
    NetSuiteAuthError,
    NetSuiteConcurrencyLimitError,
    NetSuiteConfigError,
    NetSuiteError,
    NetSuiteTokenError,
    NetSuiteTransientError,
    parse_error_response,
)
from tests.conftest import CONCURRENCY_LIMIT_BODY


def _response(
    status: int, body: object = None, *, raw: bytes | None = None, headers=None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    response.headers.update(headers or {})
    response.url = "https://1234567.suitetalk.api.netsuite.com/services/rest/record/v1/customer/1"
    response.encoding = "utf-8"
    request = requests.Request("PATCH", response.url).prepare()
    response.request = request
    return response


def test_hierarchy():
    assert issubclass(NetSuiteConfigError, NetSuiteError)
    assert issubclass(NetSuiteConfigError, ValueError)
    assert issubclass(NetSuiteTokenError, NetSuiteAuthError)
    assert issubclass(NetSuiteConcurrencyLimitError, NetSuiteAPIError)
    assert issubclass(NetSuiteTransientError, NetSuiteAPIError)
    from airflow.exceptions import AirflowException

    assert issubclass(NetSuiteError, AirflowException)


def test_config_error_names_field():
    error = NetSuiteConfigError("is required.", field="client_id")
    assert error.field == "client_id"
    assert str(error) == "client_id: is required."


def test_record_error_body():
    body = {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        "title": "Bad Request",
        "status": 400,
        "o:errorDetails": [
            {
                "detail": "Invalid Field Value 9999 for the following field: item",
                "o:errorCode": "INVALID_CONTENT",
                "o:errorPath": "item.items[0].item",
            },
            {"detail": "second", "o:errorCode": "OTHER"},
        ],
    }
    error = parse_error_response(_response(400, body, headers={"X-Test": "1"}))
    assert type(error) is NetSuiteAPIError
    assert (error.status, error.code, error.title) == (400, "INVALID_CONTENT", "Bad Request")
    assert error.detail.startswith("Invalid Field Value 9999")
    assert error.error_path == "item.items[0].item"
    assert len(error.details) == 2
    assert error.headers["X-Test"] == "1"
    assert "INVALID_CONTENT" in str(error)
    assert "PATCH" in str(error)
    assert "item.items[0].item" in str(error)


def test_query_param_and_header_details():
    body = {
        "status": 400,
        "o:errorDetails": [
            {"detail": "Invalid search query.", "o:errorQueryParam": "q", "o:errorCode": "INVALID_PARAMETER"}
        ],
    }
    error = parse_error_response(_response(400, body))
    assert error.error_query_param == "q"
    assert "query parameter: q" in str(error)
    body = {
        "status": 400,
        "o:errorDetails": [
            {"detail": "Bad language", "o:errorHeader": "Accept-Language", "o:errorCode": "INVALID_HEADER"}
        ],
    }
    assert parse_error_response(_response(400, body)).error_header == "Accept-Language"


def test_concurrency_body_and_class():
    error = parse_error_response(_response(429, CONCURRENCY_LIMIT_BODY))
    assert isinstance(error, NetSuiteConcurrencyLimitError)
    assert error.code == "CONCURRENCY_LIMIT_EXCEEDED"


def test_top_level_code_used_without_details():
    error = parse_error_response(_response(400, {"title": "Bad Request", "o:errorCode": "USER_ERROR"}))
    assert error.code == "USER_ERROR"
    assert error.details == []


@pytest.mark.parametrize(
    ("status", "raw", "expected_class"),
    [
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", NetSuiteTransientError),
        (500, b"", NetSuiteTransientError),
        (400, b"not json {", NetSuiteAPIError),
        (404, b"[1, 2]", NetSuiteAPIError),
        (400, b'{"o:errorDetails": "oops"}', NetSuiteAPIError),
        (400, b'{"o:errorDetails": [1, "x"]}', NetSuiteAPIError),
    ],
)
def test_tolerant_of_odd_bodies(status, raw, expected_class):
    error = parse_error_response(_response(status, raw=raw))
    assert type(error) is expected_class
    assert error.status == status
    assert error.code is None
    assert str(status) in str(error)


def test_long_html_body_is_excerpted():
    error = parse_error_response(_response(503, raw=b"<html>" + b"x" * 5000 + b"</html>"))
    assert len(str(error)) < 600
