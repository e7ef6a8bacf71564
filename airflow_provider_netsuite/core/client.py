"""HTTP client for NetSuite's REST services: authentication, retries, concurrency and 401 re-mint.

Retried (they are transient by NetSuite's error-handling guidance): 429 ``CONCURRENCY_LIMIT_EXCEEDED``
and any other answer whose error code is a concurrency refusal (RESTlets answer 400
``SSS_REQUEST_LIMIT_EXCEEDED``, SOAP ``WS_REQUEST_BLOCKED`` or ``WS_CONCUR_SESSION_DISALLWD``, and under TBA
the limit can arrive as a 401), 500, 502, 503, 504, broken connections, timeouts, a 2xx JSON answer cut
short and a 2xx SuiteQL answer that is not a page. Waits honour ``Retry-After`` plus a small jitter and
otherwise grow exponentially with full jitter, so parallel workers do not retry in step. Everything else is
an error of the request itself and is raised at once.
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from airflow_provider_netsuite.core.auth import (
    ClientCredentialsAuth,
    SecretMasker,
    TokenBasedAuth,
    parse_retry_after,
)
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import (
    NetSuiteAPIError,
    NetSuiteAuthError,
    NetSuiteConcurrencyLimitError,
    NetSuiteTransientError,
    parse_error_response,
)
from airflow_provider_netsuite.core.governor import ConcurrencyGovernor
from airflow_provider_netsuite.core.tokens import TokenCache

log = logging.getLogger(__name__)

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Error codes that mean "over the account's concurrency limit", whatever the HTTP status carrying them.
CONCURRENCY_CODES = frozenset(
    {
        "CONCURRENCY_LIMIT_EXCEEDED",
        "SSS_REQUEST_LIMIT_EXCEEDED",
        "WS_REQUEST_BLOCKED",
        "WS_CONCUR_SESSION_DISALLWD",
    }
)
# Wait budgets are sums of floats: a remainder below this counts as spent.
_BUDGET_EPSILON = 1e-6
_JSON_KINDS = {list: "array", str: "string", bool: "boolean", type(None): "null"}
# Attribute of a response holding its body as parsed while checking it.
_PARSED_JSON = "_netsuite_parsed_json"


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    :param max_attempts: attempts per request, the first one included.
    :param max_total_wait: seconds of waiting between attempts allowed per request; a wait that would
        go beyond it is shortened to what is left, for one last attempt.
    :param backoff_base: first exponential backoff ceiling, in seconds (doubled per attempt).
    :param backoff_cap: largest backoff ceiling, in seconds.
    :param retry_after_jitter: most random seconds added to a ``Retry-After`` wait.
    """

    max_attempts: int = 8
    max_total_wait: float = 300.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_jitter: float = 1.0

    def __post_init__(self) -> None:
        if (
            self.max_attempts < 1
            or self.max_total_wait < 0
            or self.backoff_base <= 0
            or self.backoff_cap <= 0
            or self.retry_after_jitter < 0
        ):
            raise ValueError("RetryPolicy needs max_attempts >= 1 and positive waits")

    def ceiling(self, attempt: int) -> float:
        """Return the largest backoff for the given attempt number (1 = after the first failure)."""
        return min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))

    def backoff(self, attempt: int) -> float:
        """Return a full-jitter wait for the given attempt number (1 = after the first failure)."""
        return random.uniform(0, self.ceiling(attempt))

    def after_retry_after(self, retry_after: float, attempt: int) -> float:
        """Return ``retry_after`` plus a small jitter, so workers told one delay do not retry in step."""
        return retry_after + random.uniform(0, min(self.retry_after_jitter, self.ceiling(attempt)))


@dataclass(frozen=True)
class ClientStats:
    """Counters of one client: HTTP requests sent, retries, 429s, tokens minted, 401s seen."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    token_mints: int = 0
    unauthorized: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Expected:
    """What a request's 2xx answer must be: JSON, checked by ``check_body``, and whether to retry it."""

    json: bool
    check_body: Callable[[Any], str | None] | None
    retry_transient: bool
    accept_text: bool = False


