"""Authentication for ``requests``: OAuth 2.0 client credentials (M2M) and token-based authentication.

Each scheme is one ``requests.auth.AuthBase``: the client attaches it to every request and tells it about a
401 through :meth:`on_unauthorized`, which says whether sending the request again can help.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from airflow_provider_netsuite.core.assertion import build_client_assertion
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteConfigError, NetSuiteTokenError
from airflow_provider_netsuite.core.tokens import (
    PROCESS_TOKEN_CACHE,
    AccessToken,
    FileTokenCache,
    TokenCache,
    TokenCacheKey,
)

log = logging.getLogger(__name__)

SecretMasker = Callable[[str], None]
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_EXPIRES_IN = 3600
TOKEN_ENDPOINT_ATTEMPTS = 4
# Most random seconds added to a token endpoint's Retry-After, so waiting workers do not retry in step.
TOKEN_RETRY_AFTER_JITTER = 1.0
_TOKEN_BACKOFF = wait_random_exponential(multiplier=0.5, max=10)
_DESCRIPTION_CHARS = 300

_CHECK_MAPPING = (
    "the M2M mapping for this certificate ID exists in Setup > Integration > OAuth 2.0 Client Credentials "
    "(M2M) Setup, with the right entity and role (a sandbox refresh wipes these mappings, and they are not "
    "copied to sandboxes)"
)
_CHECK_CERTIFICATE = "the certificate is not expired or revoked, and the private key matches it"
_CHECK_INTEGRATION = (
    "the integration record is enabled, has the Client Credentials (Machine to Machine) grant checked, and "
    "its client ID is the one configured"
)
_CHECK_ALGORITHM = (
    "the key is RSA 3072/4096 (PS256) or EC P-256/P-384/P-521 (ES256/384/512); RS256 is refused"
)
_CHECK_CLOCK = (
    "the host clock is right (NetSuite checks iat/exp; sync with NTP) and assertion_lifetime <= 3600"
)
_CHECK_SCOPES = (
    "the scopes match the integration record's checked scopes (REST web services = rest_webservices, "
    "RESTlets = restlets, SuiteAnalytics Connect = suite_analytics); try scope_format 'string' or 'array'"
)
_CHECK_ROLE = "the mapped role has the permission 'Log in using OAuth 2.0 Access Tokens'"
_CHECK_HOST = (
    "account_id and base_url point at NetSuite's token endpoint for this account (production and sandbox are "
    "different accounts)"
)
_CHECK_AUDIT = "NetSuite's Login Audit Trail (Setup > Users/Roles > User Management) shows the exact reason"

CAUSES = {
    "invalid_client": (_CHECK_INTEGRATION, _CHECK_HOST, _CHECK_MAPPING),
    "invalid_grant": (
        _CHECK_MAPPING,
        _CHECK_CERTIFICATE,
        _CHECK_ALGORITHM,
        _CHECK_CLOCK,
        _CHECK_SCOPES,
        _CHECK_ROLE,
        _CHECK_HOST,
    ),
    "unauthorized_client": (_CHECK_INTEGRATION, _CHECK_ROLE, _CHECK_MAPPING),
    "invalid_scope": (_CHECK_SCOPES, _CHECK_INTEGRATION),
    "invalid_request": (_CHECK_HOST, _CHECK_CLOCK, "no proxy rewrites the form body of the token request"),
    "unsupported_grant_type": (_CHECK_INTEGRATION, _CHECK_HOST),
    "html_response": (
        _CHECK_HOST,
        "no proxy or firewall answers in NetSuite's place",
        "the REST Web Services feature is enabled in the account",
    ),
    "invalid_response": (_CHECK_HOST, "no proxy or firewall answers in NetSuite's place"),
}
# NetSuite answers "Invalid login attempt" (INVALID_LOGIN) to every refused login and keeps the reason in
# the Login Audit Trail, so a REST-style refusal of the client assertion may mean a wrong client ID as well
# as an unknown certificate ID, a bad signature or an expired assertion: list the causes of both.
_INVALID_LOGIN_CAUSES = tuple(dict.fromkeys(CAUSES["invalid_client"] + CAUSES["invalid_grant"]))
_LOGIN_REFUSED_CODES = {"INVALID_LOGIN", "INVALID_LOGIN_ATTEMPT", "INVALID_LOGIN_CREDENTIALS"}
_DEFAULT_CAUSES = (
    _CHECK_INTEGRATION,
    _CHECK_MAPPING,
    _CHECK_CERTIFICATE,
    _CHECK_ALGORITHM,
    _CHECK_CLOCK,
    _CHECK_SCOPES,
    _CHECK_ROLE,
)


class _TransientTokenFailure(Exception):
    """A token endpoint failure worth retrying (network error, 429, 5xx).

    :param status: HTTP status of the answer, ``None`` for a network error.
    :param html: whether the answer was an HTML page (a proxy or maintenance page, not NetSuite's JSON).
    """

    def __init__(self, reason: str, status: int | None = None, html: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.html = html
        self.retry_after: float | None = None  # seconds the answer's Retry-After asked to wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (delta seconds or HTTP date), else None."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _quiet_oauth_debug_logs() -> None:
    # oauthlib and requests-oauthlib log signature base strings, signatures and signed Authorization
    # headers at DEBUG while signing, before anything could mask them: keep those loggers at INFO.
    for name in ("oauthlib", "requests_oauthlib"):
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


def _noop_masker(_: str) -> None:
    return None


class ClientCredentialsAuth(requests.auth.AuthBase):
    """Authenticate with an OAuth 2.0 access token minted by the client credentials (M2M) grant.

    Tokens are cached process-wide (and across processes with ``token_cache_dir``) and refreshed
    ``token_refresh_margin`` seconds before expiry. Token endpoint refusals are configuration problems and
    are never retried; network errors, 429 and 5xx answers are retried a few times, each attempt with a
    newly signed client assertion, waiting ``Retry-After`` when the answer gives one.

    :param config: a validated connection configuration using ``oauth2_client_credentials``.
    :param session: session used to call the token endpoint.
    :param token_cache: in-memory cache; default: the process-wide one.
    :param secret_masker: called with every assertion and access token before anything could log it.
    :param sleep: sleep function used between token endpoint retries (tests replace it).
    """

    unauthorized_hint = (
        "Check the role's permissions (REST Web Services, Log in using OAuth 2.0 Access Tokens) and the "
        "Login Audit Trail (Setup > Users/Roles > User Management)."
    )

    def __init__(
        self,
        config: ConnectionConfig,
        session: requests.Session | None = None,
        *,
        token_cache: TokenCache | None = None,
        secret_masker: SecretMasker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if config.is_tba or config.signing_key is None:
            raise NetSuiteConfigError(
                "ClientCredentialsAuth needs an oauth2_client_credentials connection.", field="auth_type"
            )
        self.config = config
        self.session = session or requests.Session()
        self.token_cache = token_cache if token_cache is not None else PROCESS_TOKEN_CACHE
        self.secret_masker = secret_masker or _noop_masker
        self.sleep = sleep
        self.mints = 0
        self.cache_key = TokenCacheKey(
            config.account_id,
            config.client_id or "",
            config.certificate_id or "",
            config.scopes,
            config.base_url,
            config.signing_key.fingerprint(),
        )
        self.file_cache = (
            FileTokenCache(config.token_cache_dir, config.signing_key.secret_bytes())
            if config.token_cache_dir
            else None
        )
        self._local = threading.local()

    def __repr__(self) -> str:
        c = self.config
        return f"ClientCredentialsAuth(account_id={c.account_id!r}, client_id={c.client_id!r})"

    def identity(self) -> str:
        """Return ``account ..., client ID ..., certificate ID ...`` for messages (nothing secret)."""
        c = self.config
        return f"account {c.account_id}, client ID {c.client_id}, certificate ID {c.certificate_id}"

    def token(self) -> AccessToken:
        """Return a valid access token, minting one only when no cached token is fresh enough."""
        margin = self.config.token_refresh_margin
        mint = self._mint
        if self.file_cache is not None:
            file_cache = self.file_cache

            def mint() -> AccessToken:
                return file_cache.get(self.cache_key, self._mint, margin)

        token = self.token_cache.get(self.cache_key, mint, margin)
        self.secret_masker(token.value)
        return token

    def current_token(self) -> AccessToken | None:
        """Return the token this thread last attached to a request."""
        return getattr(self._local, "token", None)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token()
        self._local.token = token
        request.headers["Authorization"] = f"Bearer {token.value}"
        return request

    def on_unauthorized(self, token: AccessToken | None = None) -> bool:
        """Drop ``token`` (default: this thread's last one) after a 401; return True: a new token may help."""
        token = token or self.current_token()
        self.token_cache.invalidate(self.cache_key, token)
        if self.file_cache is not None:
            self.file_cache.invalidate(self.cache_key, token)
        return True

    def _mint(self) -> AccessToken:
        token_url = self.config.token_url
        retrying = Retrying(
            stop=stop_after_attempt(TOKEN_ENDPOINT_ATTEMPTS),
            wait=self._wait,
            retry=retry_if_exception_type(_TransientTokenFailure),
            before_sleep=self._log_retry,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            response = retrying(self._request_token, token_url)
        except _TransientTokenFailure as exc:
            raise self._unavailable_error(token_url, exc) from None

        token = self._parse_success(response)
        self.secret_masker(token.value)
        self.mints += 1
        log.info(
            "Minted a NetSuite access token for account %s, client ID %s, certificate ID %s; expires at %s",
            self.config.account_id,
            self.config.client_id,
            self.config.certificate_id,
            dt.datetime.fromtimestamp(token.expires_at, dt.timezone.utc).isoformat(timespec="seconds"),
        )
        return token

    def _request_token(self, token_url: str) -> requests.Response:
        # Each attempt signs a new assertion (new jti, iat and exp): a server that refuses a replayed jti
        # must not turn a transient failure into invalid_grant, and the assertion's window must not run
        # down while the retries wait.
        assertion = build_client_assertion(
            self.config.signing_key,
            client_id=self.config.client_id or "",
            certificate_id=self.config.certificate_id or "",
            token_url=token_url,
            scopes=self.config.scopes,
            scope_format=self.config.scope_format,
            lifetime=self.config.assertion_lifetime,
        )
        self.secret_masker(assertion)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        return self._post(token_url, form)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is None:
            return _TOKEN_BACKOFF(state)
        return min(retry_after, self.config.max_retry_wait) + random.uniform(0, TOKEN_RETRY_AFTER_JITTER)

    def _post(self, token_url: str, form: dict[str, str]) -> requests.Response:
        try:
            response = self.session.post(
                token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self.config.timeout,
                verify=self.config.verify_tls,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _TransientTokenFailure(type(exc).__name__) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _describe_transient(response)
        if response.status_code != 200:
            raise self._token_error(response)
        return response

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "Token endpoint failed (%s); retrying in %.1f s (attempt %d)", exc, wait, state.attempt_number
        )

    def _parse_success(self, response: requests.Response) -> AccessToken:
        body = _json_object(response)
        if body is None:
            raise self._token_error(response)
        value = body.get("access_token")
        token_type = body.get("token_type") or "Bearer"  # missing or null: NetSuite only issues bearer tokens
        if not isinstance(value, str) or not value or str(token_type).lower() != "bearer":
            raise self._build_error(
                "invalid_response", response.status_code, "the answer has no bearer access_token"
            )
        try:
            expires_in = float(body.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        now = time.time()
        return AccessToken(value=value, expires_at=now + max(expires_in, 1.0), issued_at=now)

    def _token_error(self, response: requests.Response) -> NetSuiteTokenError:
        body = _json_object(response)
        if body is not None and isinstance(body.get("error"), str):
            description = body.get("error_description")
            return self._build_error(
                body["error"], response.status_code, str(description) if description else None
            )
        rest = _rest_error(body)
        if rest is not None:
            return self._rest_token_error(response.status_code, *rest)
        if _is_html(response):
            return self._build_error("html_response", response.status_code, "the answer was an HTML page")
        return self._build_error(
            "invalid_response",
            response.status_code,
            "the answer was not the JSON NetSuite's token endpoint sends",
        )

    def _rest_token_error(self, status: int, code: str | None, detail: str | None) -> NetSuiteTokenError:
        """Map a REST-style error body (``o:errorDetails``) of the token endpoint to an OAuth error.

        How NetSuite words M2M refusals is not documented: besides OAuth's ``{"error": ...}`` it may answer
        like its REST services, ``{"title": ..., "status": 401, "o:errorDetails": [{"o:errorCode":
        "INVALID_LOGIN", "detail": "Invalid login attempt..."}]}``.
        """
        description = ": ".join(part for part in (code, detail) if part) or None
        if status == 401 or (code or "").upper() in _LOGIN_REFUSED_CODES:
            # OAuth gives 401 to invalid_client; NetSuite's login refusal does not say which credential
            # failed, so the message lists the causes of invalid_client and invalid_grant together.
            return self._build_error("invalid_client", status, description, _INVALID_LOGIN_CAUSES)
        if status == 403:
            return self._build_error("unauthorized_client", status, description)
        return self._build_error("invalid_request", status, description)

    def _unavailable_error(self, token_url: str, last: _TransientTokenFailure) -> NetSuiteTokenError:
        advice = "It may be down or unreachable from this host; try again later."
        if last.status == 429:
            advice = (
                "It refused the requests with 429: the account's concurrency limit (shared by every "
                "integration) or a rate limit was exceeded; lower max_concurrency or try again later."
            )
        if last.html:
            advice += " If it keeps answering with an HTML page, check that: " + "; ".join(
                CAUSES["html_response"]
            )
            advice += "."
        return NetSuiteTokenError(
            f"The NetSuite token endpoint {token_url} did not answer usefully after "
            f"{TOKEN_ENDPOINT_ATTEMPTS} attempts (last answer: {last}) for {self.identity()}. {advice}",
            error="temporarily_unavailable",
            status=last.status,
        )

    def _build_error(
        self, error: str, status: int, description: str | None, causes: tuple[str, ...] | None = None
    ) -> NetSuiteTokenError:
        causes = causes or CAUSES.get(error, _DEFAULT_CAUSES)
        described = f": {description[:_DESCRIPTION_CHARS]}" if description else ""
        message = (
            f"NetSuite refused to issue an access token ({error}, HTTP {status}) for {self.identity()} at "
            f"{self.config.token_url}{described}. Check that: " + "; ".join(causes) + f". {_CHECK_AUDIT}."
        )
        return NetSuiteTokenError(message, error=error, status=status)


def _describe_transient(response: requests.Response) -> _TransientTokenFailure:
    """Say what a 429 or 5xx answer of the token endpoint held, and how long it asked to wait."""
    failure = _transient_failure(response)
    failure.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return failure


def _transient_failure(response: requests.Response) -> _TransientTokenFailure:
    """Describe a 429 or 5xx answer of the token endpoint without quoting more than its error."""
    status = response.status_code
    body = _json_object(response)
    if body is not None and isinstance(body.get("error"), str):
        description = str(body.get("error_description") or "")[:_DESCRIPTION_CHARS]
        return _TransientTokenFailure(
            f"HTTP {status} {body['error']}" + (f": {description}" if description else ""), status
        )
    rest = _rest_error(body)
    if rest is not None:
        description = ": ".join(part for part in rest if part)[:_DESCRIPTION_CHARS]
        return _TransientTokenFailure(f"HTTP {status}" + (f" {description}" if description else ""), status)
    if _is_html(response):
        return _TransientTokenFailure(f"HTTP {status} with an HTML page", status, html=True)
    if not response.content:
        return _TransientTokenFailure(f"HTTP {status} with an empty body", status)
    return _TransientTokenFailure(f"HTTP {status} with a body that is not JSON", status)


def _is_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    text = (response.text or "").lstrip()[:200].lower()
    return "html" in content_type or text.startswith(("<!doctype html", "<html"))


def _rest_error(body: dict[str, Any] | None) -> tuple[str | None, str | None] | None:
    """Return ``(o:errorCode, detail)`` of a REST-style error body, ``None`` for any other body.

    The code and detail of the first ``o:errorDetails`` entry win over a top-level ``o:errorCode`` and
    ``title``.
    """
    if body is None:
        return None
    rest_shaped = "o:errorDetails" in body or "o:errorCode" in body or {"title", "status"} <= body.keys()
    if not rest_shaped:
        return None
    details = body.get("o:errorDetails")
    first = next((d for d in details if isinstance(d, dict)), {}) if isinstance(details, list) else {}
    code = first.get("o:errorCode") or body.get("o:errorCode")
    detail = first.get("detail") or body.get("title")
    return (str(code) if code else None, str(detail) if detail else None)


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content or b"")
    except (ValueError, TypeError):
        return None
    return body if isinstance(body, dict) else None


class TokenBasedAuth(requests.auth.AuthBase):
    """Sign each request with token-based authentication (OAuth 1.0a, HMAC-SHA256).

    The ``realm`` is the canonical account ID (``1234567_SB1``); NetSuite refuses a lower-case realm.

    :param config: a validated connection configuration using ``tba``.
    :param secret_masker: called with every ``Authorization`` value and signature before it could be logged.
    """

    unauthorized_hint = (
        "Check that the consumer key and secret are the integration record's, that the token ID and secret "
        "belong to an access token that is not revoked, that the token's role has the permissions 'Log in "
        "using Access Tokens' and 'REST Web Services', and the Login Audit Trail (Setup > Users/Roles > "
        "User Management)."
    )

    def __init__(self, config: ConnectionConfig, *, secret_masker: SecretMasker | None = None) -> None:
        if not config.is_tba:
            raise NetSuiteConfigError("TokenBasedAuth needs a tba connection.", field="auth_type")
        self.config = config
        self.secret_masker = secret_masker or _noop_masker
        _quiet_oauth_debug_logs()
        for secret in (config.consumer_secret, config.token_secret, config.token_id):
            if secret:
                self.secret_masker(secret)
        self._oauth = OAuth1(
            client_key=config.consumer_key,
            client_secret=config.consumer_secret,
            resource_owner_key=config.token_id,
            resource_owner_secret=config.token_secret,
            signature_method=SIGNATURE_HMAC_SHA256,
            realm=config.account.realm,
        )

    def __repr__(self) -> str:
        c = self.config
        return f"TokenBasedAuth(account_id={c.account_id!r}, consumer_key={c.consumer_key!r})"

    def identity(self) -> str:
        """Return ``account ..., consumer key ...`` for messages (nothing secret)."""
        return f"account {self.config.account_id}, consumer key {self.config.consumer_key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        signed = self._oauth(request)
        header = signed.headers.get("Authorization")
        if header:
            value = header.decode() if isinstance(header, bytes) else header
            self.secret_masker(value)
            for part in value.split(","):
                name, _, quoted = part.strip().partition("=")
                if name == "oauth_signature":
                    self.secret_masker(quoted.strip('"'))
                    self.secret_masker(unquote(quoted.strip('"')))
        return signed

    def current_token(self) -> None:
        """Return ``None``: TBA has no access token."""
        return None

    def on_unauthorized(self, token: Any = None) -> bool:
        """Return False: TBA credentials do not change, so repeating a refused request cannot help."""
        return False
