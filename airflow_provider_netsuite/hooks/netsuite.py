"""The NetSuite hook: an Airflow connection turned into an authenticated NetSuite REST client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteError
from airflow_provider_netsuite.core.suiteql import SuiteQLExtract, page_total

PROBE_QUERY = "SELECT id FROM customer WHERE ROWNUM <= 1"


class NetSuiteHook(BaseHook):
    """
    Talk to NetSuite's REST web services (SuiteQL and records) with the credentials of a connection.

    Supported authentication modes, chosen by the connection extra ``auth_type``:

    * ``oauth2_client_credentials`` (default): OAuth 2.0 machine-to-machine. The hook signs a short-lived JWT
      client assertion with the connection's private key (PS256 for RSA, ES256/384/512 for EC), exchanges
      it for an access token and reuses that token until shortly before it expires.
    * ``tba``: Token-Based Authentication (OAuth 1.0a, HMAC-SHA256), for integrations not yet moved.

    :param netsuite_conn_id: The Airflow connection to use.
    :param max_concurrency: Cap on requests in flight from this hook; keep the sum over parallel tasks
        within the account's concurrency limit (an Airflow pool helps).
    """

    conn_name_attr = "netsuite_conn_id"
    default_conn_name = "netsuite_default"
    conn_type = "netsuite"
    hook_name = "NetSuite"

    def __init__(
        self, netsuite_conn_id: str = default_conn_name, *, max_concurrency: int = 4, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.netsuite_conn_id = netsuite_conn_id
        self.max_concurrency = max_concurrency

    @cached_property
    def config(self) -> ConnectionConfig:
        """The validated connection settings; a mistake raises before any request is sent."""
        connection = self.get_connection(self.netsuite_conn_id)
        return ConnectionConfig.from_extra(
            connection.extra_dejson, login=connection.login, password=connection.password
        )

    @cached_property
    def client(self) -> NetSuiteClient:
        """The REST client, built once per hook; its access token is shared process-wide."""
        return NetSuiteClient(self.config, max_concurrency=self.max_concurrency, secret_masker=mask_secret)

    def get_conn(self) -> NetSuiteClient:
        """Return the authenticated NetSuite REST client."""
        return self.client

    def run_suiteql(
        self,
        query: str,
        params: Sequence[Any] | None = None,
        *,
        key_columns: Sequence[str] = ("id",),
        strategy: str = "auto",
    ) -> Iterator[list[dict[str, Any]]]:
        """
        Run a SuiteQL query and yield its rows page by page, each row exactly once, in key order.

        For a large result, loop inside :func:`~airflow_provider_netsuite.core.heap.frozen_heap` (as the
        operator does), so that Python's full garbage collections do not stall the requests in flight.

        :param query: The SuiteQL query; it must select the key columns.
        :param params: Values for the query's ``?`` placeholders.
        :param key_columns: A unique key of the result, used to order and page it safely.
        :param strategy: ``auto``, ``offset``, ``key_ranges`` or ``keyset``.
        """
        extract = SuiteQLExtract(
            self.client,
            query,
            params=list(params) if params else None,
            key_columns=tuple(key_columns),
            max_concurrency=self.max_concurrency,
            strategy=strategy,
            logger=self.log,
        )
        yield from extract.pages()

    def test_connection(self) -> tuple[bool, str]:
        """Mint a token and run one cheap SuiteQL query; say what worked or exactly what failed."""
        try:
            page = self.client.suiteql_page(PROBE_QUERY, limit=1)
        except NetSuiteError as error:
            return False, str(error)
        except Exception as error:  # the UI shows the message; a crash would hide it
            return False, f"{type(error).__name__}: {error}"
        # The probe selects at most one row: it shows whether customers are readable, not how many exist.
        # NetSuite may leave totalResults out (or send null); the row itself then tells.
        rows = page_total(page) or len(page.get("items") or [])
        visible = "customer records visible" if rows else "no customer records visible"
        return True, (
            f"Authenticated to NetSuite account {self.config.account.account_id} with "
            f"{self.config.auth_type} and ran a SuiteQL probe ({visible} to this role)."
        )
