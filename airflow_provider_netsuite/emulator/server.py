"""The emulator's HTTP server: NetSuite's token, SuiteQL and governance endpoints, plus admin endpoints.

Every request under ``/services/`` passes one gateway: the fault hook (when faults are configured), then,
for data endpoints, the concurrency limit with its latency, then the host check and authentication (bearer
token or TBA), then the ``Accept-Language`` check (it must name the company's default language, if it is
sent at all). Admin endpoints live under ``/_emulator/`` and are not NetSuite's.

Only the account's host form is accepted: a request whose ``Host`` is under ``netsuite.com`` but whose
first label is not the account ID in lower case with ``-`` (``1234567-sb1``) gets NetSuite's 401
``INVALID_LOGIN`` on data endpoints and 400 ``invalid_grant`` from the token endpoint. Other hosts
(loopback, a test host) are not checked.

Design choices where the sources are silent (UNCONFIRMED): ``Accept-Language`` is compared by its first
entry's primary language tag only (``en-GB;q=0.9`` counts as ``en``) and ``*`` matches any language;
``governanceLimits`` answers 403 ``INSUFFICIENT_PERMISSION`` to a certificate mapped to a role other than
``administrator`` (TBA tokens count as administrator).

Further UNCONFIRMED choices are settings of :class:`~airflow_provider_netsuite.emulator.state.RuntimeConfig`
(defaults in brackets): the largest SuiteQL ``limit`` (``suiteql_max_limit``, 1000; a request without
``limit`` gets pages of 1000 rows or this maximum if it is smaller), the result cap at or above which an
``offset`` is refused (``suiteql_max_results``, 100000), whether SuiteQL needs ``Prefer: transient``
(``require_transient``, true), whether null values are left out of SuiteQL items (``omit_nulls``, true)
and the date format SuiteQL renders dates in (``date_format``, ``M/D/YYYY``). Every ``Prefer`` header line
is read; preferences are split on commas and compared case-insensitively without their ``;`` parameters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from airflow_provider_netsuite.emulator import errors, records
from airflow_provider_netsuite.emulator.auth import (
    ASSERTION_TYPE,
    GRANT_TYPE,
    REST_SCOPE,
    TOKEN_PATH,
    AssertionRejected,
    AssertionVerifier,
    Principal,
    TBAVerifier,
    TokenIssuer,
    accepted_audiences,
    account_realm,
    is_foreign_netsuite_host,
)
from airflow_provider_netsuite.emulator.faults import FaultInjector
from airflow_provider_netsuite.emulator.governance import Governor
from airflow_provider_netsuite.emulator.state import (
    ADMINISTRATOR_ROLE,
    RegistrationError,
    RuntimeConfig,
    StateStore,
    parse_scopes,
    register_certificate,
    register_tba_token,
)

log = logging.getLogger(__name__)

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
GOVERNANCE_PATH = "/services/rest/system/v1/governanceLimits"
COLLECTION_MEDIA_TYPE = "application/vnd.oracle.resource+json; type=collection"
MAX_LIMIT = 1000  # default of RuntimeConfig.suiteql_max_limit
MAX_RESULTS = 100_000  # default of RuntimeConfig.suiteql_max_results
AUDIT_TRAIL_SIZE = 200

FaultHook = Callable[[Request, dict[str, Any]], Awaitable[Response | None]]


class EmulatorContext:
    """Everything one running emulator holds: state on disk, settings, tokens, governance, audit trail."""

    def __init__(
        self, state_dir: str | Path, account_id: str, config: RuntimeConfig, seed: int | None
    ) -> None:
        self.state_dir = Path(state_dir)
        self.account_id = account_realm(account_id)
        self.config = config
        self.store = StateStore(state_dir)
        self.assertions = AssertionVerifier(self.store, self.account_id)
        self.tokens = TokenIssuer(self.account_id)
        self.tba = TBAVerifier(self.store, self.account_id)
        self.governor = Governor(config, seed=seed)
        self.audit: deque[dict[str, Any]] = deque(maxlen=AUDIT_TRAIL_SIZE)
        # Fault injection plugs in here: called for every NetSuite request while config.faults is set;
        # a returned response is sent instead of the normal one.
        self.fault_hook: FaultHook | None = None
        self._engines = threading.local()
        self._engine_generation = 0

    def record_login(self, kind: str, reason: str, detail: str = "") -> None:
        """Append one entry to the emulated Login Audit Trail (no secrets in it)."""
        self.audit.append({"time": time.time(), "kind": kind, "reason": reason, "detail": detail})
        if reason != "Success":
            log.info("Login refused (%s): %s %s", kind, reason, detail)

    def engine(self) -> Any:
        """Return this thread's SuiteQL engine, rebuilt after the database or its settings changed."""
        from airflow_provider_netsuite.emulator.suiteql import SuiteQLEngine

        key = (self._engine_generation, self.config.date_format, self.config.omit_nulls)
        cached = getattr(self._engines, "value", None)
        if cached is None or cached[0] != key:
            engine = SuiteQLEngine(str(self.store.db_path), date_format=key[1], omit_nulls=key[2])
            cached = (key, engine)
            self._engines.value = cached
        return cached[1]

    def foreign_host(self, request: Request) -> str | None:
        """Return the request's host when it is a NetSuite host of another form or account, else ``None``."""
        host = host_name(request.headers.get("host", ""))
        if is_foreign_netsuite_host(host, self.account_id):
            self.record_login("host", "InvalidLogin", host)
            return host
        return None

    def database_changed(self) -> None:
        """Make every thread build a fresh SuiteQL engine on its next query."""
        self._engine_generation += 1

    def authenticate(self, request: Request) -> Principal | None:
        """Return who a data request is made as, or ``None`` when its credentials are refused."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            principal, reason = self.tokens.check(credentials.strip())
            kind = "oauth2"
        elif scheme.lower() == "oauth":
            self.governor.stats.tba_requests += 1
            principal, reason = self.tba.verify(request.method, str(request.url), dict(request.headers))
            kind = "tba"
        else:
            principal, reason, kind = None, "MissingCredentials", "none"
        if principal is not None and REST_SCOPE not in principal.scopes:
            principal, reason = None, "ScopeMismatched"
        self.record_login(kind, reason, request.url.path)
        return principal


def host_name(host_header: str) -> str:
    """Return the host of a ``Host`` header as sent (case kept), without its port."""
    name, colon, port = host_header.strip().rpartition(":")
    return name if colon and port.isdigit() and not name.endswith(":") else host_header.strip()


def create_app(
    state_dir: str | Path,
    *,
    account_id: str = "1234567_SB1",
    config: RuntimeConfig | None = None,
    seed: int | None = 42,
    extensions: Sequence[Callable[[FastAPI, EmulatorContext], None]] = (),
) -> FastAPI:
    """Build the emulator application for a state directory.

    :param state_dir: directory holding ``state.json`` and the SQLite database.
    :param account_id: the account ID the emulator plays (any form; kept upper-case with ``_``).
    :param config: initial runtime settings.
    :param seed: seed of the latency jitter.
    :param extensions: callables that add more routes (record service, async jobs); routes under
        ``/services/rest/`` automatically pass the concurrency limit and authentication.
    """
    context = EmulatorContext(state_dir, account_id, config or RuntimeConfig(), seed)
    context.fault_hook = FaultInjector(context)
    app = FastAPI(title="NetSuite emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = context
    _install_gateway(app, context)
    _install_error_handlers(app)
    _add_token_route(app, context)
    _add_data_routes(app, context)
    _add_admin_routes(app, context)
    app.include_router(records.router)
    for extension in extensions:
        extension(app, context)
    return app


def _install_gateway(app: FastAPI, context: EmulatorContext) -> None:
    @app.middleware("http")
    async def netsuite_gateway(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/services/"):
            return await call_next(request)
        response = None
        if context.config.faults and context.fault_hook is not None:
            response = await context.fault_hook(request, context.config.faults)
        if response is None:
            if request.url.path == TOKEN_PATH:
                response = await call_next(request)
            else:
                response = await _governed(request, call_next, context)
        context.governor.record(response.status_code)
        return response


async def _governed(
    request: Request, call_next: Callable[[Request], Awaitable[Response]], context: EmulatorContext
) -> Response:
    async with context.governor.slot() as admitted:
        if not admitted:
            return errors.concurrency_limit_response(context.config.retry_after)
        if context.foreign_host(request) is not None:
            return errors.invalid_login_response(context.account_id)
        principal = context.authenticate(request)
        if principal is None:
            return errors.invalid_login_response(context.account_id)
        request.state.principal = principal
        refusal = _check_accept_language(request, context.config.company_language)
        if refusal is not None:
            return refusal
        return await call_next(request)


def primary_language(tag: str) -> str:
    """Return the primary language subtag of a language range: ``en-US;q=0.8`` gives ``en``."""
    return tag.split(";")[0].strip().replace("_", "-").split("-")[0].lower()


def _check_accept_language(request: Request, company_language: str) -> Response | None:
    """Refuse an ``Accept-Language`` whose first language is not the company's default language."""
    value = request.headers.get("accept-language")
    if value is None or not value.strip():
        return None
    first = primary_language(value.split(",")[0])
    if first in ("*", primary_language(company_language)):
        return None
    return errors.error_response(
        400,
        f"Invalid header value {value}. The Accept-Language header must match the company's default "
        f"language ({company_language}).",
        "INVALID_HEADER",
        header="Accept-Language",
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/services/"):
            return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)
        detail = "The request could not be understood by the server due to malformed syntax."
        if error.status_code == 404:
            detail = f"The requested resource {request.url.path} was not found."
        return errors.error_response(error.status_code, detail, "INVALID_REQUEST", headers=error.headers)


