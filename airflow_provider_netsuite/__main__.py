"""
Check a NetSuite connection from a shell.

Usage: ``python -m airflow_provider_netsuite check --conn-id netsuite_default``.

The connection is read the way Airflow reads it (environment variable, secrets backend or metadata
database). The command mints a token, runs a probe query and prints what it found, never a secret.
"""

from __future__ import annotations

import argparse
import sys
import time


def _check(conn_id: str) -> int:
    from airflow_provider_netsuite.core.errors import NetSuiteError
    from airflow_provider_netsuite.hooks.netsuite import PROBE_QUERY, NetSuiteHook

    hook = NetSuiteHook(netsuite_conn_id=conn_id)
    try:
        config = hook.config
    except NetSuiteError as error:
        print(f"Connection {conn_id!r} is not usable: {error}")
        return 2
    except Exception as error:  # a missing connection or a failing secrets backend: say so, no traceback
        print(f"Connection {conn_id!r} could not be read: {type(error).__name__}: {error}")
        return 2
    print(
        f"Connection {conn_id!r}: account {config.account.account_id}, auth {config.auth_type}, "
        f"REST base {config.base_url}"
    )
    started = time.monotonic()
    try:
        page = hook.client.suiteql_page(PROBE_QUERY, limit=1)
    except NetSuiteError as error:
        print(f"FAILED after {time.monotonic() - started:.2f} s: {error}")
        return 1
    if config.is_tba:
        credentials = "TBA signature accepted"
    else:
        mints = hook.client.stats.token_mints
        credentials = f"access token {'minted' if mints else 'reused from the token cache'}"
    print(
        f"OK in {time.monotonic() - started:.2f} s: {credentials}, SuiteQL probe answered "
        f"({_visible(page)} visible to this role)."
    )
    return 0


def _visible(page: dict) -> str:
    # The probe selects at most one row: it tells whether customers are readable, not how many exist.
    return "customer records" if page.get("totalResults") else "no customer records"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_netsuite")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="mint a token and run a probe query with a connection")
    check.add_argument("--conn-id", default="netsuite_default", help="Airflow connection ID")
    args = parser.parse_args(argv)
    return _check(args.conn_id)


if __name__ == "__main__":
    sys.exit(main())
