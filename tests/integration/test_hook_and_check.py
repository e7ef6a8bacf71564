"""The hook's test_connection(), the shell check command and ``airflow connections test`` (emulator).

The command-line runs start together in one module fixture (each is a separate Python process importing
Airflow, which is slow), and the tests read their results. Further failure cases of the check command
run its ``main()`` in this process.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_netsuite.__main__ import main
from airflow_provider_netsuite.core.heap import frozen_heap
from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook
from tests.conftest import CLIENT_ID, make_keypair, pem_body_lines

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TBA = {
    "consumer_key": "hk" + "5" * 62,
    "consumer_secret": "hs" + "6" * 62,
    "token_id": "ht" + "7" * 62,
    "token_secret": "hx" + "8" * 62,
}


def assert_no_key(text: str, *pems: str) -> None:
    for pem in pems:
        for line in pem_body_lines(pem):
            assert line not in text
    assert "-----BEGIN" not in text


def extra_for(emulator, keypair, **changes) -> dict:
    return {
        "account_id": emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": keypair.certificate_id,
        "private_key": keypair.private_key,
        "scopes": ["rest_webservices"],
        "base_url": emulator.base_url,
        **changes,
    }


def conn_env(extra: dict) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_CONN_NETSUITE_DEFAULT": json.dumps({"conn_type": "netsuite", "extra": extra}),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }


@pytest.fixture(scope="module")
def wrong_key(tmp_path_factory):
    """A valid key whose certificate was never registered."""
    return make_keypair(tmp_path_factory.mktemp("wrong-key"), "ec:prime256v1")


@pytest.fixture(scope="module")
def tba_registered(emulator) -> None:
    emulator.register_tba(TBA)


@pytest.fixture(scope="module")
def shell_runs(emulator, registered_rsa, wrong_key) -> dict[str, subprocess.CompletedProcess]:
    """Start every command-line run at once; return their results by name."""
    good = extra_for(emulator, registered_rsa)
    refused = extra_for(emulator, registered_rsa, private_key=wrong_key.private_key)
    check = [sys.executable, "-m", "airflow_provider_netsuite", "check", "--conn-id", "netsuite_default"]
    plans = {
        "check-ok": (check, conn_env(good)),
        "check-refused": (check, conn_env(refused)),
        "airflow-test": (
            [str(BIN / "airflow"), "connections", "test", "netsuite_default"],
            {**conn_env(good), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
        ),
    }
    running = {
        name: subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (command, env) in plans.items()
    }
    results = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=240)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


# --- NetSuiteHook.test_connection() -------------------------------------------------------------------


def test_hook_test_connection_succeeds_and_names_the_account(emulator, airflow_conn_env):
    before = emulator.stats()["requests"]

    ok, message = NetSuiteHook().test_connection()

    assert ok is True, message
    assert "1234567_SB1" in message
    assert "oauth2_client_credentials" in message
    assert emulator.stats()["requests"] > before  # it really asked NetSuite


def test_hook_run_suiteql_inside_frozen_heap_yields_every_customer_once(emulator, airflow_conn_env):
    pages = []
    with frozen_heap():
        for page in NetSuiteHook(max_concurrency=2).run_suiteql("SELECT id, companyname FROM customer"):
            pages.append(page)
            assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    ids = [int(item["id"]) for page in pages for item in page]
    truth = emulator.query_db("SELECT id FROM customer ORDER BY id")
    assert ids == [row["id"] for row in truth]
    assert len(pages) == -(-len(ids) // 1000)


def test_hook_test_connection_reports_a_damaged_key_without_echoing_it(
    emulator, registered_rsa, netsuite_extra, monkeypatch
):
    pem = registered_rsa.private_key
    netsuite_extra["private_key"] = pem[:300] + pem[-200:]  # lines lost in a copy and paste
    monkeypatch.setenv(
        "AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": netsuite_extra})
    )
    before = emulator.stats()["requests"]

    ok, message = NetSuiteHook().test_connection()

    assert ok is False
    assert message.startswith("private_key:")
    assert "could not be decoded" in message
    assert_no_key(message, pem)
    assert emulator.stats()["requests"] == before  # refused before any request


def test_hook_test_connection_reports_a_refused_key(emulator, netsuite_extra, wrong_key, monkeypatch):
    netsuite_extra["private_key"] = wrong_key.private_key
    monkeypatch.setenv(
        "AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": netsuite_extra})
    )

    ok, message = NetSuiteHook().test_connection()

    assert ok is False
    assert "invalid_grant" in message
    assert netsuite_extra["certificate_id"] in message
    assert "M2M mapping" in message
    assert_no_key(message, wrong_key.private_key)


def test_hook_test_connection_with_tba(emulator, tba_registered, monkeypatch):
    extra = {"auth_type": "tba", "account_id": "1234567-sb1", "base_url": emulator.base_url, **TBA}
    monkeypatch.setenv("AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": extra}))

    ok, message = NetSuiteHook().test_connection()

    assert ok is True, message
    assert "tba" in message
    assert "1234567_SB1" in message


# --- python -m airflow_provider_netsuite check ---------------------------------------------------------


def test_check_command_prints_ok(shell_runs):
    run = shell_runs["check-ok"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "account 1234567_SB1" in run.stdout
    assert "OK in" in run.stdout
    assert "SuiteQL probe answered" in run.stdout


def test_check_command_fails_on_a_refused_key_without_secrets(shell_runs, registered_rsa, wrong_key):
    run = shell_runs["check-refused"]
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "FAILED" in run.stdout
    assert "invalid_grant" in run.stdout
    assert registered_rsa.certificate_id in run.stdout
    assert_no_key(output, wrong_key.private_key, registered_rsa.private_key)
    assert "eyJ" not in output  # no assertion or token


def test_check_command_fails_on_a_bad_key_before_any_request(
    emulator, registered_rsa, netsuite_extra, monkeypatch, capsys
):
    netsuite_extra["private_key"] = (
        registered_rsa.private_key.replace("\n", " ")[:900] + " -----END PRIVATE KEY-----"
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": netsuite_extra})
    )
    before = emulator.stats()["requests"]

    code = main(["check", "--conn-id", "netsuite_default"])

    output = capsys.readouterr()
    assert code == 2
    assert "is not usable: private_key:" in output.out
    assert_no_key(output.out + output.err, registered_rsa.private_key)
    assert emulator.stats()["requests"] == before


def test_check_command_names_a_missing_connection(capsys):
    code = main(["check", "--conn-id", "netsuite_nowhere"])

    output = capsys.readouterr()
    assert code == 2
    assert "'netsuite_nowhere' could not be read" in output.out
    assert "Traceback" not in output.out + output.err


def test_check_command_with_tba_says_what_it_proved(emulator, tba_registered, monkeypatch, capsys):
    extra = {"auth_type": "tba", "account_id": "1234567_sb1", "base_url": emulator.base_url, **TBA}
    monkeypatch.setenv("AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": extra}))

    code = main(["check", "--conn-id", "netsuite_default"])

    output = capsys.readouterr().out
    assert code == 0, output
    assert "auth tba" in output
    assert "TBA signature accepted" in output
    for secret in (TBA["consumer_secret"], TBA["token_secret"], TBA["token_id"]):
        assert secret not in output


# --- airflow connections test ---------------------------------------------------------------------------


@pytest.mark.airflow
def test_airflow_connections_test_succeeds(shell_runs, registered_rsa):
    run = shell_runs["airflow-test"]
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Connection success!" in output
    assert_no_key(output, registered_rsa.private_key)