def _add_token_route(app: FastAPI, context: EmulatorContext) -> None:
    @app.post(TOKEN_PATH)
    async def token(request: Request) -> Response:
        context.governor.stats.token_requests += 1
        forced = context.config.token_endpoint_failure
        if forced:
            context.record_login("assertion", "Forced", forced)
            return _forced_token_failure(forced, context.account_id)
        if context.foreign_host(request) is not None:
            return errors.oauth_error_response(
                "invalid_grant", "InvalidLogin: this host does not serve the account"
            )
        form = await request.form()
        problem = _check_token_form(form)
        if problem is not None:
            context.record_login("assertion", problem.reason)
            return errors.oauth_error_response(problem.error, problem.reason, status=problem.status)
        audiences = accepted_audiences(context.account_id, str(request.base_url))
        try:
            certificate, scopes = context.assertions.verify(
                str(form["client_assertion"]),
                audiences,
                clock_skew=context.config.clock_skew,
                max_validity=context.config.max_assertion_validity,
            )
        except AssertionRejected as rejection:
            context.record_login("assertion", rejection.reason.split(":")[0], rejection.reason)
            return errors.oauth_error_response(
                rejection.error, rejection.reason, status=rejection.status, account_id=context.account_id
            )
        lifetime = context.config.token_lifetime
        access_token = context.tokens.issue(certificate, scopes, lifetime)
        context.governor.stats.tokens_issued += 1
        context.record_login("assertion", "Success", certificate.certificate_id)
        log.info(
            "Issued an access token to client ID %s (certificate ID %s), valid %d s",
            certificate.client_id,
            certificate.certificate_id,
            lifetime,
        )
        body = {"access_token": access_token, "expires_in": lifetime, "token_type": "Bearer"}
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _check_token_form(form: Any) -> AssertionRejected | None:
    """Check the form fields of a client-credentials request; return the problem, if any."""
    grant_type = form.get("grant_type")
    if not grant_type:
        return AssertionRejected("grant_type is missing", error="invalid_request")
    if grant_type != GRANT_TYPE:
        return AssertionRejected(f"grant_type must be {GRANT_TYPE}", error="unsupported_grant_type")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        return AssertionRejected(f"client_assertion_type must be {ASSERTION_TYPE}", error="invalid_request")
    if not form.get("client_assertion"):
        return AssertionRejected("client_assertion is missing", error="invalid_request")
    return None


