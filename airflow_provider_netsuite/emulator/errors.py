"""NetSuite-shaped error responses: REST error bodies and OAuth 2.0 token-endpoint errors."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

ERROR_MEDIA_TYPE = "application/vnd.oracle.resource+json; type=error"
RFC2616_TYPE = "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html"
INVALID_LOGIN_DETAIL = (
    "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
    "Setup > Users/Roles > User Management > View Login Audit Trail."
)
CONCURRENCY_DETAIL = "Concurrent request limit exceeded. Request blocked."

# Optional members of an ``o:errorDetails`` entry, by keyword argument name.
_DETAIL_FIELDS = {
    "query_param": "o:errorQueryParam",
    "header": "o:errorHeader",
    "path": "o:errorPath",
    "url_path": "o:urlPath",
}


def rfc9110_type(status: int) -> str:
    """Return the RFC 9110 section URI that newer NetSuite responses put in ``type`` for a status."""
    if 400 <= status < 500:
        return f"https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.{status - 399}"
    if 500 <= status < 600:
        return f"https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.{status - 499}"
    return "https://www.rfc-editor.org/rfc/rfc9110.html"


def error_body(
    status: int,
    detail: str,
    code: str,
    *,
    title: str | None = None,
    type_uri: str | None = None,
    top_level_code: str | None = None,
    **detail_fields: str,
) -> dict[str, Any]:
    """Build a NetSuite REST error body with one ``o:errorDetails`` entry.

    :param status: HTTP status, repeated in the body.
    :param detail: human-readable ``detail`` of the entry.
    :param code: the entry's ``o:errorCode`` (``INVALID_PARAMETER``, ``INVALID_LOGIN`` ...).
    :param title: ``title``; defaults to the status phrase.
    :param type_uri: ``type``; defaults to the RFC 9110 section of the status.
    :param top_level_code: an ``o:errorCode`` beside ``status`` (the 429 body has one).
    :param detail_fields: ``query_param``, ``header``, ``path`` or ``url_path`` for the entry.
    """
    body: dict[str, Any] = {
        "type": type_uri or rfc9110_type(status),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if top_level_code:
        body["o:errorCode"] = top_level_code
    entry: dict[str, Any] = {"detail": detail}
    for name, value in detail_fields.items():
        entry[_DETAIL_FIELDS[name]] = value
    entry["o:errorCode"] = code
    body["o:errorDetails"] = [entry]
    return body


def error_response(
    status: int, detail: str, code: str, *, headers: dict[str, str] | None = None, **fields: Any
) -> JSONResponse:
    """Return a NetSuite REST error response; keyword arguments go to :func:`error_body`."""
    return JSONResponse(
        error_body(status, detail, code, **fields),
        status_code=status,
        headers=headers,
        media_type=ERROR_MEDIA_TYPE,
    )


def invalid_login_response(account_id: str) -> JSONResponse:
    """Return the 401 NetSuite sends for a missing, bad, expired or revoked credential."""
    header = f'Bearer realm="{account_id}", error="invalid_token", error_description="Invalid login attempt."'
    return error_response(
        401,
        INVALID_LOGIN_DETAIL,
        "INVALID_LOGIN",
        title="Unauthorized",
        type_uri=RFC2616_TYPE,
        headers={"WWW-Authenticate": header},
    )


def concurrency_limit_response(retry_after: int | None) -> JSONResponse:
    """Return the 429 NetSuite sends when the account's concurrency limit is exceeded."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(
        429,
        CONCURRENCY_DETAIL,
        "CONCURRENCY_LIMIT_EXCEEDED",
        title="Bad Request",
        type_uri=RFC2616_TYPE,
        top_level_code="USER_ERROR",
        headers=headers,
    )


def oauth_error_response(
    error: str, description: str | None = None, *, status: int = 400, account_id: str | None = None
) -> JSONResponse:
    """Return an OAuth 2.0 token-endpoint error (``{"error": ..., "error_description": ...}``).

    :param error: the OAuth error code (``invalid_grant``, ``invalid_client`` ...).
    :param description: the reason; never the assertion itself.
    :param status: HTTP status; ``invalid_client`` is sent with 401.
    :param account_id: realm of the ``WWW-Authenticate: Basic`` header sent with a 401.
    """
    body = {"error": error}
    if description:
        body["error_description"] = description
    headers = {"WWW-Authenticate": f'Basic realm="{account_id}"'} if status == 401 and account_id else None
    return JSONResponse(body, status_code=status, headers=headers)
