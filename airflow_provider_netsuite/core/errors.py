"""Exception hierarchy of the provider and parsing of NetSuite's REST error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from requests.structures import CaseInsensitiveDict

try:  # Subclass AirflowException when Airflow is installed, so tasks fail the Airflow way.
    from airflow.exceptions import AirflowException as _Base
except ImportError:  # pragma: no cover - core is usable without Airflow
    _Base = Exception  # type: ignore[misc,assignment]


class NetSuiteError(_Base):  # type: ignore[valid-type,misc]
    """Base class of every error raised by the provider."""


class NetSuiteConfigError(NetSuiteError, ValueError):
    """Raise when a connection setting is missing or invalid; raised before any request is made.

    :param field: the connection extra that is wrong (``account_id``, ``private_key``, ...).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NetSuiteAuthError(NetSuiteError):
    """Raise when NetSuite refuses the credentials (token endpoint or a data endpoint)."""


class NetSuiteTokenError(NetSuiteAuthError):
    """Raise when the OAuth 2.0 token endpoint refuses to issue an access token.

    :param error: the OAuth error code (``invalid_grant``, ``invalid_client``, ...), or ``html_response`` /
        ``invalid_response`` when the body was not the expected JSON.
    :param status: HTTP status of the token endpoint's answer.
    """

    def __init__(self, message: str, *, error: str, status: int | None = None) -> None:
        self.error = error
        self.status = status
        super().__init__(message)


class NetSuiteAPIError(NetSuiteError):
    """Raise when a NetSuite REST endpoint answers with an error.

    The fields come from NetSuite's error body: ``title``, ``status`` and ``o:errorDetails``, each detail
    holding ``detail``, ``o:errorCode`` and optionally ``o:errorPath``, ``o:errorQueryParam``,
    ``o:errorHeader``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        error_path: str | None = None,
        details: list[dict[str, Any]] | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.error_path = error_path
        self.details = list(details or [])
        self.title = title
        # Header names are case-insensitive (HTTP/2 servers send them in lower case).
        self.headers = CaseInsensitiveDict(headers or {})
        super().__init__(message)

    def reworded(self, message: str, error_class: type[NetSuiteAPIError] | None = None) -> NetSuiteAPIError:
        """Return the same NetSuite error with a message that says more (what to do next).

        :param error_class: the class of the new error; by default the class of this one.
        """
        return (error_class or type(self))(
            message,
            status=self.status,
            code=self.code,
            detail=self.detail,
            error_path=self.error_path,
            details=self.details,
            title=self.title,
            headers=self.headers,
        )

    @property
    def error_query_param(self) -> str | None:
        """Return ``o:errorQueryParam`` of the first error detail, if any."""
        return self.details[0].get("o:errorQueryParam") if self.details else None

    @property
    def error_header(self) -> str | None:
        """Return ``o:errorHeader`` of the first error detail, if any."""
        return self.details[0].get("o:errorHeader") if self.details else None


class NetSuiteConcurrencyLimitError(NetSuiteAPIError):
    """Raise when NetSuite still answers 429 (concurrency limit exceeded) after every retry."""


class NetSuiteTransientError(NetSuiteAPIError):
    """Raise when 5xx answers, timeouts or broken connections persist after every retry."""


_BODY_EXCERPT = 300


def _json_body(response: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content or b"")
    except (ValueError, TypeError):
        return None
    return body if isinstance(body, dict) else None


def _excerpt(response: Any) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return text[:_BODY_EXCERPT] + ("..." if len(text) > _BODY_EXCERPT else "")


def parse_error_response(
    response: Any, error_class: type[NetSuiteAPIError] | None = None
) -> NetSuiteAPIError:
    """Build the exception that describes a NetSuite error response; never raises while parsing.

    HTML, non-JSON and empty bodies are tolerated: the message then carries the status and a short excerpt.

    :param response: a ``requests.Response`` with an error status.
    :param error_class: class to instantiate; by default chosen from the status (429 gives
        :class:`NetSuiteConcurrencyLimitError`, 5xx :class:`NetSuiteTransientError`).
    """
    status = response.status_code
    if error_class is None:
        error_class = NetSuiteAPIError
        if status == 429:
            error_class = NetSuiteConcurrencyLimitError
        elif status >= 500:
            error_class = NetSuiteTransientError

    body = _json_body(response)
    details = body.get("o:errorDetails") if body else None
    details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    first = details[0] if details else {}
    title = body.get("title") if body else None
    code = first.get("o:errorCode") or (body.get("o:errorCode") if body else None)
    detail = first.get("detail")
    error_path = first.get("o:errorPath")

    method = getattr(getattr(response, "request", None), "method", None) or "?"
    url = getattr(response, "url", "") or ""
    parts = [f"NetSuite answered {status}" + (f" {title}" if title else "") + f" to {method} {url}"]
    if code:
        parts.append(f"[{code}]")
    if detail:
        parts.append(str(detail))
    if error_path:
        parts.append(f"(field: {error_path})")
    for key, label in (("o:errorQueryParam", "query parameter"), ("o:errorHeader", "header")):
        if first.get(key):
            parts.append(f"({label}: {first[key]})")
    if body is None and response.content:
        parts.append(f"(non-JSON body: {_excerpt(response)})")
    return error_class(
        " ".join(parts),
        status=status,
        code=code,
        detail=detail,
        error_path=error_path,
        details=details,
        title=title,
        headers=response.headers or {},
    )