class _Retryable(Exception):
    """A transient failure; carries the error to raise if the retries run out."""

    def __init__(self, reason: str, final: NetSuiteAPIError, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.retry_after = retry_after


def concurrency_refusal_code(response: requests.Response) -> str | None:
    """Return the concurrency-limit error code an error answer carries, whatever its status, else None.

    The code is looked for at the top level (``o:errorCode``) and in every ``o:errorDetails`` entry.
    """
    try:
        body = jsonlib.loads(response.content or b"")
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict):
        return None
    details = body.get("o:errorDetails")
    entries = [body, *(d for d in details if isinstance(d, dict))] if isinstance(details, list) else [body]
    for entry in entries:
        code = entry.get("o:errorCode")
        if isinstance(code, str) and code.strip().upper() in CONCURRENCY_CODES:
            return code.strip().upper()
    return None


def suiteql_page_problem(body: Any) -> str | None:
    """Return why a parsed 2xx SuiteQL answer is not a complete page, or None when it is one.

    NetSuite's page always carries an ``items`` list; an answer without one was cut short or came from
    something else (a proxy), and must not be read as "no rows".
    """
    if not isinstance(body, dict):
        return f"the body is JSON {_JSON_KINDS.get(type(body), 'number')}, not an object"
    if not isinstance(body.get("items"), list):
        return "the body has no items list"
    return None


