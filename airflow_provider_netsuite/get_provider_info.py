"""Provider information that Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

# The standard fields have no meaning for NetSuite: everything lives in named extra fields.
_HIDDEN_STANDARD_FIELDS = ["host", "schema", "login", "password", "port"]

_PLACEHOLDERS = {
    "account_id": "1234567 or 1234567_SB1",
    "client_id": "Client ID of the integration record",
    "certificate_id": "Certificate ID of the M2M mapping",
    "private_key": "-----BEGIN PRIVATE KEY----- ... (PKCS#8 or PKCS#1)",
    "private_key_path": "/opt/airflow/secrets/netsuite-key.pem",
    "scopes": "rest_webservices,restlets",
    "timezone": "America/Los_Angeles",
    "base_url": "https://1234567-sb1.suitetalk.api.netsuite.com",
}


def _text(
    label: str,
    description: str,
    *,
    secret: bool = False,
    required: bool = False,
    default: str | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string" if required else ["string", "null"]}
    if secret:
        schema["format"] = "password"
    if default is not None:
        schema["default"] = default
    return {"label": label, "schema": schema, "description": description}


def _conn_fields() -> dict[str, Any]:
    # Airflow 3.3's form shows no placeholder under an extra field, only its description: each
    # description therefore carries the expected format, like the placeholders above do for other UIs.
    return {
        "auth_type": {
            "label": "Authentication",
            "schema": {
                "type": "string",
                "enum": ["oauth2_client_credentials", "tba"],
                "default": "oauth2_client_credentials",
                "values_display": {
                    "oauth2_client_credentials": "OAuth 2.0 client credentials (M2M)",
                    "tba": "Token-Based Authentication (TBA)",
                },
            },
            "description": "OAuth 2.0 client credentials (M2M) is recommended; TBA for older integrations.",
        },
        "account_id": _text(
            "Account ID",
            "Like 1234567, or 1234567_SB1 for a sandbox (Setup > Company > Company Information).",
            required=True,
        ),
        "client_id": _text("Client ID (consumer key)", "The consumer key of the integration record."),
        "certificate_id": _text(
            "Certificate ID", "Shown on the OAuth 2.0 client credentials (M2M) setup page, per certificate."
        ),
        "private_key": _text(
            "Private key (PEM)",
            "-----BEGIN PRIVATE KEY----- ... (PKCS#8 or PKCS#1); pasting it on one line is fine.",
            secret=True,
        ),
        "private_key_passphrase": _text("Private key passphrase", "Only for an encrypted key.", secret=True),
        "private_key_path": _text(
            "Private key file",
            "Instead of the PEM text: a path on the workers, like /opt/airflow/netsuite.pem.",
        ),
        # Filled in by default: an empty scopes field is refused rather than silently defaulted.
        "scopes": _text(
            "Scopes",
            "Comma-separated, like rest_webservices,restlets; at least one is required.",
            default="rest_webservices",
        ),
        "consumer_secret": _text("Consumer secret (TBA)", "Token-Based Authentication only.", secret=True),
        "token_id": _text("Token ID (TBA)", "Token-Based Authentication only.", secret=True),
        "token_secret": _text("Token secret (TBA)", "Token-Based Authentication only.", secret=True),
        "timezone": _text(
            "Account time zone",
            "IANA name, like America/Los_Angeles, for incremental windows; UTC when empty.",
        ),
        "max_retries": {
            "label": "Retries per request",
            "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 50},
            "description": "Retries of 429, 5xx and broken connections; 7 when empty.",
        },
        "max_retry_wait": {
            "label": "Longest total wait (s)",
            "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 3600},
            "description": "Seconds of back-off allowed per request before giving up; 300 when empty.",
        },
        "base_url": _text(
            "Base URL override",
            "Leave empty for NetSuite; for offline tests the emulator's URL, like http://127.0.0.1:8765.",
        ),
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider info dict that Airflow validates against its ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-provider-netsuite",
        "name": "NetSuite",
        "description": "Oracle NetSuite: OAuth 2.0 M2M and TBA auth, SuiteQL extracts, record upserts.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Oracle NetSuite",
                "external-doc-url": "https://docs.oracle.com/en/cloud/saas/netsuite/",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "Oracle NetSuite",
                "python-modules": [
                    "airflow_provider_netsuite.operators.suiteql",
                    "airflow_provider_netsuite.operators.records",
                    "airflow_provider_netsuite.operators.partitions",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Oracle NetSuite",
                "python-modules": ["airflow_provider_netsuite.sensors.suiteql"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Oracle NetSuite",
                "python-modules": ["airflow_provider_netsuite.triggers.suiteql"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Oracle NetSuite",
                "python-modules": ["airflow_provider_netsuite.hooks.netsuite"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "netsuite",
                "hook-class-name": "airflow_provider_netsuite.hooks.netsuite.NetSuiteHook",
                "hook-name": "NetSuite",
                "conn-fields": _conn_fields(),
                "ui-field-behaviour": {
                    "hidden-fields": _HIDDEN_STANDARD_FIELDS,
                    "relabeling": {},
                    "placeholders": _PLACEHOLDERS,
                },
            }
        ],
    }
