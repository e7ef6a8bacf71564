"""Sign the JWT client assertion that NetSuite's OAuth 2.0 client credentials (M2M) flow exchanges."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import jwt

from airflow_provider_netsuite.core.errors import NetSuiteConfigError
from airflow_provider_netsuite.core.keys import SigningKey

MAX_ASSERTION_LIFETIME = 3600
SCOPE_FORMATS = ("array", "string")


def build_client_assertion(
    signing_key: SigningKey,
    *,
    client_id: str,
    certificate_id: str,
    token_url: str,
    scopes: Sequence[str],
    scope_format: str = "array",
    lifetime: int = 300,
    now: float | None = None,
) -> str:
    """Return a signed client assertion for the token endpoint at ``token_url``.

    The header carries ``kid`` = certificate ID; the claims are ``iss`` (client ID), ``scope``, ``aud``
    (the token URL actually called), ``iat``, ``exp`` and a unique ``jti``.

    :param scopes: e.g. ``["rest_webservices"]``; must match the integration record.
    :param scope_format: ``array`` sends a JSON array (Oracle's samples), ``string`` a comma-separated string.
    :param lifetime: seconds between ``iat`` and ``exp``, 1..3600 (NetSuite refuses longer ones).
    :param now: epoch seconds to use as ``iat`` (for tests); default: the current UTC time.
    """
    if (
        isinstance(lifetime, bool)
        or not isinstance(lifetime, int)
        or not 1 <= lifetime <= MAX_ASSERTION_LIFETIME
    ):
        raise NetSuiteConfigError(
            f"must be whole seconds between 1 and {MAX_ASSERTION_LIFETIME}.", field="assertion_lifetime"
        )
    if scope_format not in SCOPE_FORMATS:
        raise NetSuiteConfigError("must be 'array' or 'string'.", field="scope_format")
    scope_list = [s for s in scopes if s]
    if not scope_list:
        raise NetSuiteConfigError("at least one scope is required, e.g. rest_webservices.", field="scopes")

    issued_at = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "scope": scope_list if scope_format == "array" else ",".join(scope_list),
        "aud": token_url,
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "jti": str(uuid.uuid4()),
    }
    headers = {"typ": "JWT", "kid": certificate_id}
    return jwt.encode(claims, signing_key.key, algorithm=signing_key.algorithm, headers=headers)