def _forced_token_failure(failure: str, account_id: str) -> Response:
    """Answer the token endpoint the way an administrator forced it to fail."""
    if failure == "html":
        page = (
            "<html><head><title>503 Service Unavailable</title></head><body>Service Unavailable</body></html>"
        )
        return HTMLResponse(page, status_code=503)
    if failure == "non_json":
        return PlainTextResponse("Service temporarily unavailable, please try again later", status_code=500)
    if failure == "server_error":
        return errors.oauth_error_response("server_error", "An unexpected error occurred.", status=500)
    status = 401 if failure == "invalid_client" else 400
    return errors.oauth_error_response(
        failure, "Forced by the emulator", status=status, account_id=account_id
    )


def _add_data_routes(app: FastAPI, context: EmulatorContext) -> None:
    @app.get(GOVERNANCE_PATH)
    async def governance_limits(request: Request) -> Response:
        if not _is_administrator(context, getattr(request.state, "principal", None)):
            return errors.error_response(
                403,
                "Permission Violation: you need the Administrator role to view governance limits.",
                "INSUFFICIENT_PERMISSION",
            )
        return JSONResponse(context.governor.limits())

    @app.post(SUITEQL_PATH)
    async def suiteql(request: Request) -> Response:
        return await _run_suiteql(request, context)


