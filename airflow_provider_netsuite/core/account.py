"""Account ID rules: the canonical form, the host form and the URLs built from them.

NetSuite shows an account ID as ``1234567``, ``1234567_SB1`` (sandbox), ``1234567_RP1`` (release preview)
or ``TSTDRV1234567`` (test drive). The TBA realm needs the canonical upper-case underscore form, the host
needs the lower-case hyphen form (``1234567-sb1.suitetalk.api.netsuite.com``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_provider_netsuite.core.errors import NetSuiteConfigError

TOKEN_PATH = "/services/rest/auth/oauth2/v1/token"  # noqa: S105 - a URL path, not a secret
_ACCOUNT_ID = re.compile(r"^(TSTDRV)?[0-9]{1,12}(_(SB|RP|TD)[0-9]{1,3})?$")
_VALID_FORMS = "digits with an optional sandbox suffix, e.g. 1234567, 1234567_SB1 or TSTDRV1234567"
_MAX_RAW_LENGTH = 64


def normalize_account_id(raw: object) -> str:
    """Return the canonical account ID (upper-case, underscore) or raise :class:`NetSuiteConfigError`.

    Accepts ``1234567_sb1``, ``1234567-SB1``, ``tstdrv1234567``, with surrounding spaces or quotes. Refuses
    host names, URLs and anything else, because the account ID decides where the signed assertion is sent.

    :param raw: the account ID as typed by a user.
    """
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        raw = str(raw)  # a production account ID written as a JSON number
    if not isinstance(raw, str) or not raw.strip():
        raise NetSuiteConfigError(f"the account ID is required: {_VALID_FORMS}.", field="account_id")
    if len(raw) > _MAX_RAW_LENGTH:
        raise NetSuiteConfigError(f"the account ID is too long; expected {_VALID_FORMS}.", field="account_id")
    value = raw.strip().strip("\"'").strip()
    candidate = value.upper().replace("-", "_")
    if not candidate.isascii() or not _ACCOUNT_ID.fullmatch(candidate):
        raise NetSuiteConfigError(
            f"{value!r} is not a NetSuite account ID; expected {_VALID_FORMS} (Setup > Company > "
            "Company Information > Account ID). Put a custom host in base_url instead.",
            field="account_id",
        )
    return candidate


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(raw: str) -> str:
    """Return ``raw`` without a trailing slash if it is a safe base URL, else raise.

    Only ``https`` is allowed, except ``http`` for loopback hosts (``127.0.0.0/8``, ``::1``, ``localhost``).
    Credentials, query strings and fragments are refused.

    :param raw: the ``base_url`` extra.
    """
    value = raw.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError as exc:
        raise NetSuiteConfigError(f"not a valid URL ({exc}).", field="base_url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise NetSuiteConfigError(
            "must be an https:// URL such as https://1234567.suitetalk.api.netsuite.com.", field="base_url"
        )
    if parts.scheme == "http" and not _is_loopback(host):
        raise NetSuiteConfigError(
            "plain http is allowed only for a loopback host (127.0.0.1, ::1, localhost); use https.",
            field="base_url",
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise NetSuiteConfigError("must not contain credentials (user:password@).", field="base_url")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise NetSuiteConfigError("must not contain a query string or fragment.", field="base_url")
    if any(ch.isspace() for ch in value) or not value.isascii():
        raise NetSuiteConfigError("must not contain spaces or non-ASCII characters.", field="base_url")
    return value.rstrip("/")


def is_loopback_url(url: str) -> bool:
    """Return whether ``url`` points at a loopback host."""
    return _is_loopback(urlsplit(url).hostname or "")


@dataclass(frozen=True)
class Account:
    """A NetSuite account, identified by its canonical account ID."""

    account_id: str

    @classmethod
    def from_raw(cls, raw: object) -> Account:
        """Build an account from an account ID in any accepted form."""
        return cls(normalize_account_id(raw))

    def __post_init__(self) -> None:
        if normalize_account_id(self.account_id) != self.account_id:
            raise NetSuiteConfigError(
                "use Account.from_raw() for a non-canonical account ID.", field="account_id"
            )

    @property
    def realm(self) -> str:
        """Return the TBA ``realm``: the canonical upper-case underscore account ID."""
        return self.account_id

    @property
    def host_slug(self) -> str:
        """Return the host label: lower-case with ``_`` replaced by ``-`` (``1234567-sb1``)."""
        return self.account_id.lower().replace("_", "-")

    @property
    def rest_base_url(self) -> str:
        """Return the account's SuiteTalk REST base URL."""
        return f"https://{self.host_slug}.suitetalk.api.netsuite.com"

    def base_url(self, override: str | None = None) -> str:
        """Return the validated ``override`` if given, else :attr:`rest_base_url`."""
        return validate_base_url(override) if override else self.rest_base_url

    def token_url(self, base_url: str | None = None) -> str:
        """Return the OAuth 2.0 token endpoint under ``base_url`` (default: the account's REST host)."""
        return self.base_url(base_url) + TOKEN_PATH
