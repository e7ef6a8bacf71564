"""The connection form metadata that this Airflow's UI reads for the NetSuite connection type."""

from __future__ import annotations

import pytest

from airflow_provider_netsuite.get_provider_info import get_provider_info


@pytest.fixture(scope="module")
def netsuite_meta():
    from airflow.api_fastapi.core_api.services.ui import connections as services

    (meta,) = [m for m in services.HookMetaService.hook_meta_data() if m.connection_type == "netsuite"]
    return meta


def test_ui_shows_every_extra_field_with_its_label(netsuite_meta):
    declared = get_provider_info()["connection-types"][0]["conn-fields"]
    shown = netsuite_meta.extra_fields or {}
    assert set(shown) == set(declared)
    assert {name: field["schema"]["title"] for name, field in shown.items()} == {
        name: field["label"] for name, field in declared.items()
    }


def test_ui_hides_standard_fields_and_secrets(netsuite_meta):
    standard = netsuite_meta.standard_fields.model_dump()
    assert all(standard[name]["hidden"] for name in ("host", "login", "password", "port", "url_schema"))
    shown = netsuite_meta.extra_fields
    secret = {name for name, field in shown.items() if field["schema"].get("format") == "password"}
    assert secret == {"private_key", "private_key_passphrase", "consumer_secret", "token_id", "token_secret"}
    assert shown["auth_type"]["schema"]["enum"] == ["oauth2_client_credentials", "tba"]