class _Session(requests.Session):
    """A ``requests.Session`` that reads the environment's proxy and CA-bundle settings once per origin.

    requests reads them (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``...) for every request,
    walking ``os.environ`` twice: a third of a request's CPU in an environment as large as an Airflow
    worker's. A client sends every request to one origin, so the answer is kept, per origin and arguments.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple, dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert, tuple(sorted((proxies or {}).items())))
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


class NetSuiteClient:
    """Send authenticated requests to one NetSuite account, with retries and a concurrency governor.

    :param config: the validated connection configuration.
    :param max_concurrency: most requests in flight at once (lowered automatically after 429s).
    :param retry: the retry policy for transient failures; by default the connection's ``max_retries``
        and ``max_retry_wait``.
    :param session: a ``requests.Session`` to use; by default one with a connection pool sized for
        ``max_concurrency``.
    :param secret_masker: called with every secret derived at run time (Airflow's ``mask_secret``).
    :param token_cache: in-memory token cache; default: the process-wide one.
    :param sleep: sleep function used between retries (tests replace it).
    """

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        max_concurrency: int = 4,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        secret_masker: SecretMasker | None = None,
        token_cache: TokenCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.retry = retry or RetryPolicy(
            max_attempts=config.max_retries + 1, max_total_wait=config.max_retry_wait
        )
        self.governor = ConcurrencyGovernor(max_concurrency)
        self.session = session or self._new_session(max_concurrency)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "retries": 0, "throttled": 0, "unauthorized": 0}
        self._signed_in = False  # a request with these credentials has succeeded
        self.auth: ClientCredentialsAuth | TokenBasedAuth
        if config.is_tba:
            self.auth = TokenBasedAuth(config, secret_masker=secret_masker)
        else:
            self.auth = ClientCredentialsAuth(
                config, self.session, token_cache=token_cache, secret_masker=secret_masker, sleep=sleep
            )

    @staticmethod
    def _new_session(max_concurrency: int) -> requests.Session:
        session = _Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(max_concurrency, 10))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def __enter__(self) -> NetSuiteClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        self.session.close()

    @property
    def stats(self) -> ClientStats:
        """Return a snapshot of this client's counters."""
        with self._lock:
            counts = dict(self._counts)
        return ClientStats(token_mints=getattr(self.auth, "mints", 0), **counts)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path``; absolute URLs are accepted only under ``base_url``."""
        base = self.config.base_url
        if path.startswith(("http://", "https://")):
            target, own = urlsplit(path), urlsplit(base)
            if (target.scheme, target.netloc) != (own.scheme, own.netloc):
                raise ValueError(
                    f"refusing to send NetSuite credentials to {target.scheme}://{target.netloc}"
                )
            return path
        return base + "/" + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = False,
        retry_transient: bool = True,
        check_body: Callable[[Any], str | None] | None = None,
        accept_text: bool = False,
    ) -> requests.Response:
        """Send one request, retrying transient failures; return the successful response.

        :param path: path under ``base_url`` (``/services/rest/record/v1/customer/1``).
        :param expect_json: treat a 2xx whose body is not complete JSON as transient (a cut-short answer).
        :param retry_transient: set False for requests that must not be sent twice after a 5xx or a
            broken connection (concurrency refusals are still retried: NetSuite blocked those before doing
            anything).
        :param check_body: with ``expect_json``, called with the parsed 2xx body; a returned reason makes the
            answer incomplete, retried like a cut-short body. An empty body is then incomplete too.
        :param accept_text: with ``expect_json``, a 2xx body that neither claims to be JSON nor is an HTML
            page (plain text) is accepted as it is; JSON cut short and HTML pages stay incomplete.
        :raises NetSuiteConcurrencyLimitError: concurrency refusals (429 or a concurrency error code)
            persisted after every retry.
        :raises NetSuiteTransientError: 5xx answers, timeouts or broken connections persisted.
        :raises NetSuiteAuthError: NetSuite refused the credentials (twice, for a fresh token).
        :raises NetSuiteAPIError: any other error answer, raised at once.
        """
        url = self.url(path)
        state = {"reauthenticated": False}
        send_headers = {"Accept": "application/json", **(headers or {})}
        kwargs = {"params": params, "json": json, "data": data, "headers": send_headers}
        expected = _Expected(expect_json or check_body is not None, check_body, retry_transient, accept_text)
        retrying = Retrying(
            stop=self._should_stop,
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=self._before_sleep(method, path),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, path, kwargs, state, expected)
        except _Retryable as exc:
            raise exc.final from None

    def request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Send a request like :meth:`request` and return its JSON object body (``{}`` for an empty body)."""
        response = self.request(method, path, expect_json=True, **kwargs)
        if not response.content:
            return {}
        body = getattr(response, _PARSED_JSON, None)
        if body is None:
            body = response.json()
        if not isinstance(body, dict):
            raise NetSuiteAPIError(
                f"NetSuite answered {method} {path} with JSON that is not an object",
                status=response.status_code,
            )
        return body

    def suiteql_page(
        self, query: str, *, params: list[Any] | None = None, limit: int = 1000, offset: int = 0
    ) -> dict[str, Any]:
        """Run one page of a SuiteQL query and return NetSuite's parsed page (``items``, ``hasMore``...).

        :param params: positional values for ``?`` placeholders.
        :param limit: rows per page, 1..1000.
        :param offset: first row; NetSuite requires it to be a multiple of ``limit``.
        """
        body: dict[str, Any] = {"q": query}
        if params is not None:
            body["params"] = params
        return self.request_json(
            "POST",
            SUITEQL_PATH,
            params={"limit": limit, "offset": offset},
            json=body,
            headers={"Prefer": "transient"},
            check_body=suiteql_page_problem,
        )

    def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        kwargs: dict[str, Any],
        state: dict[str, bool],
        expected: _Expected,
    ) -> requests.Response:
        retry_transient = expected.retry_transient
        response = self._send(method, url, path, kwargs, retry_transient)
        # A 401 carrying a concurrency error code is the account's limit, not refused credentials (seen
        # under TBA): _check backs off and retries it like a 429, without minting a new token.
        if response.status_code == 401 and not concurrency_refusal_code(response):
            response = self._after_unauthorized(method, url, path, kwargs, state, response, retry_transient)
        return self._check(response, method, path, expected)

    def _after_unauthorized(
        self,
        method: str,
        url: str,
        path: str,
        kwargs: dict[str, Any],
        state: dict[str, bool],
        response: requests.Response,
        retry_transient: bool,
    ) -> requests.Response:
        # A token can expire or be revoked between minting and use: drop it, mint a new one and send the
        # same request once more. A second 401 means the credentials themselves are refused.
        self._count("unauthorized")
        if not state["reauthenticated"] and self.auth.on_unauthorized(self.auth.current_token()):
            state["reauthenticated"] = True
            log.info(
                "NetSuite answered 401 to %s %s; minting a new access token and repeating once", method, path
            )
            response = self._send(method, url, path, kwargs, retry_transient)
            if response.status_code != 401 or concurrency_refusal_code(response):
                return response
            self._count("unauthorized")
        if self.config.is_tba and self._signed_in:
            self._retry_tba_login_refusal(method, path, response)
        error = parse_error_response(response)
        concurrency = (
            " Under TBA NetSuite also answers 401 when the account's concurrency limit is exceeded: if the "
            "credentials are right, lower max_concurrency or the Airflow pool's slots."
            if self.config.is_tba
            else ""
        )
        raise NetSuiteAuthError(
            f"NetSuite refused the credentials for {self.auth.identity()} (401 to {method} {path}"
            f"{', with a freshly minted token' if state['reauthenticated'] else ''}): {error}. "
            f"{self.auth.unauthorized_hint}{concurrency}"
        )

    def _retry_tba_login_refusal(self, method: str, path: str, response: requests.Response) -> None:
        """Back off and repeat a TBA 401 that is likely the account's concurrency limit in disguise.

        Under TBA, NetSuite has been seen answering requests over the concurrency limit with a plain 401
        ``INVALID_LOGIN``. Called once a request of this client has succeeded, so the credentials are known
        good: the 401 is treated like a 429 for the whole retry budget. Before any success a 401 is refused
        credentials at once, since no retry can fix a wrong secret.

        :raises _Retryable: always, to send the request again.
        """
        self._throttled()
        error = parse_error_response(response, NetSuiteConcurrencyLimitError)
        final = error.reworded(
            f"NetSuite account {self.config.account_id} kept answering 401 {error.code or 'INVALID_LOGIN'} "
            f"to {method} {path} although earlier requests with the same token-based credentials "
            "succeeded. Under TBA, NetSuite reports its concurrency limit this way, and the retries ran "
            "out: lower max_concurrency, or run these tasks in an Airflow pool with fewer slots. If the "
            f"token was revoked in the meantime: {self.auth.unauthorized_hint}",
            NetSuiteConcurrencyLimitError,
        )
        log.info(
            "NetSuite answered 401 to %s %s under TBA, which can mean the account's concurrency limit; "
            "backing off and repeating it",
            method,
            path,
        )
        raise _Retryable("HTTP 401 under TBA (possibly the concurrency limit)", final)

    def _send(
        self, method: str, url: str, path: str, kwargs: dict[str, Any], retry_transient: bool
    ) -> requests.Response:
        self._count("requests")
        started = time.monotonic()
        try:
            with self.governor.slot():
                response = self.session.request(
                    method,
                    url,
                    auth=self.auth,
                    timeout=self.config.timeout,
                    verify=self.config.verify_tls,
                    **kwargs,
                )
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            # ChunkedEncodingError is a connection dropped in the middle of the body (IncompleteRead).
            reason = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
            final = NetSuiteTransientError(
                f"NetSuite {method} {path} failed: {reason} ({type(exc).__name__}) "
                "persisted after every retry"
            )
            if not retry_transient:
                raise final from None
            raise _Retryable(reason, final) from None
        log.debug(
            "NetSuite %s %s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _check(
        self, response: requests.Response, method: str, path: str, expected: _Expected
    ) -> requests.Response:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429 or (status >= 400 and concurrency_refusal_code(response)):
            self._throttled()
            final = self._concurrency_error(response)
            raise _Retryable(f"HTTP {status} concurrency limit exceeded ({final.code})", final, retry_after)
        if status in RETRY_STATUSES:
            final = parse_error_response(response, NetSuiteTransientError)
            if not expected.retry_transient:
                raise final
            raise _Retryable(f"HTTP {status}", final, retry_after)
        if status >= 400 or status < 200:
            raise parse_error_response(response, NetSuiteAPIError)
        if expected.json:
            self._check_body(response, method, path, expected)
        self._signed_in = True
        self.governor.on_success()
        return response

    def _check_body(self, response: requests.Response, method: str, path: str, expected: _Expected) -> None:
        """Parse a 2xx JSON body once, keeping it for request_json; raise when it is incomplete."""
        if not response.content and expected.check_body is None:
            return
        if expected.accept_text and not _claims_json_or_html(response):
            return
        try:
            body = jsonlib.loads(response.content)
        except ValueError:
            raise self._incomplete(response, method, path, "the JSON body was incomplete", expected) from None
        setattr(response, _PARSED_JSON, body)
        problem = expected.check_body(body) if expected.check_body else None
        if problem:
            raise self._incomplete(response, method, path, problem, expected)

    @staticmethod
    def _incomplete(
        response: requests.Response, method: str, path: str, problem: str, expected: _Expected
    ) -> Exception:
        final = NetSuiteTransientError(
            f"NetSuite answered {method} {path} with {response.status_code} but {problem} after every retry",
            status=response.status_code,
        )
        if not expected.retry_transient:
            return final
        return _Retryable(f"incomplete answer: {problem}", final)

    def _throttled(self) -> None:
        """Count a concurrency refusal and lower the cap on requests in flight."""
        self._count("throttled")
        self.governor.on_throttled()

    def _concurrency_error(self, response: requests.Response) -> NetSuiteConcurrencyLimitError:
        parsed = parse_error_response(response, NetSuiteConcurrencyLimitError)
        code = concurrency_refusal_code(response) or parsed.code or "CONCURRENCY_LIMIT_EXCEEDED"
        parsed.code = code  # the code that made this a concurrency refusal, not only the first detail's
        message = (
            f"NetSuite account {self.config.account_id} exceeded its concurrency limit (HTTP "
            f"{response.status_code} {code}) and the retries ran out. The limit is shared by every "
            "integration of the account: lower max_concurrency, or run these tasks in an Airflow pool "
            "with fewer slots."
        )
        return parsed.reworded(message, NetSuiteConcurrencyLimitError)

    def _remaining_wait(self, state: RetryCallState) -> float:
        return self.retry.max_total_wait - state.idle_for

    def _should_stop(self, state: RetryCallState) -> bool:
        # The wait is already cut to what is left of the budget, so a spent budget means the attempt that
        # just failed was the last one.
        if state.attempt_number >= self.retry.max_attempts:
            return True
        return self._remaining_wait(state) <= _BUDGET_EPSILON

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            wait = self.retry.after_retry_after(exc.retry_after, state.attempt_number)
        else:
            wait = self.retry.backoff(state.attempt_number)
        return max(0.0, min(wait, self._remaining_wait(state)))

    def _before_sleep(self, method: str, path: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            self._count("retries")
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            # idle_for already counts this wait: nothing left means the next attempt is the last one.
            spent = self._remaining_wait(state) <= _BUDGET_EPSILON
            last = ", the last: the total wait allowed is spent" if spent else ""
            log.warning(
                "NetSuite %s %s: %s; retrying in %.2f s (attempt %d of %d%s)",
                method,
                path,
                getattr(exc, "reason", exc),
                wait,
                state.attempt_number + 1,
                self.retry.max_attempts,
                last,
            )

        return before_sleep


def _claims_json_or_html(response: requests.Response) -> bool:
    """Tell whether a body says it is JSON (by its content type) or is an HTML page."""
    content_type = response.headers.get("Content-Type", "").lower()
    if "json" in content_type or "html" in content_type:
        return True
    return response.content.lstrip()[:1] in (b"{", b"[", b"<")
