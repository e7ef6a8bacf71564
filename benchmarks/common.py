"""Shared harness of the benchmarks: the emulator as a subprocess, keys, credentials, measured child runs.

The emulator always runs in its own process, so its CPU time never counts as the client's. Each measured
run can be executed in a fresh child process (:func:`run_child`), so that its peak RSS is its own and runs
of different sizes are comparable.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
ACCOUNT_ID = "1234567_SB1"
CLIENT_ID = "b" * 32 + "bench"
CERTIFICATE_ID = "bench-certificate"
SCOPES = ("rest_webservices", "restlets")
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"


@dataclass
class KeyPair:
    """A private key and its self-signed x.509 certificate in PEM files."""

    key_path: Path
    cert_path: Path

    @property
    def private_key(self) -> str:
        return self.key_path.read_text()


@dataclass
class TBACredentials:
    """Consumer key/secret and token ID/secret registered with the emulator (made up per run)."""

    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str


def make_keypair(directory: Path, kind: str = "rsa:3072") -> KeyPair:
    """Create an unencrypted key and a PSS-signed certificate with openssl, as NetSuite's M2M page says.

    :param kind: ``rsa:<bits>`` or ``ec:<curve>``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / "bench.key.pem", directory / "bench.cert.pem"
    algorithm, _, param = kind.partition(":")
    if algorithm == "ec":
        newkey, sigopts = ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{param}"], []
    else:
        newkey = ["-newkey", f"rsa:{param}"]
        sigopts = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:64"]
    command = ["openssl", "req", "-new", "-x509", *newkey, "-sha256", *sigopts, "-noenc", "-days", "365"]
    command += ["-subj", "/CN=netsuite-benchmark", "-keyout", str(key_path), "-out", str(cert_path)]
    subprocess.run(command, check=True, capture_output=True)
    return KeyPair(key_path=key_path, cert_path=cert_path)


@dataclass
class Emulator:
    """A running emulator subprocess."""

    base_url: str
    state_dir: Path
    account_id: str
    process: subprocess.Popen
    settings: dict[str, Any] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        """Run an emulator command on this state directory; return its standard output."""
        return emulator_cli(self.state_dir, *args)

    def admin(self, method: str, path: str, payload: dict | None = None) -> dict:
        """Call an ``/_emulator/`` admin endpoint (not part of NetSuite)."""
        response = requests.request(method, f"{self.base_url}/_emulator/{path}", json=payload, timeout=60)
        response.raise_for_status()
        return response.json() if response.content else {}

    def stats(self) -> dict:
        return self.admin("GET", "stats")

    def reset_stats(self) -> dict:
        return self.admin("POST", "stats/reset")

    def cpu_seconds(self) -> float | None:
        """Return the emulator process's user + system CPU seconds so far (Linux), else ``None``."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def register_certificate(self, keypair: KeyPair, client_id: str = CLIENT_ID) -> str:
        """Map the key pair's certificate to ``client_id``; return the certificate ID."""
        self.cli(
            "register-certificate",
            "--client-id",
            client_id,
            "--certificate-id",
            CERTIFICATE_ID,
            "--certificate",
            str(keypair.cert_path),
            "--scopes",
            ",".join(SCOPES),
        )
        return CERTIFICATE_ID

    def register_tba_token(self) -> TBACredentials:
        """Register freshly made-up TBA credentials and return them."""
        credentials = TBACredentials(
            consumer_key=secrets.token_hex(32),
            consumer_secret=secrets.token_hex(32),
            token_id=secrets.token_hex(32),
            token_secret=secrets.token_hex(32),
        )
        self.cli(
            "register-tba-token",
            "--consumer-key",
            credentials.consumer_key,
            "--consumer-secret",
            credentials.consumer_secret,
            "--token-id",
            credentials.token_id,
            "--token-secret",
            credentials.token_secret,
        )
        return credentials

    def m2m_extra(self, keypair: KeyPair, certificate_id: str = CERTIFICATE_ID) -> dict[str, Any]:
        """Return connection extras for the provider (OAuth 2.0 M2M) pointing at this emulator."""
        return {
            "account_id": self.account_id,
            "client_id": CLIENT_ID,
            "certificate_id": certificate_id,
            "private_key": keypair.private_key,
            "scopes": list(SCOPES),
            "base_url": self.base_url,
        }

    def stop(self) -> None:
        """Terminate the emulator and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def emulator_cli(state_dir: Path, *args: str) -> str:
    """Run ``python -m airflow_provider_netsuite.emulator <args> --state-dir <dir>``; return stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_netsuite.emulator", *args, "--state-dir", str(state_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return result.stdout


def generate_table(state_dir: Path, table: str, rows: int) -> float:
    """Create a synthetic table of ``rows`` rows (ids 1..rows) in the emulator database; return seconds."""
    started = time.monotonic()
    emulator_cli(state_dir, "generate-table", "--table", table, "--rows", str(rows))
    return time.monotonic() - started


def start_emulator(
    state_dir: Path,
    *,
    account_id: str = ACCOUNT_ID,
    concurrency_limit: int = 5,
    latency_ms: float = 100.0,
    jitter_ms: float = 0.0,
    startup_timeout: float = 120.0,
) -> Emulator:
    """Start the emulator on a free loopback port and wait until it listens."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port_file = state_dir / "port"
    port_file.unlink(missing_ok=True)
    settings = {"concurrency_limit": concurrency_limit, "latency_ms": latency_ms, "jitter_ms": jitter_ms}
    command = [sys.executable, "-m", "airflow_provider_netsuite.emulator", "serve"]
    command += ["--state-dir", str(state_dir), "--port", "0", "--port-file", str(port_file)]
    command += ["--account-id", account_id, "--concurrency-limit", str(concurrency_limit)]
    command += ["--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
    with open(state_dir / "emulator.log", "ab") as log_file:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, cwd=ROOT)
    deadline = time.monotonic() + startup_timeout
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the emulator did not start; see {state_dir / 'emulator.log'}")
        time.sleep(0.05)
    base_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    return Emulator(base_url, state_dir, account_id, process, settings)


# --------------------------------------------------------------------------------------------------------
# Measured runs in child processes.


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: Path, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``script --child`` in a fresh interpreter and return the JSON object it prints last.

    The payload goes to the child's standard input, not its command line, because it holds credentials.

    :param timeout: seconds before the child is killed and :class:`TimeoutError` raised.
    """
    command = [sys.executable, str(script), "--child"]
    try:
        result = subprocess.run(
            command, input=json.dumps(payload), capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )
    except subprocess.TimeoutExpired as error:
        raise TimeoutError(f"{payload.get('runner')} did not finish within {timeout:.0f} s") from error
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{payload.get('runner')} failed (exit {result.returncode}):\n{tail}")
    return json.loads(lines[-1])


def emit_child_result(result: dict[str, Any]) -> None:
    """Print a child's result as the last line of its standard output, with its peak RSS."""
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    print(json.dumps(result), flush=True)
