"""Shared fixtures: real keys made by ``openssl`` and the NetSuite emulator as a subprocess."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
# Airflow reads its home at import time: give the suite its own, away from the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".build" / "airflow-test"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "example_dags"))

ACCOUNT_ID = "1234567_SB1"
CLIENT_ID = "a" * 32 + "c1"
SCOPES = ["rest_webservices", "restlets"]
#: TBA connection extras for unit tests against fakes (nothing registers these with an emulator).
TBA_EXTRA = {
    "auth_type": "tba",
    "account_id": "1234567-sb1",
    "consumer_key": "ck-abc",
    "consumer_secret": "cs-secret-1",
    "token_id": "tid-secret-2",
    "token_secret": "ts-secret-3",
}
#: NetSuite's answer when the account's concurrency limit is exceeded.
CONCURRENCY_LIMIT_BODY = {
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html",
    "title": "Bad Request",
    "status": 429,
    "o:errorCode": "USER_ERROR",
    "o:errorDetails": [
        {
            "detail": "Concurrent request limit exceeded. Request blocked.",
            "o:errorCode": "CONCURRENCY_LIMIT_EXCEEDED",
        }
    ],
}
#: The emulator's runtime settings as it starts (tests that change them put these back).
EMULATOR_DEFAULTS = {
    "concurrency_limit": 5,
    "latency_ms": 0,
    "jitter_ms": 0,
    "retry_after": None,
    "faults": {},
}
#: Anything shaped like a JWT (a client assertion or an access token).
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@dataclass
class KeyPair:
    """A private key and its x.509 certificate, made by openssl, in PEM files."""

    kind: str
    key_path: Path
    cert_path: Path
    certificate_id: str = ""

    @property
    def private_key(self) -> str:
        return self.key_path.read_text()


def make_keypair(directory: Path, kind: str = "rsa:3072", passphrase: str | None = None) -> KeyPair:
    """Create a key and a self-signed certificate with openssl, as NetSuite's M2M setup page describes.

    :param kind: ``rsa:<bits>``, ``rsa-pss:<bits>`` or ``ec:<curve>`` (``prime256v1``, ``secp384r1``, ...).
    :param passphrase: encrypt the key (PKCS#8) with this passphrase.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = kind.replace(":", "-")
    key_path, cert_path = directory / f"{name}.key.pem", directory / f"{name}.cert.pem"
    algorithm, _, param = kind.partition(":")
    if algorithm == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{param}"]
        sigopts: list[str] = []
    else:
        newkey = (
            ["-newkey", f"{algorithm}:{param}"]
            if algorithm == "rsa"
            else ["-newkey", "rsa-pss", "-pkeyopt", f"rsa_keygen_bits:{param}"]
        )
        sigopts = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:64"]
    encryption = ["-passout", f"pass:{passphrase}"] if passphrase else ["-noenc"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-x509",
            *newkey,
            "-sha256",
            *sigopts,
            *encryption,
            "-days",
            "365",
            "-subj",
            "/CN=airflow-provider-netsuite-tests",
            "-keyout",
            str(key_path),
            "-out",
            str(cert_path),
        ],
        check=True,
        capture_output=True,
    )
    return KeyPair(kind=kind, key_path=key_path, cert_path=cert_path)


@dataclass
class Emulator:
    """A running emulator subprocess and the way to register credentials with it."""

    base_url: str
    state_dir: Path
    account_id: str
    process: subprocess.Popen
    registered: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "airflow_provider_netsuite.emulator",
                *args,
                "--state-dir",
                str(self.state_dir),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def register(self, keypair: KeyPair, client_id: str = CLIENT_ID, scopes=SCOPES) -> KeyPair:
        """Register the key pair's certificate for ``client_id``; sets and returns its certificate ID."""
        certificate_id = (
            keypair.certificate_id or f"cert-{keypair.kind.replace(':', '-')}-{len(self.registered)}"
        )
        self.cli(
            "register-certificate",
            "--client-id",
            client_id,
            "--certificate-id",
            certificate_id,
            "--certificate",
            str(keypair.cert_path),
            "--scopes",
            ",".join(scopes),
        )
        keypair.certificate_id = certificate_id
        self.registered.append(certificate_id)
        return keypair

    def register_tba(self, credentials: dict[str, str]) -> dict[str, str]:
        """Register a TBA token (``consumer_key``, ``consumer_secret``, ``token_id``, ``token_secret``)."""
        self.cli(
            "register-tba-token",
            "--consumer-key", credentials["consumer_key"],
            "--consumer-secret", credentials["consumer_secret"],
            "--token-id", credentials["token_id"],
            "--token-secret", credentials["token_secret"],
        )  # fmt: skip
        return dict(credentials)

    def admin(self, method: str, path: str, payload: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base_url}/_emulator/{path}", json=payload, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else {}

    def configure(self, **settings) -> dict:
        return self.admin("POST", "config", settings)

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def query_db(self, query: str) -> list[dict]:
        """Run SQL directly on the emulator's database (the ground truth tests compare with)."""
        return json.loads(self.cli("query", "--json", query))


