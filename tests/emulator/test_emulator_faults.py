"""Fault injection in the emulator, seen with raw HTTP the way a client sees it."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from airflow_provider_netsuite.emulator import faults
from airflow_provider_netsuite.emulator.__main__ import _faults_setting
from tests.conftest import start_emulator, stop_emulator
from tests.emulator.conftest import bearer, mint_token

SUITEQL_PATH = "/services/rest/query/v1/suiteql"
LIMITS_PATH = "/services/rest/system/v1/governanceLimits"
PROBE_TABLE = "faults_probe"
PROBE_IDS = "SELECT id FROM faults_probe ORDER BY id"
NO_SLOW_KINDS = {kind: 1 for kind in faults.FAULT_KINDS if kind != "slow"}


@pytest.fixture(autouse=True)
def faults_off(emulator):
    """Start and leave every test with faults off and zeroed statistics."""
    emulator.configure(faults={})
    emulator.admin("POST", "stats/reset")
    yield
    emulator.configure(faults=None)


@pytest.fixture
def fresh_probe_table(emulator) -> str:
    """A generated 50-row table that row mutations may change without touching the demo data."""
    emulator.admin("POST", "tables/generate", {"table": PROBE_TABLE, "rows": 50})
    return PROBE_TABLE


def mutate_rows(emulator, table: str, seed: int, **mutation) -> None:
    """Switch on the ``mutate_rows`` fault for ``table`` (``mutation``: every, rows, mode)."""
    emulator.configure(faults={"seed": seed, "mutate_rows": {"table": table, **mutation}})


def read_into(response: requests.Response, into: bytearray) -> None:
    """Read a streamed body chunk by chunk; what arrived stays in ``into`` if the read breaks."""
    for chunk in response.iter_content(64):
        into.extend(chunk)


def limits(emulator, headers, timeout: float = 10) -> requests.Response:
    return requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=timeout)


def suiteql(emulator, headers, query: str, limit: int = 10, offset: int = 0) -> requests.Response:
    return requests.post(
        f"{emulator.base_url}{SUITEQL_PATH}?limit={limit}&offset={offset}",
        json={"q": query},
        headers=headers,
        timeout=10,
    )


def observed_kind(emulator, headers) -> str | None:
    """Send one request and name the fault the client saw (``None`` for a normal answer)."""
    try:
        response = limits(emulator, headers)
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
        return "reset"
    if response.status_code == 503:
        return "html" if "maintenance" in response.text.lower() else "503"
    if response.status_code != 200:
        return str(response.status_code)
    try:
        response.json()
    except json.JSONDecodeError:
        return "truncate"
    return None


# --- what each kind looks like on the wire ----------------------------------------------------------


def test_429_carries_the_concurrency_body_and_configured_retry_after(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "429", "retry_after": 3})

    response = limits(emulator, headers)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    body = response.json()
    assert body["o:errorCode"] == "USER_ERROR"
    assert body["o:errorDetails"][0]["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
    assert limits(emulator, headers).status_code == 200


def test_429_without_retry_after_by_default(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "429"})

    response = limits(emulator, headers)

    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_login_is_netsuite_invalid_login_and_only_when_named(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "login"})

    response = limits(emulator, headers)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"
    assert limits(emulator, headers).status_code == 200
    assert "login" not in dict(faults.FaultPlan.from_dict({"rate": 0.5}).kinds)


def test_500_is_netsuite_unexpected_error(emulator, headers):
    emulator.configure(faults={"fail_next": 2, "kind": "500"})

    first, second = limits(emulator, headers), limits(emulator, headers)

    assert first.status_code == second.status_code == 500
    details = [response.json()["o:errorDetails"][0] for response in (first, second)]
    assert all(item["o:errorCode"] == "UNEXPECTED_ERROR" for item in details)
    ids = [
        re.fullmatch(r"An unexpected error occurred\. Error ID: (\w+)", item["detail"]) for item in details
    ]
    assert all(ids)
    assert ids[0].group(1) != ids[1].group(1)


@pytest.mark.parametrize(
    ("kind", "marker"), [("502", "502 Bad Gateway"), ("503", "<h1>503 Service Unavailable</h1>")]
)
def test_proxy_errors_are_html(emulator, headers, kind, marker):
    emulator.configure(faults={"fail_next": 1, "kind": kind})

    response = limits(emulator, headers)

    assert response.status_code == int(kind)
    assert response.headers["Content-Type"].startswith("text/html")
    assert marker in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize("status", [503, 200])
def test_html_maintenance_page_instead_of_json(emulator, headers, status):
    emulator.configure(faults={"fail_next": 1, "kind": "html", "html_status": status})

    response = limits(emulator, headers)

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert "maintenance" in response.text.lower()
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_reset_breaks_the_response_midway(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "reset"})

    with pytest.raises(requests.exceptions.ChunkedEncodingError, match=r"IncompleteRead|Connection broken"):
        suiteql(emulator, headers, "SELECT id FROM customer ORDER BY id")

    assert suiteql(emulator, headers, "SELECT id FROM customer ORDER BY id").status_code == 200
    assert emulator.stats()["faults_injected"] == {"reset": 1}


def test_reset_headers_arrive_before_the_body_breaks(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "reset"})

    response = requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=10, stream=True)

    assert response.status_code == 200
    promised = int(response.headers["Content-Length"])
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        read_into(response, received)
    assert 0 < len(received) < promised


def test_truncate_is_complete_on_the_wire_but_not_json(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "truncate"})

    response = suiteql(emulator, headers, "SELECT id FROM customer ORDER BY id")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.content.startswith(b"{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_slow_answer_outlasts_a_short_timeout_and_counts_in_flight(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "slow", "slow_seconds": 1.5})

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        limits(emulator, headers, timeout=0.3)
    in_flight = emulator.stats()["in_flight"]
    assert limits(emulator, headers, timeout=5).status_code == 200

    assert time.monotonic() - started < 1.5
    assert in_flight == 1
    time.sleep(1.4)
    assert emulator.stats()["in_flight"] == 0


def test_slow_answer_arrives_for_a_patient_client(emulator, headers):
    emulator.configure(faults={"fail_next": 1, "kind": "slow", "slow_seconds": 0.5})

    started = time.monotonic()
    response = limits(emulator, headers, timeout=5)

    assert response.status_code == 200
    assert response.json()["accountConcurrencyLimit"] >= 1
    assert time.monotonic() - started >= 0.5


# --- which requests get faults ------------------------------------------------------------------------


def test_same_seed_gives_the_same_sequence_of_faults(emulator, headers):
    config = {"seed": 7, "rate": 0.5, "kinds": NO_SLOW_KINDS}

    emulator.configure(faults=config)
    first = [observed_kind(emulator, headers) for _ in range(50)]
    emulator.configure(faults=config)
    second = [observed_kind(emulator, headers) for _ in range(50)]
    emulator.configure(faults={**config, "seed": 8})
    other = [observed_kind(emulator, headers) for _ in range(50)]

    assert first == second
    assert first != other
    assert len({kind for kind in first if kind}) >= 4


def test_stats_count_faults_by_kind(emulator, headers):
    emulator.configure(faults={"seed": 3, "rate": 0.5, "kinds": NO_SLOW_KINDS})

    seen = [observed_kind(emulator, headers) for _ in range(40)]

    expected: dict[str, int] = {}
    for kind in filter(None, seen):
        expected[kind] = expected.get(kind, 0) + 1
    assert emulator.stats()["faults_injected"] == expected


def test_rate_is_roughly_respected(emulator, headers):
    emulator.configure(faults={"seed": 11, "rate": 0.3, "kinds": {"500": 1}})

    statuses = [limits(emulator, headers).status_code for _ in range(200)]

    failed = statuses.count(500)
    assert 35 <= failed <= 85
    assert failed + statuses.count(200) == 200


def test_max_faults_caps_the_total(emulator, headers):
    emulator.configure(faults={"seed": 1, "rate": 1.0, "max_faults": 3, "kinds": {"503": 1, "500": 1}})

    statuses = [limits(emulator, headers).status_code for _ in range(8)]

    assert all(status in (500, 503) for status in statuses[:3])
    assert statuses[3:] == [200] * 5
    assert sum(emulator.stats()["faults_injected"].values()) == 3


def test_paths_limit_where_faults_land(emulator, headers):
    emulator.configure(faults={"rate": 1.0, "kinds": {"500": 1}, "paths": ["/services/rest/query/"]})

    assert limits(emulator, headers).status_code == 200
    assert suiteql(emulator, headers, "SELECT id FROM customer").status_code == 500


def test_token_endpoint_only_when_asked(emulator, registered_rsa):
    emulator.configure(faults={"rate": 1.0, "kinds": {"503": 1}})
    assert mint_token(emulator.base_url, registered_rsa).status_code == 200

    emulator.configure(faults={"rate": 1.0, "kinds": {"503": 1}, "token_endpoint": True})
    refused = mint_token(emulator.base_url, registered_rsa)
    assert refused.status_code == 503
    assert refused.headers["Content-Type"].startswith("text/html")

    # Truncated and slow answers are not among the token endpoint's faults.
    emulator.configure(faults={"rate": 1.0, "kinds": {"truncate": 1, "slow": 1}, "token_endpoint": True})
    assert mint_token(emulator.base_url, registered_rsa).json()["expires_in"] == 3600


def test_faults_turn_off_again(emulator, headers):
    emulator.configure(faults={"rate": 1.0, "kinds": {"500": 1}})
    assert limits(emulator, headers).status_code == 500

    emulator.configure(faults=None)
    assert emulator.admin("GET", "config")["faults"] == {}
    assert [limits(emulator, headers).status_code for _ in range(5)] == [200] * 5


def test_bad_fault_settings_are_refused_by_name(emulator):
    for bad, named in [
        ({"rate": 2}, "rate"),
        ({"kinds": {"418": 1}}, "418"),
        ({"rate": 0.1, "bogus": 1}, "bogus"),
        ({"mutate_rows": {"table": "customer; DROP"}}, "mutate_rows.table"),
    ]:
        response = requests.post(f"{emulator.base_url}/_emulator/config", json={"faults": bad}, timeout=10)
        assert response.status_code == 400
        assert named in response.json()["error"]
    assert emulator.admin("GET", "config")["faults"] == {}


# --- tokens that stop working early --------------------------------------------------------------------


def test_tokens_stop_working_before_expires_in(emulator, registered_rsa):
    emulator.configure(faults={"token_early_expiry_seconds": 2})
    token_response = mint_token(emulator.base_url, registered_rsa)
    headers = bearer(token_response)

    assert token_response.json()["expires_in"] == 3600
    assert limits(emulator, headers).status_code == 200
    time.sleep(2.2)
    refused = limits(emulator, headers)

    assert refused.status_code == 401
    assert refused.json()["o:errorDetails"][0]["o:errorCode"] == "INVALID_LOGIN"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert limits(emulator, bearer(mint_token(emulator.base_url, registered_rsa))).status_code == 200
    assert emulator.stats()["faults_injected"] == {"token_early_expiry": 1}

    emulator.configure(faults={})
    assert limits(emulator, headers).status_code == 200


# --- data changing while an extract runs ------------------------------------------------------------


def test_inserted_rows_change_total_results_between_pages(emulator, headers, fresh_probe_table):
    mutate_rows(emulator, fresh_probe_table, seed=5, every=2, rows=4, mode="insert")

    pages = [suiteql(emulator, headers, PROBE_IDS, offset=offset).json() for offset in (0, 10, 20)]

    assert [page["totalResults"] for page in pages] == [50, 50, 54]
    ids = [row["id"] for row in emulator.query_db(PROBE_IDS)]
    assert ids[-4:] == [51, 52, 53, 54]


def test_updated_rows_change_between_two_page_requests(emulator, headers, fresh_probe_table):
    mutate_rows(emulator, fresh_probe_table, seed=5, every=1, rows=3)
    query = "SELECT id, companyname, lastmodifieddate FROM faults_probe ORDER BY id"

    before = suiteql(emulator, headers, query, limit=100).json()["items"]
    after = suiteql(emulator, headers, query, limit=100).json()["items"]

    changed = [new for old, new in zip(before, after, strict=True) if old != new]
    assert 1 <= len(changed) <= 3
    assert all(row["companyname"].startswith("Changed during extract") for row in changed)
    assert emulator.stats()["faults_injected"] == {"mutate_rows": 1}


def test_deleted_rows_shrink_the_result(emulator, headers, fresh_probe_table):
    mutate_rows(emulator, fresh_probe_table, seed=9, every=1, rows=2, mode="delete")

    first = suiteql(emulator, headers, PROBE_IDS).json()["totalResults"]
    second = suiteql(emulator, headers, PROBE_IDS, offset=10).json()["totalResults"]

    assert first == 50
    assert 48 <= second <= 49


# --- switched on for a whole run -----------------------------------------------------------------------


def test_environment_variable_switches_faults_on_at_start(tmp_path, monkeypatch, rsa_keypair):
    monkeypatch.setenv(faults.ENVIRONMENT_VARIABLE, json.dumps({"fail_next": 2, "kind": "502"}))
    instance = start_emulator(tmp_path / "emulator")
    try:
        headers = bearer(mint_token(instance.base_url, instance.register(rsa_keypair)))
        statuses = [
            requests.get(instance.base_url + LIMITS_PATH, headers=headers, timeout=10).status_code
            for _ in range(3)
        ]
        config = instance.admin("GET", "config")["faults"]
    finally:
        stop_emulator(instance)

    assert statuses == [502, 502, 200]
    assert config["rate"] == 1.0
    assert config["max_faults"] == 2


def test_faults_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(faults.ENVIRONMENT_VARIABLE, '{"rate": 0.5}')
    assert _faults_setting('{"rate": 0.1}') == {"rate": 0.1}
    assert _faults_setting(None) == {"rate": 0.5}
    monkeypatch.delenv(faults.ENVIRONMENT_VARIABLE)
    assert _faults_setting(None) == {}
    with pytest.raises(ValueError, match="not valid JSON"):
        _faults_setting("{rate")


def test_fail_next_is_short_for_rate_one_and_a_cap():
    plan = faults.FaultPlan.from_dict({"fail_next": 4, "kind": "truncate"})

    assert (plan.rate, plan.max_faults, dict(plan.kinds)) == (1.0, 4, {"truncate": 1.0})
    assert faults.normalize(None) == {}
    assert faults.normalize({}) == {}
