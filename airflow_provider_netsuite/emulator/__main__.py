"""Command line of the NetSuite emulator: serve, register credentials, query or grow its database."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

log = logging.getLogger("airflow_provider_netsuite.emulator")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one sub-command per action."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_netsuite.emulator")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve NetSuite's REST endpoints on 127.0.0.1")
    serve.add_argument("--state-dir", required=True, type=Path)
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--port-file", type=Path, help="write the port here once listening")
    serve.add_argument("--account-id", default="1234567_SB1")
    serve.add_argument("--concurrency-limit", type=int, default=5)
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument("--jitter-ms", type=float, default=0.0)
    serve.add_argument("--retry-after", default="none", help="seconds, or 'none' for no Retry-After header")
    serve.add_argument("--token-lifetime", type=int, default=3600)
    serve.add_argument("--seed", type=int, default=42)
    serve.add_argument(
        "--company-language",
        default="en",
        help="the company's default language; a data request with another Accept-Language gets 400",
    )
    serve.add_argument(
        "--faults", help="fault injection settings as JSON (default: $NETSUITE_EMULATOR_FAULTS, else none)"
    )

    certificate = commands.add_parser("register-certificate", help="map a public certificate to a client ID")
    certificate.add_argument("--state-dir", required=True, type=Path)
    certificate.add_argument("--client-id", required=True)
    certificate.add_argument("--certificate-id", required=True)
    certificate.add_argument(
        "--certificate", required=True, type=Path, help="x.509 certificate or public key PEM"
    )
    certificate.add_argument("--scopes", default="rest_webservices,restlets")
    certificate.add_argument(
        "--role", default="administrator", help="role of the mapping; only administrator reads governance"
    )

    tba = commands.add_parser("register-tba-token", help="store a TBA consumer key and token")
    tba.add_argument("--state-dir", required=True, type=Path)
    tba.add_argument("--consumer-key", required=True)
    tba.add_argument("--consumer-secret", required=True)
    tba.add_argument("--token-id", required=True)
    tba.add_argument("--token-secret", required=True)

    query = commands.add_parser("query", help="run raw SQL on the emulator's database, print JSON")
    query.add_argument("--state-dir", required=True, type=Path)
    query.add_argument("--json", action="store_true", help="print JSON (the only format)")
    query.add_argument("sql")

    generate = commands.add_parser("generate-table", help="create a large synthetic table")
    generate.add_argument("--state-dir", required=True, type=Path)
    generate.add_argument("--table", required=True)
    generate.add_argument("--rows", required=True, type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arguments = build_parser().parse_args(argv)
    handlers = {
        "serve": _serve,
        "register-certificate": _register_certificate,
        "register-tba-token": _register_tba_token,
        "query": _query,
        "generate-table": _generate_table,
    }
    from airflow_provider_netsuite.emulator.state import RegistrationError

    try:
        return handlers[arguments.command](arguments)
    except (RegistrationError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _database(state_dir: Path) -> str:
    from airflow_provider_netsuite.emulator.state import database_path

    return str(database_path(state_dir))


def _ensure_database(state_dir: Path, seed: int) -> str:
    from airflow_provider_netsuite.emulator import dataset

    state_dir.mkdir(parents=True, exist_ok=True)
    path = _database(state_dir)
    if not Path(path).exists():
        log.info("Creating the emulator database in %s (seed %d)", path, seed)
        dataset.create_database(path, seed=seed)
    return path


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from airflow_provider_netsuite.emulator.server import create_app
    from airflow_provider_netsuite.emulator.state import RuntimeConfig

    _ensure_database(arguments.state_dir, arguments.seed)
    retry_after = None if arguments.retry_after.lower() in ("none", "") else int(arguments.retry_after)
    config = RuntimeConfig()
    config.update(
        {
            "concurrency_limit": arguments.concurrency_limit,
            "latency_ms": arguments.latency_ms,
            "jitter_ms": arguments.jitter_ms,
            "retry_after": retry_after,
            "token_lifetime": arguments.token_lifetime,
            "faults": _faults_setting(arguments.faults),
            "company_language": arguments.company_language,
        }
    )
    app = create_app(arguments.state_dir, account_id=arguments.account_id, config=config, seed=arguments.seed)
    listener = loopback_listener(arguments.port)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5, backlog=2048)
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; ignoring it then lets the
    # process exit with status 0 after a clean shutdown.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    # What exists now (FastAPI, pydantic, the routes) lives as long as the server: keep it out of the full
    # collections that the objects of every SuiteQL page set off, each of which would stall all requests.
    gc.collect()
    gc.freeze()
    asyncio.run(_run_server(server, listener, arguments.port_file))
    log.info("NetSuite emulator stopped")
    return 0


def loopback_listener(port: int) -> socket.socket:
    """Return a TCP socket bound to ``127.0.0.1:port`` (0 for any free port), for uvicorn to listen on.

    The protocol is named explicitly: asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on
    connections whose socket says TCP, and with it on, an answer written in two parts waits about 40 ms
    for the client's delayed ACK.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    return listener


def _faults_setting(flag: str | None) -> dict:
    """Read fault injection settings from ``--faults`` or else the environment; ``{}`` means none."""
    from airflow_provider_netsuite.emulator.faults import ENVIRONMENT_VARIABLE

    text = flag if flag is not None else os.environ.get(ENVIRONMENT_VARIABLE, "")
    if not text.strip():
        return {}
    try:
        return json.loads(text) or {}
    except ValueError as error:
        raise ValueError(f"fault settings are not valid JSON: {error}") from error


async def _run_server(server: object, listener: socket.socket, port_file: Path | None) -> None:
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the emulator's HTTP server did not start")
        await asyncio.sleep(0.02)
    port = listener.getsockname()[1]
    if port_file is not None:
        _write_atomically(port_file, str(port))
    log.info("NetSuite emulator listening on http://127.0.0.1:%d", port)
    await task


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def _register_certificate(arguments: argparse.Namespace) -> int:
    from airflow_provider_netsuite.emulator.state import parse_scopes, register_certificate

    pem = arguments.certificate.read_bytes()
    scopes = parse_scopes(arguments.scopes)
    register_certificate(
        arguments.state_dir, arguments.client_id, arguments.certificate_id, pem, scopes, role=arguments.role
    )
    print(f"registered certificate ID {arguments.certificate_id} for client ID {arguments.client_id}")
    return 0


def _register_tba_token(arguments: argparse.Namespace) -> int:
    from airflow_provider_netsuite.emulator.state import register_tba_token

    register_tba_token(
        arguments.state_dir,
        arguments.consumer_key,
        arguments.consumer_secret,
        arguments.token_id,
        arguments.token_secret,
    )
    print(f"registered TBA token {arguments.token_id} for consumer key {arguments.consumer_key}")
    return 0


def _query(arguments: argparse.Namespace) -> int:
    from airflow_provider_netsuite.emulator.suiteql import run_sql

    rows = run_sql(_ensure_database(arguments.state_dir, 42), arguments.sql)
    print(json.dumps(rows, default=str))
    return 0


def _generate_table(arguments: argparse.Namespace) -> int:
    from airflow_provider_netsuite.emulator import dataset

    dataset.generate_table(_ensure_database(arguments.state_dir, 42), arguments.table, arguments.rows)
    print(f"generated table {arguments.table} with {arguments.rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
