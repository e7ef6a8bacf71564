"""Connection extras: defaults, blank UI fields, wrong types, secrets kept out of repr."""

from __future__ import annotations

import json

import pytest

from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteConfigError
from tests.conftest import CLIENT_ID


@pytest.fixture
def extra(rsa_keypair) -> dict:
    return {
        "account_id": "1234567-sb1",
        "client_id": CLIENT_ID,
        "certificate_id": "cert-abc",
        "private_key": rsa_keypair.private_key,
    }


def _field_error(extra, **kwargs) -> str | None:
    with pytest.raises(NetSuiteConfigError) as info:
        ConnectionConfig.from_extra(extra, **kwargs)
    return info.value.field


def test_defaults(extra):
    config = ConnectionConfig.from_extra(extra)
    assert config.auth_type == "oauth2_client_credentials"
    assert config.account_id == "1234567_SB1"
    assert config.base_url == "https://1234567-sb1.suitetalk.api.netsuite.com"
    assert config.token_url == config.base_url + "/services/rest/auth/oauth2/v1/token"
    assert config.scopes == ("rest_webservices",)
    assert config.scope_format == "array"
    assert (config.assertion_lifetime, config.token_refresh_margin, config.timeout) == (300, 300.0, 60.0)
    assert (config.timezone, config.verify_tls, config.token_cache_dir) == ("UTC", True, None)
    assert config.signing_key.algorithm == "PS256"


def test_extra_as_json_string(extra):
    assert ConnectionConfig.from_extra(json.dumps(extra)).client_id == CLIENT_ID
    assert _field_error("{not json") == "extra"
    assert _field_error("[1, 2]") == "extra"


def test_blank_strings_mean_not_set(extra):
    # Not scopes: an empty scope is refused, and the connection form fills that field by default.
    extra.update(
        {
            "base_url": " ",
            "timezone": "",
            "algorithm": "",
            "timeout": "",
            "private_key_passphrase": "",
            "token_cache_dir": "",
            "verify_tls": "",
            "auth_type": "",
        }
    )
    config = ConnectionConfig.from_extra(extra)
    assert config.scopes == ("rest_webservices",)
    assert config.base_url.startswith("https://1234567-sb1.")
    assert config.timezone == "UTC"
    assert config.verify_tls is True
    assert config.token_cache_dir is None


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["rest_webservices", "restlets"], ("rest_webservices", "restlets")),
        ("rest_webservices, restlets", ("rest_webservices", "restlets")),
        ('["restlets"]', ("restlets",)),
        ("rest_webservices,rest_webservices", ("rest_webservices",)),
        ("rest_webservices restlets", ("rest_webservices", "restlets")),
    ],
)
def test_scope_forms(extra, scopes, expected):
    extra["scopes"] = scopes
    assert ConnectionConfig.from_extra(extra).scopes == expected


@pytest.mark.parametrize(
    "scopes", [[], "", " ", ",", " , ", 5, [1], "rest-webservices", ["rest webservices"], {"a": 1}, "[oops"]
)
def test_bad_scopes(extra, scopes):
    extra["scopes"] = scopes
    assert _field_error(extra) == "scopes"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("assertion_lifetime", "abc"),
        ("assertion_lifetime", 3601),
        ("assertion_lifetime", 0),
        ("assertion_lifetime", 2.5),
        ("assertion_lifetime", True),
        ("token_refresh_margin", -1),
        ("token_refresh_margin", "x"),
        ("timeout", 0),
        ("timeout", [1]),
        ("timeout", 10_000),
        ("verify_tls", "maybe"),
        ("timezone", "Mars/Olympus"),
        ("timezone", "../etc/passwd"),
        ("auth_type", "password"),
        ("scope_format", "space"),
        ("client_id", 123),
        ("client_id", "has space"),
        ("certificate_id", "x" * 300),
        ("base_url", "http://example.com"),
        ("account_id", "acme.suitetalk.api.netsuite.com"),
        ("algorithm", "RS256"),
        ("private_key", "not a key"),
        ("certificate_id", None),
        ("client_id", None),
        ("account_id", None),
    ],
)
def test_invalid_values_name_their_field(extra, field, value):
    extra[field] = value
    assert _field_error(extra) == field


