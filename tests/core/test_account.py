"""Account ID forms people type, and the ones that must be refused before any request."""

from __future__ import annotations

import pytest

from airflow_provider_netsuite.core.account import Account, normalize_account_id, validate_base_url
from airflow_provider_netsuite.core.errors import NetSuiteConfigError


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("1234567", "1234567"),
        ("1234567_SB1", "1234567_SB1"),
        ("1234567_sb1", "1234567_SB1"),
        ("1234567-SB1", "1234567_SB1"),
        ("1234567-sb2", "1234567_SB2"),
        ("1234567_RP1", "1234567_RP1"),
        ("tstdrv1234567", "TSTDRV1234567"),
        ("TSTDRV1234567", "TSTDRV1234567"),
        ("  1234567_SB1  ", "1234567_SB1"),
        ('"1234567_SB1"', "1234567_SB1"),
        ("'1234567-sb1'", "1234567_SB1"),
        (' "1234567" ', "1234567"),
        ("1234567\t", "1234567"),
        (1234567, "1234567"),
    ],
)
def test_accepted_forms(raw, canonical):
    assert normalize_account_id(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "1234567.suitetalk.api.netsuite.com",
        "https://1234567.suitetalk.api.netsuite.com",
        "1234567.evil.example",
        "evil.example",
        "1234567/../x",
        "1234567@evil.example",
        "1234567#x",
        "1234567%2e",
        "12345 67",
        "1234567_ SB1",
        "1234567\t_SB1",
        True,
        -5,
        "1234567\nx",
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width digits
        "1234567_SBé",
        "1234567_SB",
        "1234567__SB1",
        "1234567_XX1",
        "abc",
        "",
        "   ",
        '""',
        "1234567:443",
        "TSTDRV",
        "1" * 80,
        None,
        1.5,
    ],
)
def test_hostile_or_implausible_forms_refused(raw):
    with pytest.raises(NetSuiteConfigError) as info:
        normalize_account_id(raw)
    assert info.value.field == "account_id"
    assert "1234567_SB1" in str(info.value)  # says what a valid one looks like


def test_account_urls():
    account = Account.from_raw("1234567-sb1")
    assert account.account_id == "1234567_SB1"
    assert account.realm == "1234567_SB1"
    assert account.host_slug == "1234567-sb1"
    assert account.rest_base_url == "https://1234567-sb1.suitetalk.api.netsuite.com"
    assert account.token_url() == (
        "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"
    )
    assert account.token_url("http://127.0.0.1:8080/") == (
        "http://127.0.0.1:8080/services/rest/auth/oauth2/v1/token"
    )


def test_account_constructor_refuses_non_canonical():
    with pytest.raises(NetSuiteConfigError):
        Account("1234567-sb1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://1234567-sb1.suitetalk.api.netsuite.com/", "https://1234567-sb1.suitetalk.api.netsuite.com"),
        ("https://proxy.example.com/netsuite", "https://proxy.example.com/netsuite"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.1.2.3:9", "http://127.1.2.3:9"),
        ("http://localhost:1234/", "http://localhost:1234"),
        ("http://[::1]:1234", "http://[::1]:1234"),
    ],
)
def test_base_url_accepted(raw, expected):
    assert validate_base_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "http://1234567.suitetalk.api.netsuite.com",
        "http://10.0.0.1",
        "http://localhost.evil.example",
        "ftp://127.0.0.1",
        "https://user:pw@example.com",
        "https://user@example.com",
        "https://example.com/?x=1",
        "https://example.com/#frag",
        "https://",
        "example.com",
        "https://exa mple.com",
        "https://example.com:notaport",
    ],
)
def test_base_url_refused(raw):
    with pytest.raises(NetSuiteConfigError) as info:
        validate_base_url(raw)
    assert info.value.field == "base_url"
