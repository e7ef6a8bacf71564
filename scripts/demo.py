"""
Run the example DAG through real Airflow against the embedded NetSuite emulator and print what it extracted.

Steps: make an RSA key and certificate with openssl, start the emulator on loopback, register the
certificate as an M2M mapping, run ``airflow dags test`` with the connection given as an
``AIRFLOW_CONN_NETSUITE_DEFAULT`` variable, then compare the rows written with what the same window selects
in the emulator's database. The emulator is stopped whatever happens.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("NETSUITE_DEMO_WORK", ROOT / ".build" / "demo"))
BIN = Path(sys.executable).parent
DAG_ID = "netsuite_customers_daily"
LOGICAL_DATE = os.environ.get("NETSUITE_DEMO_DATE", "2026-06-17")
ACCOUNT_ID = "1234567_SB1"
CLIENT_ID = "demo0client0id0000000000000000000000000000000000000000000000000000"[:64]
CERTIFICATE_ID = "demo-certificate-1"
TIMEZONE = "America/Los_Angeles"


def run(*args: str, env: dict | None = None, capture: bool = False) -> str:
    result = subprocess.run(args, env=env, check=False, text=True, capture_output=capture)
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"demo: command failed ({result.returncode}): {' '.join(args[:4])} ...")
    return result.stdout if capture else ""


def make_key_pair() -> tuple[Path, Path]:
    key, cert = WORK / "netsuite-private.pem", WORK / "netsuite-certificate.pem"
    run(
        "openssl",
        "req",
        "-new",
        "-x509",
        "-newkey",
        "rsa:3072",
        "-sha256",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:64",
        "-noenc",
        "-days",
        "365",
        "-subj",
        "/CN=airflow-provider-netsuite-demo",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        capture=True,
    )
    return key, cert


def emulator_cli(*args: str) -> str:
    return run(
        sys.executable,
        "-m",
        "airflow_provider_netsuite.emulator",
        *args,
        "--state-dir",
        str(WORK / "emulator"),
        capture=True,
    )


def start_emulator() -> tuple[subprocess.Popen, str]:
    port_file = WORK / "emulator" / "port"
    port_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(WORK / "emulator.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_netsuite.emulator",
            "serve",
            "--state-dir",
            str(WORK / "emulator"),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--account-id",
            ACCOUNT_ID,
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: the emulator did not start; see {WORK / 'emulator.log'}")
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{port_file.read_text().strip()}"


def airflow_env(base_url: str, key: Path) -> dict[str, str]:
    extra = {
        "account_id": ACCOUNT_ID,
        "client_id": CLIENT_ID,
        "certificate_id": CERTIFICATE_ID,
        "private_key": key.read_text(),
        "scopes": ["rest_webservices"],
        "timezone": TIMEZONE,
        "base_url": base_url,
    }
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(WORK / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_NETSUITE_DEFAULT": json.dumps({"conn_type": "netsuite", "extra": extra}),
            "NETSUITE_OUTPUT_ROOT": str(WORK / "output"),
        }
    )
    return env


def extract_result(output: str) -> dict:
    for line in output.splitlines():
        if "NETSUITE_EXTRACT_RESULT" in line:
            return ast.literal_eval(line.split("NETSUITE_EXTRACT_RESULT", 1)[1].strip())
    raise SystemExit("demo: the DAG ran but printed no extract result")


def expected_rows(window_start: str, window_end: str) -> int:
    """Count in the emulator's database what the window selects, with the account's time zone applied."""
    zone = ZoneInfo(TIMEZONE)
    start, end = (
        datetime.fromisoformat(v).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        for v in (window_start, window_end)
    )
    sql = (
        "SELECT COUNT(*) AS n FROM customer "  # noqa: S608 - values come from our own timestamps
        f"WHERE lastmodifieddate >= '{start}' AND lastmodifieddate < '{end}'"
    )
    return int(json.loads(emulator_cli("query", "--json", sql))[0]["n"])


def read_rows(path: str) -> list[dict]:
    with open(path.removeprefix("file://"), "rb") as handle:
        return [json.loads(line) for line in handle]


def print_sample(rows: list[dict], count: int = 5) -> None:
    """Print the first rows as NetSuite sent them (values as strings, ``links`` left out for brevity)."""
    print(f"First {min(count, len(rows))} of {len(rows)} rows:")
    for row in rows[:count]:
        print("  " + json.dumps({key: value for key, value in row.items() if key != "links"}))


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    started = time.monotonic()
    key, cert = make_key_pair()
    process, base_url = start_emulator()
    try:
        emulator_cli(
            "register-certificate",
            "--client-id",
            CLIENT_ID,
            "--certificate-id",
            CERTIFICATE_ID,
            "--certificate",
            str(cert),
            "--scopes",
            "rest_webservices",
        )
        env = airflow_env(base_url, key)
        run(str(BIN / "airflow"), "db", "migrate", env=env, capture=True)
        output = run(str(BIN / "airflow"), "dags", "test", DAG_ID, LOGICAL_DATE, env=env, capture=True)
        result = extract_result(output)
        rows = read_rows(result["path"])
        expected = expected_rows(result["window_start"], result["window_end"])
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(
        f"Extracted {result['rows']} rows ({result['strategy']} paging, {result['pages']} pages) "
        f"for [{result['window_start']}, {result['window_end']})"
    )
    print(f"Output: {result['path']}")
    print_sample(rows)
    written = len(rows)
    print(f"Rows in the output file: {written}; rows the query selects in the emulator's data: {expected}")
    print(f"Demo finished in {time.monotonic() - started:.1f} s")
    if not (written == expected == result["rows"]):
        raise SystemExit("demo: the extract does not match the emulator's data")


if __name__ == "__main__":
    main()
