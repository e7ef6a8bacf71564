"""HTTP client for NetSuite's REST services: authentication, retries, concurrency and 401 re-mint.

Retried (they are transient by NetSuite's error-handling guidance): 429 ``CONCURRENCY_LIMIT_EXCEEDED``,
500, 502, 503, 504, broken connections, timeouts, and a 2xx JSON answer cut short. Waits honour
``Retry-After`` and otherwise grow exponentially with full jitter, so parallel workers do not retry in step.
Everything else is an error of the request itself and is raised at once.
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
# Attribute of a response holding its body as parsed while checking it.
_PARSED_JSON = "_netsuite_parsed_json"


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    :param max_attempts: attempts per request, the first one included.
    :param max_total_wait: seconds of waiting between attempts allowed per request; a wait that would
        go beyond it ends the retries instead.
    :param backoff_base: first exponential backoff ceiling, in seconds (doubled per attempt).
    :param backoff_cap: largest backoff ceiling, in seconds.
    """

    max_attempts: int = 8
    max_total_wait: float = 300.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def __post_init__(self) -> None:
        if (
            self.max_attempts < 1
            or self.max_total_wait < 0
            or self.backoff_base <= 0
            or self.backoff_cap <= 0
        ):
            raise ValueError("RetryPolicy needs max_attempts >= 1 and positive waits")

    def backoff(self, attempt: int) -> float:
        """Return a full-jitter wait for the given attempt number (1 = after the first failure)."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


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


class _Retryable(Exception):
    """A transient failure; carries the error to raise if the retries run out."""

    def __init__(self, reason: str, final: NetSuiteAPIError, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.retry_after = retry_after


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
        self.auth: ClientCredentialsAuth | TokenBasedAuth
        if config.is_tba:
            self.auth = TokenBasedAuth(config, secret_masker=secret_masker)
        else:
            self.auth = ClientCredentialsAuth(
                config, self.session, token_cache=token_cache, secret_masker=secret_masker, sleep=sleep
            )

    @staticmethod
    def _new_session(max_concurrency: int) -> requests.Session:
        session = requests.Session()
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
    ) -> requests.Response:
        """Send one request, retrying transient failures; return the successful response.

        :param path: path under ``base_url`` (``/services/rest/record/v1/customer/1``).
        :param expect_json: treat a 2xx whose body is not complete JSON as transient (a cut-short answer).
        :param retry_transient: set False for requests that must not be sent twice after a 5xx or a
            broken connection (429s are still retried: NetSuite blocked those before doing anything).
        :raises NetSuiteConcurrencyLimitError: 429s persisted after every retry.
        :raises NetSuiteTransientError: 5xx answers, timeouts or broken connections persisted.
        :raises NetSuiteAuthError: NetSuite refused the credentials (twice, for a fresh token).
        :raises NetSuiteAPIError: any other error answer, raised at once.
        """
        url = self.url(path)
        state = {"reauthenticated": False}
        send_headers = {"Accept": "application/json", **(headers or {})}
        kwargs = {"params": params, "json": json, "data": data, "headers": send_headers}
        retrying = Retrying(
            stop=self._should_stop,
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=self._before_sleep(method, path),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, path, kwargs, state, expect_json, retry_transient)
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
        )

    def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        kwargs: dict[str, Any],
        state: dict[str, bool],
        expect_json: bool,
        retry_transient: bool,
    ) -> requests.Response:
        response = self._send(method, url, path, kwargs, retry_transient)
        if response.status_code == 401:
            response = self._after_unauthorized(method, url, path, kwargs, state, response, retry_transient)
        return self._check(response, method, path, expect_json, retry_transient)

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
            if response.status_code != 401:
                return response
            self._count("unauthorized")
        error = parse_error_response(response)
        raise NetSuiteAuthError(
            f"NetSuite refused the credentials for {self.auth.identity()} (401 to {method} {path}"
            f"{', with a freshly minted token' if state['reauthenticated'] else ''}): {error}. "
            f"{self.auth.unauthorized_hint}"
        )

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
        self, response: requests.Response, method: str, path: str, expect_json: bool, retry_transient: bool
    ) -> requests.Response:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            self._count("throttled")
            self.governor.on_throttled()
            raise _Retryable("429 concurrency limit exceeded", self._concurrency_error(response), retry_after)
        if status in RETRY_STATUSES:
            final = parse_error_response(response, NetSuiteTransientError)
            if not retry_transient:
                raise final
            raise _Retryable(f"HTTP {status}", final, retry_after)
        if status >= 400 or status < 200:
            raise parse_error_response(response, NetSuiteAPIError)
        if expect_json and response.content:
            try:
                # Parsed once here and kept for request_json: a SuiteQL page is parsed only once.
                setattr(response, _PARSED_JSON, jsonlib.loads(response.content))
            except ValueError:
                final = NetSuiteTransientError(
                    f"NetSuite answered {method} {path} with {status} but the JSON "
                    "body was incomplete after every retry",
                    status=status,
                )
                if not retry_transient:
                    raise final from None
                raise _Retryable("incomplete JSON body", final) from None
        self.governor.on_success()
        return response

    def _concurrency_error(self, response: requests.Response) -> NetSuiteConcurrencyLimitError:
        parsed = parse_error_response(response, NetSuiteConcurrencyLimitError)
        message = (
            f"NetSuite account {self.config.account_id} exceeded its concurrency limit (429 "
            f"{parsed.code or 'CONCURRENCY_LIMIT_EXCEEDED'}) and the retries ran out. The limit is shared by "
            "every integration of the account: lower max_concurrency, or run these tasks in an Airflow pool "
            "with fewer slots."
        )
        return parsed.reworded(message, NetSuiteConcurrencyLimitError)

    def _should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.retry.max_attempts:
            return True
        return state.idle_for + (state.upcoming_sleep or 0.0) > self.retry.max_total_wait

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return self.retry.backoff(state.attempt_number)

    def _before_sleep(self, method: str, path: str) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            self._count("retries")
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "NetSuite %s %s: %s; retrying in %.2f s (attempt %d of %d)",
                method,
                path,
                getattr(exc, "reason", exc),
                wait,
                state.attempt_number + 1,
                self.retry.max_attempts,
            )

        return before_sleep
