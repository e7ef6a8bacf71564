"""Authentication as NetSuite does it: M2M client assertions, issued bearer tokens, TBA signatures.

Every rejection carries the reason NetSuite would write to its Login Audit Trail (``MissingKeyId``,
``SignatureValidation``, ``ScopeMismatched`` ...). The reasons reach the client only in
``error_description`` of the token endpoint; they never include the assertion, a token or a secret.

Design choices where the sources are silent (UNCONFIRMED), the numbers configurable through
:class:`~airflow_provider_netsuite.emulator.state.RuntimeConfig`:

- ``iat`` may lie up to ``clock_skew`` (300) seconds in the future; ``exp`` gets no skew;
- ``exp - iat`` may be at most ``max_assertion_validity`` (3600) seconds;
- ``aud`` must be the token URL on the account's suitetalk, restlets or connect host (hyphen form), or on
  the host the request reached when that is not a ``*.netsuite.com`` host (loopback, a test host);
- a JWT header PyJWT cannot parse (a ``kid`` that is not a string, a ``crit`` header) is ``InvalidJWT``;
- a ``scope`` string is split on commas and/or whitespace; scope names are compared case-insensitively,
  and ``SuiteAnalytics`` (Oracle's Connect sample) means ``suite_analytics``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.api_jws import PyJWS
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth_signature
from oauthlib.oauth1.rfc5849 import utils as oauth_utils

from airflow_provider_netsuite.emulator.state import EC_CURVES, KNOWN_SCOPES, Certificate, StateStore

log = logging.getLogger(__name__)

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"  # noqa: S105 (a URL path, not a secret)
GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALLOWED_ALGORITHMS = ("PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MAX_ASSERTION_VALIDITY = 3600  # default of RuntimeConfig.max_assertion_validity
CLOCK_SKEW = 300  # default of RuntimeConfig.clock_skew
TBA_TIMESTAMP_WINDOW = 300
TBA_NONCE_MEMORY = 600
TBA_MIN_NONCE_LENGTH = 6
REST_SCOPE = "rest_webservices"
NETSUITE_DOMAIN = ".netsuite.com"
SCOPE_SEPARATORS = re.compile(r"[,\s]+")
SCOPE_ALIASES = {"suiteanalytics": "suite_analytics"}


def account_slug(account_id: str) -> str:
    """Return the host form of an account ID (``1234567_SB1`` -> ``1234567-sb1``)."""
    return account_id.strip().lower().replace("_", "-")


def account_realm(account_id: str) -> str:
    """Return the canonical form of an account ID (``1234567-sb1`` -> ``1234567_SB1``)."""
    return account_id.strip().upper().replace("-", "_")


def is_netsuite_host(host: str) -> bool:
    """Tell whether a host name (no port) is under ``netsuite.com``."""
    return host.strip().lower().rstrip(".").endswith(NETSUITE_DOMAIN)


def is_foreign_netsuite_host(host: str, account_id: str) -> bool:
    """Tell whether a host is a NetSuite host that is not this account's (hyphen, lower-case form).

    ``1234567_SB1.suitetalk.api.netsuite.com``, ``1234567-SB1...`` and another account's host all are;
    hosts outside ``netsuite.com`` (loopback, a test host) are not.

    :param host: the request's host, without the port, as sent (case kept).
    """
    return is_netsuite_host(host) and host.strip().split(".")[0] != account_slug(account_id)


def accepted_audiences(account_id: str, base_url: str) -> set[str]:
    """Return the token URLs an assertion's ``aud`` may name.

    :param base_url: scheme, host and port the request reached this server on; its token URL is
        accepted only when the host is not under ``netsuite.com``.
    """
    slug = account_slug(account_id)
    bases = [f"https://{slug}.{service}.api.netsuite.com" for service in ("suitetalk", "restlets", "connect")]
    if not is_netsuite_host(urlsplit(base_url).hostname or ""):
        bases.append(base_url.rstrip("/"))
    return {base + TOKEN_PATH for base in bases}


class AssertionRejected(Exception):
    """A client assertion was refused; ``error`` is the OAuth code, ``reason`` the audit-trail detail."""

    def __init__(self, reason: str, *, error: str = "invalid_grant", status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.status = status


@dataclass(frozen=True)
class Principal:
    """Who a data request is made as."""

    method: str
    client_id: str
    scopes: frozenset[str]
    certificate_id: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    """Book-keeping for one access token the emulator handed out."""

    client_id: str
    certificate_id: str
    scopes: frozenset[str]
    expires_at: float
    issued_at: float = 0.0


class AssertionVerifier:
    """Check OAuth 2.0 client-credentials assertions against registered certificates."""

    def __init__(self, store: StateStore, account_id: str) -> None:
        self.store = store
        self.account_id = account_id

    def verify(
        self,
        assertion: str,
        audiences: set[str],
        *,
        clock_skew: float = CLOCK_SKEW,
        max_validity: float = MAX_ASSERTION_VALIDITY,
    ) -> tuple[Certificate, frozenset[str]]:
        """Verify an assertion; return the certificate it was signed for and the scopes it asks for.

        :param audiences: the token URLs ``aud`` may hold.
        :param clock_skew: seconds ``iat`` may lie in the future.
        :param max_validity: the largest ``exp - iat`` accepted, in seconds.
        :raises AssertionRejected: with the audit-trail reason.
        """
        algorithm, certificate_id = self._check_header(assertion)
        claims = _unverified_claims(assertion)
        certificate = self._certificate_for(certificate_id, claims)
        _verify_signature(assertion, certificate, algorithm)
        _check_audience(claims, audiences)
        _check_lifetime(claims, clock_skew, max_validity)
        return certificate, _check_scopes(claims, certificate)

    def _check_header(self, assertion: str) -> tuple[str, str]:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.exceptions.PyJWTError as error:
            # DecodeError for a malformed JWT; InvalidTokenError for a non-string kid or a crit header.
            raise AssertionRejected("InvalidJWT: the client assertion is not a well-formed JWT") from error
        if str(header.get("typ", "")).upper() != "JWT":
            raise AssertionRejected("InvalidJWT: the JWT header typ must be JWT")
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise AssertionRejected(
                f"UnsupportedAlgo: algorithm {algorithm!r} is not supported; use one of "
                + ", ".join(ALLOWED_ALGORITHMS)
            )
        certificate_id = header.get("kid")
        if not certificate_id or not isinstance(certificate_id, str):
            raise AssertionRejected("MissingKeyId: the JWT header has no kid (certificate ID)")
        return algorithm, certificate_id

    def _certificate_for(self, certificate_id: str, claims: dict[str, Any]) -> Certificate:
        client_id = claims.get("iss")
        if not client_id or not isinstance(client_id, str):
            raise AssertionRejected("InvalidIntegration: the iss claim (client ID) is missing")
        if not self.store.knows_client(client_id):
            raise AssertionRejected(
                "InvalidIntegration: no integration with this client ID", error="invalid_client", status=401
            )
        certificate = self.store.certificate(certificate_id)
        if certificate is None or certificate.client_id != client_id or not certificate.usable:
            raise AssertionRejected(
                f"MissingKey: certificate ID {certificate_id!r} has no valid certificate for this client ID"
            )
        return certificate


def _unverified_claims(assertion: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.exceptions.PyJWTError as error:
        raise AssertionRejected("InvalidJWT: the JWT payload is not a JSON object") from error
    if not isinstance(claims, dict):
        raise AssertionRejected("InvalidJWT: the JWT payload is not a JSON object")
    return claims


def _verify_signature(assertion: str, certificate: Certificate, algorithm: str) -> None:
    key = certificate.public_key
    if algorithm.startswith("PS") and not isinstance(key, rsa.RSAPublicKey):
        raise AssertionRejected(f"SignatureValidation: {algorithm} needs an RSA certificate")
    if algorithm.startswith("ES") and (
        not isinstance(key, ec.EllipticCurvePublicKey) or EC_CURVES.get(key.curve.name) != algorithm
    ):
        raise AssertionRejected(f"SignatureValidation: {algorithm} does not match the certificate's key")
    try:
        PyJWS().decode_complete(assertion, key, algorithms=[algorithm])
    except jwt.exceptions.InvalidSignatureError as error:
        raise AssertionRejected("SignatureValidation: the signature does not verify") from error
    except jwt.exceptions.PyJWTError as error:
        raise AssertionRejected("SignatureValidation: the signature cannot be checked") from error


def _check_audience(claims: dict[str, Any], audiences: set[str]) -> None:
    audience = claims.get("aud")
    candidates = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(item, str) and item in audiences for item in candidates):
        raise AssertionRejected("InvalidAudience: aud must be the token endpoint URL")


def _check_lifetime(claims: dict[str, Any], clock_skew: float, max_validity: float) -> None:
    issued_at, expires_at = claims.get("iat"), claims.get("exp")
    for name, value in (("iat", issued_at), ("exp", expires_at)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AssertionRejected(
                f"InvalidTokenValidity: the {name} claim must be a number of epoch seconds"
            )
    if expires_at - issued_at > max_validity:
        raise AssertionRejected(
            f"TokenValidityTooBroad: exp must be at most {max_validity:g} seconds after iat"
        )
    if expires_at <= issued_at:
        raise AssertionRejected("InvalidTokenValidity: exp must be after iat")
    now = time.time()
    if expires_at <= now:
        raise AssertionRejected("TokenExpired: the client assertion has expired")
    if issued_at > now + clock_skew:
        raise AssertionRejected("TokenNotAcceptable: iat is in the future")


def requested_scopes(scope: Any) -> list[str]:
    """Return the scope names a ``scope`` claim asks for, normalised (lower case, aliases resolved).

    A string is split on commas and/or whitespace; an array must hold strings. Anything else asks for none.
    """
    if isinstance(scope, str):
        names = SCOPE_SEPARATORS.split(scope)
    elif isinstance(scope, list) and all(isinstance(item, str) for item in scope):
        names = [item.strip() for item in scope]
    else:
        names = []
    lowered = [name.lower() for name in names if name]
    return [SCOPE_ALIASES.get(name, name) for name in lowered]


def _check_scopes(claims: dict[str, Any], certificate: Certificate) -> frozenset[str]:
    requested = requested_scopes(claims.get("scope"))
    if not requested:
        raise AssertionRejected("InvalidScope: the scope claim is empty")
    for item in requested:
        if item not in KNOWN_SCOPES or item not in certificate.scopes:
            raise AssertionRejected(f"ScopeMismatched: scope {item!r} is not granted to this integration")
    return frozenset(requested)


class TokenIssuer:
    """Mint access tokens (JWTs signed by a key made at start-up) and check them on data requests."""

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._issued: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()

    def issue(self, certificate: Certificate, scopes: frozenset[str], lifetime: int) -> str:
        """Return a new access token valid for ``lifetime`` seconds."""
        now = time.time()
        token_id = uuid.uuid4().hex
        claims = {
            "iss": f"https://{account_slug(self.account_id)}.suitetalk.api.netsuite.com",
            "sub": certificate.client_id,
            "aud": account_realm(self.account_id),
            "scope": sorted(scopes),
            "iat": int(now),
            "exp": int(now + lifetime),
            "jti": token_id,
        }
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": "emulator"})
        with self._lock:
            self._issued = {key: item for key, item in self._issued.items() if item.expires_at > now}
            self._issued[token_id] = IssuedToken(
                certificate.client_id, certificate.certificate_id, scopes, now + lifetime, now
            )
        return token

    def issued_at(self, token: str) -> float | None:
        """Return when a token this emulator issued was minted, to the sub-second (its ``iat`` is whole
        seconds); ``None`` for a token it did not issue or cannot read.
        """
        try:
            token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
        except (jwt.exceptions.PyJWTError, KeyError, TypeError, ValueError):
            return None
        with self._lock:
            issued = self._issued.get(token_id)
        return issued.issued_at if issued is not None else None

    def check(self, token: str) -> tuple[Principal | None, str]:
        """Return the principal of a valid token, or ``None`` and the audit-trail reason."""
        try:
            payload = PyJWS().decode_complete(token, self._key.public_key(), algorithms=["ES256"])["payload"]
            token_id = json.loads(payload)["jti"]
        except (jwt.exceptions.PyJWTError, ValueError, KeyError, TypeError):
            return None, "InvalidSignature"
        with self._lock:
            issued = self._issued.get(token_id)
        if issued is None:
            return None, "TokenRejected"
        if issued.expires_at <= time.time():
            return None, "AccessTokenExpired"
        principal = Principal("oauth2", issued.client_id, issued.scopes, issued.certificate_id)
        return principal, "Success"

    def revoke_all(self) -> int:
        """Invalidate every token handed out so far; return how many were live."""
        with self._lock:
            count = len(self._issued)
            self._issued.clear()
        return count


class TBAVerifier:
    """Verify OAuth 1.0a (Token-Based Authentication) headers the way NetSuite does.

    HMAC-SHA256 only; ``realm`` must be the account ID in upper case with an underscore; the
    timestamp must be within five minutes; a nonce of six or more characters cannot be used twice.
    """

    def __init__(self, store: StateStore, account_id: str) -> None:
        self.store = store
        self.realm = account_realm(account_id)
        self._nonces: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, method: str, url: str, headers: dict[str, str]) -> tuple[Principal | None, str]:
        """Return the principal of a correctly signed request, or ``None`` and the audit-trail reason.

        :param url: the full URL the request reached, query string included.
        :param headers: the request headers; ``Authorization`` holds the OAuth parameters.
        """
        try:
            params = _authorization_parameters(headers["authorization"])
        except (ValueError, KeyError):
            return None, "InvalidSignature"
        reason = self._check_parameters(params)
        if reason:
            return None, reason
        token = self.store.tba_token(params["oauth_token"])
        if token is None:
            return None, "InvalidToken"
        if token.consumer_key != params["oauth_consumer_key"]:
            return None, "InvalidConsumerKey"
        if not _signature_matches(method, url, params, headers, token.consumer_secret, token.token_secret):
            return None, "InvalidSignature"
        if not self._remember_nonce(params["oauth_consumer_key"], params["oauth_nonce"]):
            return None, "NonceUsed"
        return Principal("tba", token.consumer_key, frozenset(KNOWN_SCOPES)), "Success"

    def _check_parameters(self, params: dict[str, str]) -> str | None:
        required = ("oauth_consumer_key", "oauth_token", "oauth_nonce", "oauth_timestamp", "oauth_signature")
        if any(not params.get(name) for name in required):
            return "MissingParameter"
        if params.get("realm") != self.realm:
            return "InvalidSignature"
        if params.get("oauth_signature_method") != "HMAC-SHA256":
            return "UnknownAlgorithm"
        if params.get("oauth_version", "1.0") != "1.0":
            return "InvalidVersion"
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            return "InvalidTimestamp"
        if abs(time.time() - timestamp) > TBA_TIMESTAMP_WINDOW:
            return "InvalidTimestamp"
        if len(params["oauth_nonce"]) < TBA_MIN_NONCE_LENGTH:
            return "InvalidNonce"
        return None

    def _remember_nonce(self, consumer_key: str, nonce: str) -> bool:
        now = time.time()
        with self._lock:
            while self._nonces and next(iter(self._nonces.values())) < now - TBA_NONCE_MEMORY:
                self._nonces.popitem(last=False)
            if (consumer_key, nonce) in self._nonces:
                return False
            self._nonces[(consumer_key, nonce)] = now
        return True


def _authorization_parameters(header: str) -> dict[str, str]:
    """Return the decoded parameters of an ``Authorization: OAuth ...`` header."""
    pairs = oauth_utils.parse_authorization_header(header)
    return {oauth_utils.unescape(name): oauth_utils.unescape(value) for name, value in pairs}


def _signature_matches(
    method: str,
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    consumer_secret: str,
    token_secret: str,
) -> bool:
    """Recompute the RFC 5849 HMAC-SHA256 signature with oauthlib and compare."""
    request = OAuthRequest(url, http_method=method, headers={"Authorization": headers["authorization"]})
    request.params = oauth_signature.collect_parameters(
        uri_query=request.uri_query, headers=request.headers, exclude_oauth_signature=True, with_realm=False
    )
    request.signature = params["oauth_signature"]
    return oauth_signature.verify_hmac_sha256(request, consumer_secret, token_secret)
