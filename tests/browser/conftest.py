"""Fixtures for the browser test: a real ``airflow api-server`` and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

CHROMIUM = Path(os.environ.get("NETSUITE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_USER = "admin"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class ApiServer:
    """A running ``airflow api-server`` with its own AIRFLOW_HOME and a known admin password."""

    base_url: str
    home: Path
    username: str
    password: str
    env: dict[str, str]
    process: subprocess.Popen

    def token(self) -> str:
        """Return a bearer token for the REST API, as the simple auth manager issues it."""
        response = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def api(self, method: str, path: str, json: dict | None = None) -> requests.Response:
        """Call the public REST API (``/api/v2/...``) as the admin user."""
        return requests.request(
            method,
            f"{self.base_url}/api/v2/{path}",
            json=json,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_env(home: Path, port: int, passwords_file: Path) -> dict[str, str]:
    """Return the environment of an isolated api-server: own home and database, testing enabled."""
    bin_dir = str(Path(sys.executable).parent)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            # The server spawns helpers as a bare ``airflow``: the virtual environment must be on PATH.
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
        }
    )
    return env


def _wait_healthy(base_url: str, process: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {process.returncode}; see {log_path}")
        try:
            if requests.get(f"{base_url}/api/v2/monitor/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"airflow api-server did not answer within {timeout:.0f} s; see {log_path}")


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the server and every child it spawned: it runs in its own process group."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Return Debian's Chromium; fail, never skip, when it is missing so CI cannot pass without it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's Chromium. "
            "Run scripts/install-browser.sh (it runs apt-get install -y chromium) and try again.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def api_server(tmp_path_factory) -> ApiServer:
    """Start ``airflow api-server`` on a free loopback port with its own AIRFLOW_HOME; stop it after."""
    home = tmp_path_factory.mktemp("airflow-api-server")
    (home / "dags").mkdir()
    password = secrets.token_urlsafe(16)
    passwords_file = home / "simple_auth_manager_passwords.json"
    # The simple auth manager only generates passwords for users missing from this file.
    passwords_file.write_text(json.dumps({ADMIN_USER: password}) + "\n")
    port = _free_port()
    env = _server_env(home, port, passwords_file)
    airflow_bin = str(Path(sys.executable).parent / "airflow")

    subprocess.run([airflow_bin, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)

    log_path = home / "api-server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [airflow_bin, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, process, log_path)
        yield ApiServer(base_url, home, ADMIN_USER, password, env, process)
    finally:
        _stop_group(process)


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Launch headless Chromium through Playwright, with no browser download.

    Module-scoped: Playwright's sync API keeps an asyncio loop running in the main thread while it is
    open, which would break every later test that calls ``asyncio.run``.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page, sized so the whole connection dialog fits a screenshot."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