def _is_administrator(context: EmulatorContext, principal: Principal | None) -> bool:
    """Tell whether a request's principal logs in with the administrator role.

    Only OAuth 2.0 certificates carry a role; TBA tokens (and requests let through without a principal)
    count as administrator.
    """
    if principal is None or principal.certificate_id is None:
        return True
    certificate = context.store.certificate(principal.certificate_id)
    return certificate is None or certificate.is_administrator


def preferences(request: Request) -> set[str]:
    """Return the preferences of every ``Prefer`` header line, lower-case and without their parameters.

    ``Prefer: respond-async`` and ``Prefer: Transient; x=1`` on two lines give ``{"respond-async",
    "transient"}``.
    """
    values = ",".join(request.headers.getlist("prefer"))
    names = (item.split(";")[0].strip().lower() for item in values.split(","))
    return {name for name in names if name}


async def _run_suiteql(request: Request, context: EmulatorContext) -> Response:
    """Answer one SuiteQL page request."""
    if context.config.require_transient and "transient" not in preferences(request):
        return errors.error_response(
            400,
            "Invalid header value. The Prefer header must be set to 'transient' for SuiteQL queries.",
            "INVALID_HEADER",
            header="Prefer",
        )
    max_results = context.config.suiteql_max_results
    paging = _paging(request, context.config.suiteql_max_limit, max_results)
    if isinstance(paging, Response):
        return paging
    limit, offset = paging
    parsed = await _suiteql_body(request)
    if isinstance(parsed, Response):
        return parsed
    query, params = parsed
    from airflow_provider_netsuite.emulator.suiteql import SuiteQLError

    url = str(request.base_url).rstrip("/") + SUITEQL_PATH
    try:
        body = await run_in_threadpool(_page_body, context, query, params, (limit, offset), url, max_results)
    except SuiteQLError as error:
        return errors.error_response(
            getattr(error, "status", 400),
            error.detail,
            getattr(error, "code", "INVALID_PARAMETER"),
            query_param="q",
        )
    except Exception:
        error_id = uuid.uuid4().hex[:20]
        log.exception("SuiteQL query failed unexpectedly (error ID %s)", error_id)
        return errors.error_response(
            500, f"An unexpected error occurred. Error ID: {error_id}", "UNEXPECTED_ERROR"
        )
    return Response(body, media_type=COLLECTION_MEDIA_TYPE)


