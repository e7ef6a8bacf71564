"""No secret reaches a log line, a task log file, the console or XCom, even with DEBUG logging.

The example DAG runs in Airflow (``airflow dags test``) with an encrypted key, its passphrase and a token
cache directory; afterwards the test reads the access token the task minted back out of that encrypted
cache, so it can search for the exact token as well as for anything shaped like a JWT that the emulator or
the provider signed. A TBA extract runs in this process with every logger at DEBUG, and every value the
provider handed to ``mask_secret`` (Authorization headers, signatures) is searched for too.
"""

from __future__ import annotations

import ast
import base64
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_netsuite.core.auth import ClientCredentialsAuth
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.tokens import FileTokenCache
from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator
from tests.conftest import CLIENT_ID, JWT_SHAPE, make_keypair, pem_body_lines

pytestmark = pytest.mark.integration

PASSPHRASE = "never-print-this-passphrase-7781"
TBA = {
    "consumer_key": "lk" + "a" * 62,
    "consumer_secret": "ls" + "b" * 62,
    "token_id": "lt" + "c" * 62,
    "token_secret": "lx" + "d" * 62,
}


def _segment(part: str) -> dict:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def our_jwts(text: str, certificate_id: str) -> list[str]:
    """Return JWTs in ``text`` that are client assertions for ``certificate_id`` or emulator access tokens.

    Airflow itself uses JWTs for its own API; those are not the provider's secrets and are ignored.
    """
    found = []
    for match in JWT_SHAPE.finditer(text):
        header_part, payload_part, _ = match.group(0).split(".", 2)
        header, payload = _segment(header_part), _segment(payload_part)
        if header.get("kid") in (certificate_id, "emulator") or payload.get("iss") == CLIENT_ID:
            found.append(match.group(0)[:20] + "...")
        elif "suitetalk" in str(payload.get("iss", "")):
            found.append(match.group(0)[:20] + "...")
    return found


