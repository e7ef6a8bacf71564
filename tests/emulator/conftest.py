"""Shared by the emulator tests: NetSuite's answers they expect and a raw-HTTP token grant."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
import requests

from tests.conftest import CLIENT_ID

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INVALID_LOGIN_BODY = {
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html",
    "title": "Unauthorized",
    "status": 401,
    "o:errorDetails": [
        {
            "detail": "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI "
            "at Setup > Users/Roles > User Management > View Login Audit Trail.",
            "o:errorCode": "INVALID_LOGIN",
        }
    ],
}
IDEMPOTENCY_CONFLICT_BODY = {
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.10",
    "title": "Conflict",
    "status": 400,
    "o:errorDetails": [
        {
            "detail": 'A request with the same idempotency key is already submitted. See the "Location" '
            "header for a link to the previously submitted job",
            "o:errorCode": "IDEMPOTENCY_ERROR",
        }
    ],
}


def mint_token(base_url: str, keypair) -> requests.Response:
    """Run the client-credentials grant with a PS256 assertion made by PyJWT; return the token response."""
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": CLIENT_ID,
            "scope": ["rest_webservices"],
            "aud": base_url + TOKEN_PATH,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        },
        keypair.private_key,
        algorithm="PS256",
        headers={"kid": keypair.certificate_id},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return requests.post(base_url + TOKEN_PATH, data=form, timeout=30)


def bearer(token_response: requests.Response) -> dict:
    """Headers of an authenticated SuiteQL request with the token of ``token_response``."""
    token_response.raise_for_status()
    return {"Authorization": f"Bearer {token_response.json()['access_token']}", "Prefer": "transient"}


@pytest.fixture(scope="module")
def headers(emulator, registered_rsa) -> dict:
    """Headers of an authenticated SuiteQL request (token minted with PyJWT and raw HTTP)."""
    return bearer(mint_token(emulator.base_url, registered_rsa))