def _page_body(
    context: EmulatorContext,
    query: str,
    params: list | None,
    paging: tuple[int, int],
    url: str,
    max_results: int,
) -> bytes:
    """Run the query and encode its page, in a worker thread: a page of 1000 rows is milliseconds of CPU
    that would otherwise hold up the event loop, and with it the latency of every other request.
    """
    limit, offset = paging
    items, total = context.engine().execute(query, params, limit, offset)
    page = _page(url, items, total, limit, offset, max_results)
    return json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _paging(
    request: Request, max_limit: int = MAX_LIMIT, max_results: int = MAX_RESULTS
) -> tuple[int, int] | Response:
    """Read and check ``limit`` and ``offset``; return them or the 400 response.

    :param max_limit: the largest ``limit``; without one the page has 1000 rows (fewer if that is more).
    :param max_results: the result cap; an ``offset`` at or above it is refused.
    """
    limit = _integer(request.query_params.get("limit", str(min(MAX_LIMIT, max_limit))))
    if limit is None or not 1 <= limit <= max_limit:
        return _bad_query_param("limit", f"The value must be an integer between 1 and {max_limit}.")
    offset = _integer(request.query_params.get("offset", "0"))
    if offset is None or offset < 0:
        return _bad_query_param("offset", "The value must be an integer greater than or equal to 0.")
    if offset % limit:
        return _bad_query_param("offset", "The offset must be divisible by the limit.")
    if offset >= max_results:
        return _bad_query_param(
            "offset",
            f"The offset must be less than {max_results}; SuiteQL returns at most {max_results} results.",
        )
    return limit, offset


