"""The emulator's REST surface, checked with raw HTTP: SuiteQL paging rules, governance, admin, CLI."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from airflow_provider_netsuite.emulator.__main__ import loopback_listener
from airflow_provider_netsuite.emulator.errors import error_body
from tests.conftest import CONCURRENCY_LIMIT_BODY, start_emulator
from tests.emulator.conftest import TOKEN_PATH

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
LIMITS_PATH = "/services/rest/system/v1/governanceLimits"


def suiteql(emulator, headers: dict, body: dict | None, **params) -> requests.Response:
    return requests.post(
        emulator.base_url + SUITEQL_PATH, headers=headers, json=body, params=params, timeout=60
    )


def only_detail(response: requests.Response) -> dict:
    body = response.json()
    assert body["status"] == response.status_code
    assert response.headers["Content-Type"].startswith("application/vnd.oracle.resource+json; type=error")
    assert len(body["o:errorDetails"]) == 1
    return body["o:errorDetails"][0]


def test_missing_prefer_header_is_refused(emulator, headers):
    response = suiteql(
        emulator, {"Authorization": headers["Authorization"]}, {"q": "SELECT id FROM customer"}
    )

    assert response.status_code == 400
    detail = only_detail(response)
    assert detail["o:errorHeader"] == "Prefer"
    assert detail["o:errorCode"] == "INVALID_HEADER"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": 1001}, "limit", id="limit-1001"),
        pytest.param({"limit": "ten"}, "limit", id="limit-text"),
        pytest.param({"limit": 10, "offset": 15}, "offset", id="offset-not-multiple"),
        pytest.param({"limit": 1000, "offset": 100000}, "offset", id="offset-100000"),
        pytest.param({"limit": 10, "offset": -10}, "offset", id="offset-negative"),
    ],
)
def test_paging_parameters_are_checked(emulator, headers, params, name):
    response = suiteql(emulator, headers, {"q": "SELECT id FROM customer"}, **params)

    assert response.status_code == 400
    detail = only_detail(response)
    assert detail["o:errorQueryParam"] == name
    assert detail["o:errorCode"] == "INVALID_PARAMETER"
    assert response.json()["type"] == "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1"


@pytest.mark.parametrize("body", [None, {}, {"q": ""}, {"q": 5}, {"q": "SELECT 1", "params": "x"}])
def test_query_body_is_checked(emulator, headers, body):
    response = suiteql(emulator, headers, body)

    assert response.status_code == 400
    assert only_detail(response)["o:errorQueryParam"] == "q"


def test_suiteql_page_shape_and_links(emulator, headers):
    total = emulator.query_db("SELECT COUNT(*) AS n FROM customer")[0]["n"]
    assert total > 25

    response = suiteql(
        emulator, headers, {"q": "SELECT id, companyname FROM customer ORDER BY id"}, limit=10, offset=10
    )

    assert response.status_code == 200, response.text
    page = response.json()
    assert list(page) == ["links", "count", "hasMore", "offset", "totalResults", "items"]
    assert (page["count"], page["hasMore"], page["offset"], page["totalResults"]) == (10, True, 10, total)
    assert all(item["links"] == [] for item in page["items"])
    base = emulator.base_url + SUITEQL_PATH
    links = {link["rel"]: link["href"] for link in page["links"]}
    assert links == {
        "first": f"{base}?limit=10&offset=0",
        "prev": f"{base}?limit=10&offset=0",
        "next": f"{base}?limit=10&offset=20",
        "last": f"{base}?limit=10&offset={(total - 1) // 10 * 10}",
        "self": f"{base}?limit=10&offset=10",
    }
    expected = emulator.query_db("SELECT id FROM customer ORDER BY id LIMIT 10 OFFSET 10")
    assert [item["id"] for item in page["items"]] == [str(row["id"]) for row in expected]


def test_last_page_has_no_next_link(emulator, headers):
    total = emulator.query_db("SELECT COUNT(*) AS n FROM customer")[0]["n"]
    last = (total - 1) // 100 * 100

    page = suiteql(
        emulator, headers, {"q": "SELECT id FROM customer ORDER BY id"}, limit=100, offset=last
    ).json()

    assert page["hasMore"] is False
    assert page["count"] == total - last
    assert {link["rel"] for link in page["links"]} == {"first", "prev", "self"}


def test_bad_query_gets_netsuite_error(emulator, headers):
    response = suiteql(emulator, headers, {"q": "SELECT nosuchcolumn FROM customer"})

    assert response.status_code == 400
    detail = only_detail(response)
    assert detail["o:errorQueryParam"] == "q"
    assert detail["o:errorCode"] == "INVALID_PARAMETER"
    assert detail["detail"].startswith("Invalid search query.")


def test_governance_limits(emulator, headers):
    response = requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=30)

    assert response.json() == {
        "accountConcurrencyLimit": 5,
        "accountUnallocatedConcurrencyLimit": 5,
        "integrationConcurrencyLimit": 5,
        "integrationLimitType": "accountLimit",
    }


def test_concurrency_limit_answers_429(emulator, headers):
    emulator.admin("POST", "stats/reset")
    emulator.configure(concurrency_limit=2, latency_ms=400)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(
                pool.map(
                    lambda _: requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=30),
                    range(6),
                )
            )
        emulator.configure(retry_after=7)
        with ThreadPoolExecutor(max_workers=3) as pool:
            with_retry_after = list(
                pool.map(
                    lambda _: requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=30),
                    range(3),
                )
            )
    finally:
        emulator.configure(concurrency_limit=5, latency_ms=0, retry_after=None)

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) == 2
    assert statuses.count(429) == 4
    throttled = next(response for response in responses if response.status_code == 429)
    assert throttled.json() == CONCURRENCY_LIMIT_BODY
    assert "Retry-After" not in throttled.headers
    assert {r.headers.get("Retry-After") for r in with_retry_after if r.status_code == 429} == {"7"}
    stats = emulator.stats()
    assert stats["peak_in_flight"] == 2
    assert stats["throttled"] == 4 + sum(r.status_code == 429 for r in with_retry_after)
    assert stats["by_status"]["429"] == stats["throttled"]


def test_token_endpoint_is_not_governed(emulator, registered_rsa):
    emulator.configure(concurrency_limit=1, latency_ms=300)
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            statuses = list(
                pool.map(
                    lambda _: requests.post(emulator.base_url + TOKEN_PATH, data={}, timeout=30).status_code,
                    range(3),
                )
            )
    finally:
        emulator.configure(concurrency_limit=5, latency_ms=0)

    assert statuses == [400, 400, 400]


def test_unknown_data_path_is_netsuite_404_after_authentication(emulator, headers):
    unauthenticated = requests.get(emulator.base_url + "/services/rest/record/v1/nosuchthing", timeout=30)
    authenticated = requests.get(
        emulator.base_url + "/services/rest/nosuchthing", headers=headers, timeout=30
    )

    assert unauthenticated.status_code == 401
    assert authenticated.status_code == 404
    assert only_detail(authenticated)["o:errorCode"]


def test_admin_config_validates_and_returns_everything(emulator):
    current = emulator.configure()
    assert set(current) >= {
        "concurrency_limit",
        "latency_ms",
        "jitter_ms",
        "retry_after",
        "token_lifetime",
        "token_endpoint_failure",
        "faults",
    }
    for bad in (
        {"concurrency_limit": 0},
        {"nope": 1},
        {"token_endpoint_failure": "teapot"},
        {"latency_ms": "x"},
    ):
        response = requests.post(f"{emulator.base_url}/_emulator/config", json=bad, timeout=30)
        assert response.status_code == 400, bad
    assert emulator.configure() == current


def test_error_body_types():
    assert error_body(404, "Record does not exist.", "NONEXISTENT_ID") == {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5",
        "title": "Not Found",
        "status": 404,
        "o:errorDetails": [{"detail": "Record does not exist.", "o:errorCode": "NONEXISTENT_ID"}],
    }
    assert error_body(500, "x", "UNEXPECTED_ERROR")["type"].endswith("#section-15.6.1")


def test_query_cli_reads_the_database(emulator):
    rows = emulator.query_db("SELECT COUNT(*) AS n FROM customer")

    assert rows[0]["n"] > 0


def test_serve_stops_cleanly_on_sigterm(tmp_path):
    instance = start_emulator(tmp_path / "state")
    assert requests.get(instance.base_url + LIMITS_PATH, timeout=30).status_code == 401
    assert (tmp_path / "state" / "netsuite.db").exists()

    instance.process.send_signal(signal.SIGTERM)

    assert instance.process.wait(timeout=15) == 0
    log = (tmp_path / "state" / "emulator.log").read_text()
    assert f"NetSuite emulator listening on {instance.base_url}" in log


def test_cli_rejects_unknown_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_netsuite.emulator", "nope"], capture_output=True, text=True
    )

    assert result.returncode != 0


def test_served_connections_have_nagle_off():
    """Answers written in two parts must not wait for the client's delayed ACK (about 40 ms each)."""
    listener = loopback_listener(0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def serve_one() -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connection = writer.get_extra_info("socket")
            seen.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()
            writer.close()

    asyncio.run(serve_one())
    assert seen
    assert seen[0] != 0