def start_emulator(state_dir: Path, *extra_args: str, account_id: str = ACCOUNT_ID) -> Emulator:
    state_dir.mkdir(parents=True, exist_ok=True)
    port_file = state_dir / "port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_netsuite.emulator",
            "serve",
            "--state-dir",
            str(state_dir),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--account-id",
            account_id,
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(state_dir / "emulator.log", "ab"),
    )
    deadline = time.monotonic() + 120
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"emulator did not start; see {state_dir / 'emulator.log'}")
        time.sleep(0.1)
    base_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    return Emulator(base_url=base_url, state_dir=state_dir, account_id=account_id, process=process)


def stop_emulator(emulator: Emulator) -> None:
    emulator.process.terminate()
    try:
        emulator.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        emulator.process.kill()


@contextmanager
def own_emulator(tmp_path_factory, name: str, **extra_changes) -> Iterator[Emulator]:
    """Run an emulator of a module's own with a new EC key registered; stop it afterwards.

    ``instance.extra`` holds connection extras pointing at it, with ``extra_changes`` added.
    """
    instance = start_emulator(tmp_path_factory.mktemp(f"{name}-emulator"))
    try:
        keypair = instance.register(make_keypair(tmp_path_factory.mktemp(f"{name}-keys"), "ec:prime256v1"))
        instance.extra = {
            "account_id": instance.account_id,
            "client_id": CLIENT_ID,
            "certificate_id": keypair.certificate_id,
            "private_key": keypair.private_key,
            "base_url": instance.base_url,
            **extra_changes,
        }
        yield instance
    finally:
        stop_emulator(instance)


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def rsa_keypair(keys_dir) -> KeyPair:
    return make_keypair(keys_dir, "rsa:3072")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Emulator:
    """One emulator for the whole session; tests that change its settings restore them."""
    instance = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield instance
    stop_emulator(instance)


@pytest.fixture(scope="session")
def registered_rsa(emulator, rsa_keypair) -> KeyPair:
    return emulator.register(rsa_keypair)


@pytest.fixture
def netsuite_extra(emulator, registered_rsa) -> dict:
    """Connection extras that point at the emulator with a registered RSA 3072 key."""
    return {
        "account_id": emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": registered_rsa.certificate_id,
        "private_key": registered_rsa.private_key,
        "scopes": SCOPES,
        "base_url": emulator.base_url,
    }


@pytest.fixture
def airflow_conn_env(netsuite_extra, monkeypatch) -> str:
    """Expose the emulator connection to Airflow as ``AIRFLOW_CONN_NETSUITE_DEFAULT``."""
    value = json.dumps({"conn_type": "netsuite", "extra": netsuite_extra})
    monkeypatch.setenv("AIRFLOW_CONN_NETSUITE_DEFAULT", value)
    return value


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the suite's Airflow metadata database (SQLite) once per session; return AIRFLOW_HOME."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    return home


# --- plain helpers shared by test modules ---------------------------------------------------------------


def dags_test_result(dag_id: str, date: str, env: dict[str, str]) -> dict:
    """Run ``airflow dags test`` for one date; return the ``NETSUITE_EXTRACT_RESULT`` the DAG printed."""
    run = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, date],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if "NETSUITE_EXTRACT_RESULT" in line)
    return ast.literal_eval(line.split("NETSUITE_EXTRACT_RESULT", 1)[1].strip())


def pem_body_lines(pem: str) -> list[str]:
    """Return the non-empty lines of a PEM between its ``-----`` markers."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def run_threads(threads: Iterable[threading.Thread]) -> None:
    """Start every thread, then wait for each to finish."""
    threads = list(threads)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def write_pages(writer_class, pages, **options) -> tuple[bytes, object]:
    """Write ``pages`` into memory with ``writer_class``, check its byte count; return bytes and writer."""
    buffer = io.BytesIO()
    writer = writer_class(buffer, **options)
    for page in pages:
        writer.write_page(page)
    writer.close()
    assert writer.bytes_written == len(buffer.getvalue())
    return buffer.getvalue(), writer