def _integer(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _bad_query_param(name: str, reason: str) -> Response:
    return errors.error_response(
        400, f"Invalid query parameter value '{name}'. {reason}", "INVALID_PARAMETER", query_param=name
    )


async def _suiteql_body(request: Request) -> tuple[str, list | None] | Response:
    """Read ``{"q": ..., "params": [...]}``; return the query and parameters or the 400 response."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return errors.error_response(
            400,
            "The request could not be understood by the server due to malformed syntax.",
            "INVALID_REQUEST",
        )
    query = body.get("q") if isinstance(body, dict) else None
    if not isinstance(query, str) or not query.strip():
        return errors.error_response(
            400,
            "Invalid search query. The request body must contain the query as a non-empty string in 'q'.",
            "INVALID_PARAMETER",
            query_param="q",
        )
    params = body.get("params")
    if params is not None and not isinstance(params, list):
        return errors.error_response(
            400,
            "Invalid search query. 'params' must be an array of values.",
            "INVALID_PARAMETER",
            query_param="q",
        )
    return query, params


def _page(
    base: str, items: list[dict], total: int, limit: int, offset: int, max_results: int = MAX_RESULTS
) -> dict[str, Any]:
    """Shape one SuiteQL page with NetSuite's ``links``, ``count``, ``hasMore`` and ``totalResults``.

    ``hasMore`` and ``totalResults`` describe all the results, but no link points at an offset the
    emulator refuses (``max_results`` or more) or past the data: beyond the cap there is no ``next`` and
    ``last`` is the last page below the cap.
    """
    items = [item if "links" in item else {"links": [], **item} for item in items]
    has_more = offset + len(items) < total
    last = min(max(total - 1, 0), max_results - 1) // limit * limit
    links = []
    if offset > 0:
        links.append({"rel": "first", "href": f"{base}?limit={limit}&offset=0"})
        prev = min(max(offset - limit, 0), last)
        links.append({"rel": "prev", "href": f"{base}?limit={limit}&offset={prev}"})
    if has_more:
        if offset + limit <= last:
            links.append({"rel": "next", "href": f"{base}?limit={limit}&offset={offset + limit}"})
        links.append({"rel": "last", "href": f"{base}?limit={limit}&offset={last}"})
    links.append({"rel": "self", "href": f"{base}?limit={limit}&offset={offset}"})
    return {
        "links": links,
        "count": len(items),
        "hasMore": has_more,
        "offset": offset,
        "totalResults": total,
        "items": items,
    }


def _add_admin_routes(app: FastAPI, context: EmulatorContext) -> None:
    @app.get("/_emulator/stats")
    async def stats() -> dict[str, Any]:
        return context.governor.stats.as_dict(context.governor.in_flight)

    @app.post("/_emulator/stats/reset")
    async def reset_stats() -> dict[str, Any]:
        context.governor.reset()
        return context.governor.stats.as_dict(context.governor.in_flight)

    @app.get("/_emulator/config")
    async def get_config() -> dict[str, Any]:
        return context.config.as_dict()

    @app.post("/_emulator/config")
    async def set_config(request: Request) -> Response:
        return await _update_config(request, context)

    @app.get("/_emulator/audit")
    async def audit() -> list[dict[str, Any]]:
        return list(context.audit)

    @app.post("/_emulator/certificates")
    async def add_certificate(request: Request) -> Response:
        return await _register(request, context, _register_certificate)

    @app.post("/_emulator/tba-tokens")
    async def add_tba_token(request: Request) -> Response:
        return await _register(request, context, _register_tba_token)

    @app.post("/_emulator/tables/generate")
    async def generate_table(request: Request) -> Response:
        return await _generate_table(request, context)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as error:
        raise ValueError("the body must be a JSON object") from error
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


async def _update_config(request: Request, context: EmulatorContext) -> Response:
    try:
        changes = await _json_object(request)
        revoke = changes.pop("revoke_tokens", False)
        record_failures = changes.pop("record_failures", None)
        if record_failures is not None:
            records.configure_record_failures(request.app.state, record_failures)
        context.config.update(changes)
    except ValueError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    if revoke:
        count = context.tokens.revoke_all()
        log.info("Revoked %d access tokens", count)
    log.info("Emulator settings now %s", context.config.as_dict())
    return JSONResponse(context.config.as_dict())


async def _register(
    request: Request, context: EmulatorContext, action: Callable[[EmulatorContext, dict[str, Any]], None]
) -> Response:
    try:
        body = await _json_object(request)
        await run_in_threadpool(action, context, body)
    except (RegistrationError, ValueError, KeyError, TypeError, AttributeError) as error:
        return JSONResponse({"error": f"cannot register: {error}"}, status_code=400)
    return JSONResponse({"registered": True}, status_code=201)


def _register_certificate(context: EmulatorContext, body: dict[str, Any]) -> None:
    scopes = parse_scopes(body.get("scopes") or "rest_webservices,restlets")
    register_certificate(
        context.state_dir,
        body["client_id"],
        body["certificate_id"],
        body["certificate"],
        scopes,
        role=body.get("role") or ADMINISTRATOR_ROLE,
    )


def _register_tba_token(context: EmulatorContext, body: dict[str, Any]) -> None:
    register_tba_token(
        context.state_dir,
        body["consumer_key"],
        body["consumer_secret"],
        body["token_id"],
        body["token_secret"],
    )


async def _generate_table(request: Request, context: EmulatorContext) -> Response:
    from airflow_provider_netsuite.emulator import dataset

    try:
        body = await _json_object(request)
        table, rows = str(body["table"]), int(body["rows"])
    except (ValueError, KeyError, TypeError) as error:
        return JSONResponse({"error": f"expected {{'table': name, 'rows': count}}: {error}"}, status_code=400)
    started = time.monotonic()
    await run_in_threadpool(dataset.generate_table, str(context.store.db_path), table, rows)
    context.database_changed()
    log.info("Generated table %s with %d rows in %.1f s", table, rows, time.monotonic() - started)
    return JSONResponse({"table": table, "rows": rows})
