"""Read and validate a NetSuite connection's extras; every mistake names its field before any request.

Supported authentication modes:

* ``oauth2_client_credentials`` (default): OAuth 2.0 client credentials (M2M) with a certificate ID and the
  private key whose certificate is mapped in NetSuite.
* ``tba``: token-based authentication (OAuth 1.0a, HMAC-SHA256), for accounts not yet on M2M.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_netsuite.core.account import Account, is_loopback_url
from airflow_provider_netsuite.core.assertion import MAX_ASSERTION_LIFETIME, SCOPE_FORMATS
from airflow_provider_netsuite.core.errors import NetSuiteConfigError
from airflow_provider_netsuite.core.keys import SigningKey, load_signing_key

AUTH_CLIENT_CREDENTIALS = "oauth2_client_credentials"
AUTH_TBA = "tba"
AUTH_TYPES = (AUTH_CLIENT_CREDENTIALS, AUTH_TBA)
DEFAULT_SCOPES = ("rest_webservices",)
MAX_VALUE_CHARS = 64 * 1024
MAX_TIMEOUT = 900  # NetSuite ends requests that run longer than 15 minutes
_IDENTIFIER = re.compile(r"^[\x21-\x7e]{1,256}$")  # printable ASCII, no spaces
_SCOPE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_SCOPE_SEPARATORS = re.compile(r"[,\s]+")
# Extras where a present but blank value is a mistake to report, not "not set".
_BLANK_IS_AN_ERROR = frozenset({"scopes"})
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse_extra(extra: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if extra is None or extra == "":
        return {}
    if isinstance(extra, (str, bytes)):
        if len(extra) > 4 * MAX_VALUE_CHARS:
            raise NetSuiteConfigError("the connection extras are too large.", field="extra")
        try:
            extra = json.loads(extra)
        except ValueError:
            raise NetSuiteConfigError("the connection extras are not valid JSON.", field="extra") from None
    if not isinstance(extra, Mapping):
        raise NetSuiteConfigError("the connection extras must be a JSON object.", field="extra")
    return dict(extra)


def _blank_to_none(values: dict[str, Any]) -> dict[str, Any]:
    # The connection form sends every untouched field as an empty string: treat those as "not set". An empty
    # scope is refused instead (the form gives the scopes field a default, so it is never left blank).
    return {
        k: (None if isinstance(v, str) and not v.strip() and k not in _BLANK_IS_AN_ERROR else v)
        for k, v in values.items()
    }


class _Extras:
    """Typed access to the extras; each accessor names the field in its error."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        for name, value in values.items():
            if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
                raise NetSuiteConfigError(f"is longer than {MAX_VALUE_CHARS} characters.", field=name)

    def text(self, name: str, *, required: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            if required:
                raise NetSuiteConfigError(f"is required: {required}", field=name)
            return None
        if not isinstance(value, str):
            raise NetSuiteConfigError(f"must be a string, not {type(value).__name__}.", field=name)
        return value.strip()

    def identifier(self, name: str, *, required: str | None = None) -> str | None:
        value = self.text(name, required=required)
        if value is not None:
            value = value.strip("\"'")
            if not _IDENTIFIER.fullmatch(value):
                raise NetSuiteConfigError(
                    "must be printable ASCII without spaces (copy it from NetSuite).", field=name
                )
        return value

    def number(
        self,
        name: str,
        default: float,
        low: float,
        high: float,
        *,
        integer: bool = False,
        unit: str = "seconds",
    ) -> Any:
        value = self.values.get(name)
        if value is None:
            return default
        kind = f"whole number of {unit}" if integer else f"number of {unit}"
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise TypeError
            number = float(value)
            if integer and number != int(number):
                raise ValueError
        except (TypeError, ValueError):
            raise NetSuiteConfigError(f"must be a {kind} between {low:g} and {high:g}.", field=name) from None
        if not low <= number <= high:
            raise NetSuiteConfigError(f"must be a {kind} between {low:g} and {high:g}.", field=name)
        return int(number) if integer else number

    def flag(self, name: str, default: bool) -> bool:
        value = self.values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise NetSuiteConfigError("must be true or false.", field=name)

    def scopes(self) -> tuple[str, ...]:
        """Return the scopes: a list, a JSON list, or names separated by commas or spaces.

        Absent (or null) means ``rest_webservices``; present but empty is refused.
        """
        value = self.values.get("scopes")
        if value is None:
            return DEFAULT_SCOPES
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                raise NetSuiteConfigError("is not a valid JSON list.", field="scopes") from None
        if isinstance(value, str):
            value = _SCOPE_SEPARATORS.split(value)
        if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
            raise NetSuiteConfigError(
                "must be a list of scope names or a string of names separated by commas or spaces, e.g. "
                "rest_webservices,restlets.",
                field="scopes",
            )
        scopes = tuple(dict.fromkeys(s.strip() for s in value if s.strip()))
        if not scopes:
            raise NetSuiteConfigError(
                "is empty: name at least one scope, e.g. rest_webservices (or leave scopes out for that "
                "default).",
                field="scopes",
            )
        for scope in scopes:
            if not _SCOPE.fullmatch(scope):
                raise NetSuiteConfigError(
                    f"{scope[:40]!r} is not a scope name (rest_webservices, restlets, suite_analytics).",
                    field="scopes",
                )
        return scopes

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() not in allowed:
            raise NetSuiteConfigError(f"{value[:40]!r} is not one of {', '.join(allowed)}.", field=name)
        return value.lower()

    def timezone(self) -> str:
        value = self.text("timezone") or "UTC"
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise NetSuiteConfigError(
                f"{value[:60]!r} is not an IANA time zone name such as America/Los_Angeles or UTC.",
                field="timezone",
            ) from None
        return value


@dataclass(frozen=True)
class ConnectionConfig:
    """A validated NetSuite connection. ``repr`` never shows secrets.

    Build it with :meth:`from_extra`; the private key is loaded (and checked) at that point.
    """

    auth_type: str
    account: Account
    base_url: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    scope_format: str = "array"
    client_id: str | None = None
    certificate_id: str | None = None
    signing_key: SigningKey | None = field(default=None, repr=False)
    assertion_lifetime: int = 300
    token_refresh_margin: float = 300.0
    token_cache_dir: str | None = None
    timezone: str = "UTC"
    verify_tls: bool = True
    timeout: float = 60.0
    max_retries: int = 7
    max_retry_wait: float = 300.0
    consumer_key: str | None = None
    consumer_secret: str | None = field(default=None, repr=False)
    token_id: str | None = field(default=None, repr=False)
    token_secret: str | None = field(default=None, repr=False)

    @property
    def account_id(self) -> str:
        """Return the canonical account ID (``1234567_SB1``)."""
        return self.account.account_id

    @property
    def token_url(self) -> str:
        """Return the OAuth 2.0 token endpoint under :attr:`base_url`."""
        return self.account.token_url(self.base_url)

    @property
    def is_tba(self) -> bool:
        """Return whether the connection uses token-based authentication."""
        return self.auth_type == AUTH_TBA

    @classmethod
    def from_extra(
        cls,
        extra: Mapping[str, Any] | str | None,
        *,
        login: str | None = None,
        password: str | None = None,
    ) -> ConnectionConfig:
        """Validate a connection's extras and return the configuration.

        :param extra: the connection's ``extra`` as a mapping or a JSON string.
        :param login: the connection's login; used as ``client_id`` (M2M) or ``consumer_key`` (TBA) when the
            extras do not set it.
        :param password: the connection's password; used as ``private_key`` (M2M) or ``consumer_secret``
            (TBA) when the extras do not set it.
        :raises NetSuiteConfigError: naming the field and what to do.
        """
        values = _blank_to_none(_parse_extra(extra))
        login = login.strip() if isinstance(login, str) and login.strip() else None
        password = password if isinstance(password, str) and password.strip() else None
        extras = _Extras(values)

        auth_type = extras.choice("auth_type", AUTH_CLIENT_CREDENTIALS, AUTH_TYPES)
        account = Account.from_raw(values.get("account_id"))
        base_url = account.base_url(extras.text("base_url"))
        verify_tls = extras.flag("verify_tls", True)
        if not verify_tls and not is_loopback_url(base_url):
            raise NetSuiteConfigError(
                "may be false only for a loopback base_url (a local emulator).", field="verify_tls"
            )
        common = {
            "account": account,
            "base_url": base_url,
            "token_cache_dir": extras.text("token_cache_dir"),
            "timezone": extras.timezone(),
            "verify_tls": verify_tls,
            "timeout": extras.number("timeout", 60.0, 1, MAX_TIMEOUT),
            # Transient failures (429, 5xx, broken connections): retries per request and total wait.
            "max_retries": extras.number("max_retries", 7, 0, 50, integer=True, unit="retries"),
            "max_retry_wait": extras.number("max_retry_wait", 300.0, 0, 3600),
        }
        if auth_type == AUTH_TBA:
            return cls(auth_type=auth_type, **common, **_tba_fields(extras, login, password))
        return cls(auth_type=auth_type, **common, **_client_credentials_fields(extras, login, password))


def _client_credentials_fields(extras: _Extras, login: str | None, password: str | None) -> dict[str, Any]:
    values = extras.values
    if values.get("client_id") is None:
        values["client_id"] = values.get("consumer_key") or login
    if values.get("private_key") is None and values.get("private_key_path") is None:
        values["private_key"] = password
    client_id = extras.identifier(
        "client_id", required="the client ID (consumer key) of the integration record."
    )
    certificate_id = extras.identifier(
        "certificate_id",
        required="the certificate ID shown in Setup > Integration > OAuth 2.0 Client "
        "Credentials (M2M) Setup after the certificate is mapped.",
    )
    algorithm = extras.text("algorithm")
    signing_key = load_signing_key(
        extras.text("private_key"),
        path=extras.text("private_key_path"),
        passphrase=_passphrase(values.get("private_key_passphrase")),
        algorithm=algorithm,
    )
    return {
        "client_id": client_id,
        "certificate_id": certificate_id,
        "signing_key": signing_key,
        "scopes": extras.scopes(),
        "scope_format": extras.choice("scope_format", "array", SCOPE_FORMATS),
        "assertion_lifetime": extras.number(
            "assertion_lifetime", 300, 1, MAX_ASSERTION_LIFETIME, integer=True
        ),
        "token_refresh_margin": extras.number("token_refresh_margin", 300.0, 0, 3000),
    }


def _passphrase(value: Any) -> str | None:
    # Not stripped: spaces can be part of a passphrase.
    if value is not None and not isinstance(value, str):
        raise NetSuiteConfigError(
            f"must be a string, not {type(value).__name__}.", field="private_key_passphrase"
        )
    return value


def _tba_fields(extras: _Extras, login: str | None, password: str | None) -> dict[str, Any]:
    values = extras.values
    if values.get("consumer_key") is None:
        # The form's "Client ID (consumer key)" field serves both modes: it is the same integration value.
        values["consumer_key"] = values.get("client_id") or login
    if values.get("consumer_secret") is None:
        values["consumer_secret"] = password
    where = "see the integration record and Setup > Users/Roles > Access Tokens."
    return {
        "consumer_key": extras.identifier(
            "consumer_key", required=f"the integration's consumer key; {where}"
        ),
        "consumer_secret": extras.identifier("consumer_secret", required=f"the consumer secret; {where}"),
        "token_id": extras.identifier("token_id", required=f"the access token ID; {where}"),
        "token_secret": extras.identifier("token_secret", required=f"the access token secret; {where}"),
    }
