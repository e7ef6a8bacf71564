"""The provider registers with Airflow and its info matches Airflow's own schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_netsuite.get_provider_info import get_provider_info
from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook


def test_provider_info_matches_airflow_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_points_at_provider_info():
    (point,) = [
        p for p in entry_points(group="apache_airflow_provider") if p.value.startswith("airflow_provider")
    ]
    info = point.load()()
    assert info["package-name"] == "airflow-provider-netsuite"


def test_connection_type_matches_hook():
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == NetSuiteHook.conn_type == "netsuite"
    assert conn_type["hook-name"] == NetSuiteHook.hook_name
    module, _, cls = conn_type["hook-class-name"].rpartition(".")
    assert (module, cls) == (NetSuiteHook.__module__, NetSuiteHook.__name__)


def test_secret_fields_are_password_fields():
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    secret = {name for name, field in fields.items() if field["schema"].get("format") == "password"}
    assert secret == {"private_key", "private_key_passphrase", "consumer_secret", "token_id", "token_secret"}
    assert fields["auth_type"]["schema"]["enum"] == ["oauth2_client_credentials", "tba"]


@pytest.mark.airflow
def test_airflow_cli_lists_provider_and_connection_type(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow_bin = str(Path(sys.executable).parent / "airflow")
    providers = subprocess.run(
        [airflow_bin, "providers", "list", "-o", "json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "airflow-provider-netsuite" in {p["package_name"] for p in json.loads(providers)}
    hooks = subprocess.run(
        [airflow_bin, "providers", "hooks", "-o", "json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "netsuite" in {h["connection_type"] for h in json.loads(hooks)}