def test_numbers_as_strings_accepted(extra):
    extra.update(
        {"assertion_lifetime": "600", "token_refresh_margin": "120", "timeout": "30.5", "verify_tls": "true"}
    )
    config = ConnectionConfig.from_extra(extra)
    assert (config.assertion_lifetime, config.token_refresh_margin, config.timeout) == (600, 120.0, 30.5)


def test_oversized_value_refused(extra):
    extra["certificate_id"] = "x" * (65 * 1024)
    assert _field_error(extra) == "certificate_id"


def test_missing_key_refused(extra):
    del extra["private_key"]
    assert _field_error(extra) == "private_key"


def test_key_path_and_passphrase(extra, rsa_keypair):
    del extra["private_key"]
    extra["private_key_path"] = str(rsa_keypair.key_path)
    assert ConnectionConfig.from_extra(extra).signing_key.key_size == 3072


def test_login_and_password_fallbacks(extra):
    client_id, key = extra.pop("client_id"), extra.pop("private_key")
    config = ConnectionConfig.from_extra(extra, login=client_id, password=key)
    assert config.client_id == client_id
    assert config.signing_key is not None
    extra["consumer_key"] = "alias-client-id"
    extra["private_key"] = key
    assert ConnectionConfig.from_extra(extra).client_id == "alias-client-id"


def test_verify_tls_false_only_for_loopback(extra):
    extra["verify_tls"] = False
    assert _field_error(extra) == "verify_tls"
    extra["base_url"] = "http://127.0.0.1:9999"
    assert ConnectionConfig.from_extra(extra).verify_tls is False


def test_timezone_and_options(extra):
    extra.update(
        {
            "timezone": "America/Los_Angeles",
            "scope_format": "STRING",
            "algorithm": "ps512",
            "token_cache_dir": "/tmp/x",
        }
    )
    config = ConnectionConfig.from_extra(extra)
    assert config.timezone == "America/Los_Angeles"
    assert config.scope_format == "string"
    assert config.signing_key.algorithm == "PS512"
    assert config.token_cache_dir == "/tmp/x"


def test_repr_has_no_secrets(extra, rsa_keypair):
    config = ConnectionConfig.from_extra(extra)
    text = repr(config) + str(config)
    assert "1234567_SB1" in text
    for line in rsa_keypair.private_key.splitlines()[1:-1]:
        assert line[:24] not in text


TBA = {
    "auth_type": "tba",
    "account_id": "1234567_sb1",
    "consumer_key": "ck-123",
    "consumer_secret": "cs-secret-value",
    "token_id": "tid-secret-value",
    "token_secret": "ts-secret-value",
}


def test_tba_config_and_repr():
    config = ConnectionConfig.from_extra(TBA)
    assert config.is_tba
    assert config.account.realm == "1234567_SB1"
    assert config.signing_key is None
    text = repr(config)
    for secret in ("cs-secret-value", "tid-secret-value", "ts-secret-value"):
        assert secret not in text


def test_tba_takes_the_consumer_key_from_the_client_id_field():
    extra = {key: value for key, value in TBA.items() if key != "consumer_key"}
    extra["client_id"] = "ck-from-form"

    assert ConnectionConfig.from_extra(extra).consumer_key == "ck-from-form"


@pytest.mark.parametrize("missing", ["consumer_key", "consumer_secret", "token_id", "token_secret"])
def test_tba_missing_fields(missing):
    extra = dict(TBA)
    extra[missing] = ""
    assert _field_error(extra) == missing


def test_tba_error_does_not_echo_secret():
    extra = dict(TBA, token_secret="bad secret with spaces")
    with pytest.raises(NetSuiteConfigError) as info:
        ConnectionConfig.from_extra(extra)
    assert "bad secret" not in str(info.value)


def test_config_is_frozen(extra):
    config = ConnectionConfig.from_extra(extra)
    with pytest.raises(AttributeError):
        config.client_id = "other"