def without_dags_test_mask_requests(text: str) -> str:
    """Drop the DEBUG lines in which ``airflow dags test`` itself prints each value sent to mask_secret.

    Airflow 3.3.2's in-process test supervisor (used only by ``airflow dags test``) logs every request from
    the task at DEBUG, ``MaskSecret`` requests included, with the value to be masked; the real supervisor
    omits those bodies. That is Airflow's line, not the provider's: it is left out here, and only here.
    """
    return "\n".join(line for line in text.splitlines() if "msg=MaskSecret(" not in line)


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Return the names of the secrets found in ``text``, with what precedes the first one (to locate it)."""
    found = [name for name, value in secrets.items() if value and value in text]
    if found:
        at = text.index(secrets[found[0]])
        found.append("context: " + text[max(0, at - 300) : at].replace(secrets[found[0]], "<secret>"))
    return found


@pytest.fixture(scope="module")
def encrypted_key(emulator, tmp_path_factory):
    """An RSA 3072 key encrypted with a passphrase, registered with the emulator."""
    return emulator.register(make_keypair(tmp_path_factory.mktemp("secret-key"), "rsa:3072", PASSPHRASE))


@pytest.mark.airflow
def test_dag_run_with_debug_logging_leaks_no_secret(emulator, encrypted_key, airflow_db, tmp_path):
    cache_dir, log_dir = tmp_path / "token-cache", tmp_path / "logs"
    extra = {
        "account_id": "1234567-sb1",
        "client_id": CLIENT_ID,
        "certificate_id": encrypted_key.certificate_id,
        "private_key": encrypted_key.private_key.replace("\n", " "),  # as pasted into the one-line field
        "private_key_passphrase": PASSPHRASE,
        "scopes": "rest_webservices,restlets",
        "base_url": emulator.base_url,
        "token_cache_dir": str(cache_dir),
    }
    env = {
        **os.environ,
        "AIRFLOW_CONN_NETSUITE_DEFAULT": json.dumps({"conn_type": "netsuite", "extra": extra}),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(log_dir),
        "NETSUITE_OUTPUT_ROOT": str(tmp_path / "out"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    issued_before = emulator.stats()["tokens_issued"]

    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow"),
            "dags",
            "test",
            "netsuite_customers_daily",
            "2026-06-17",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    console = run.stdout + run.stderr
    assert run.returncode == 0, console[-4000:]
    assert emulator.stats()["tokens_issued"] - issued_before == 1
    config = ConnectionConfig.from_extra(extra)
    auth = ClientCredentialsAuth(config)
    token = FileTokenCache(cache_dir, config.signing_key.secret_bytes()).get(
        auth.cache_key, lambda: pytest.fail("the task's token is not in the cache")
    )
    decrypted = config.signing_key.key.private_bytes(
        *_pkcs8_pem_arguments()
    ).decode()  # the key as the provider holds it in memory
    secrets = {
        "access token": token.value,
        "passphrase": PASSPHRASE,
        **{
            f"encrypted key line {i}": line
            for i, line in enumerate(pem_body_lines(encrypted_key.private_key))
        },
        **{f"decrypted key line {i}": line for i, line in enumerate(pem_body_lines(decrypted))},
    }
    log_files = [path for path in log_dir.rglob("*") if path.is_file()]
    xcom_line = next(line for line in run.stdout.splitlines() if "NETSUITE_EXTRACT_RESULT" in line)
    result = ast.literal_eval(xcom_line.split("NETSUITE_EXTRACT_RESULT", 1)[1].strip())
    stored_xcom = _xcom_values(airflow_db, "netsuite_customers_daily")

    everything = console + "".join(path.read_text(errors="replace") for path in log_files)
    assert "[debug" in everything.lower()  # DEBUG logging was really on
    assert "NetSuite POST /services/rest/query/v1/suiteql -> 200" in everything  # the provider's own lines
    assert result["rows"] > 0
    assert stored_xcom, "no XCom stored for the DAG run"
    places = {
        "console": without_dags_test_mask_requests(console),
        "xcom": json.dumps(result) + "\n".join(stored_xcom),
    }
    places.update({str(p): p.read_text(errors="replace") for p in log_files})
    for place, text in places.items():
        assert leaks(text, secrets) == [], f"secret found in {place}"
        assert our_jwts(text, encrypted_key.certificate_id) == [], f"assertion or token found in {place}"


def _pkcs8_pem_arguments():
    from cryptography.hazmat.primitives import serialization

    return (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _xcom_values(airflow_home: Path, dag_id: str) -> list[str]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT value FROM xcom WHERE dag_id = ?", (dag_id,)).fetchall()
    return [value.decode(errors="replace") if isinstance(value, bytes) else str(value) for (value,) in rows]


def test_tba_extract_with_debug_logging_leaks_no_secret(emulator, monkeypatch, caplog, capsys, tmp_path):
    emulator.register_tba(TBA)
    extra = {"auth_type": "tba", "account_id": "1234567_SB1", "base_url": emulator.base_url, **TBA}
    monkeypatch.setenv("AIRFLOW_CONN_NETSUITE_DEFAULT", json.dumps({"conn_type": "netsuite", "extra": extra}))
    masked: list[str] = []
    from airflow_provider_netsuite.hooks import netsuite

    original = netsuite.mask_secret
    monkeypatch.setattr(
        netsuite, "mask_secret", lambda value, *a, **k: (masked.append(value), original(value))[1]
    )
    caplog.set_level(logging.DEBUG)
    operator = NetSuiteSuiteQLOperator(
        task_id="tba_extract",
        query="SELECT id, companyname FROM customer WHERE id <= 300",
        output_path=str(tmp_path / "tba.jsonl"),
    )

    result = operator.execute(context={})

    text = "\n".join(record.getMessage() for record in caplog.records) + capsys.readouterr().err
    signatures = [value for value in masked if value.startswith("OAuth ")]
    assert result["rows"] == len(emulator.query_db("SELECT id FROM customer WHERE id <= 300"))
    assert signatures, "the TBA Authorization headers were not passed to mask_secret"
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    secrets = {
        "consumer secret": TBA["consumer_secret"],
        "token secret": TBA["token_secret"],
        "token ID": TBA["token_id"],
        **{f"masked value {i}": value for i, value in enumerate(masked) if len(value) >= 8},
    }
    assert leaks(text, secrets) == []
    assert leaks(json.dumps(result), secrets) == []
    assert "oauth_signature" not in text
