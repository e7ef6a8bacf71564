"""Emulator state: registered certificates and TBA tokens on disk, runtime settings in memory.

Registrations live in ``<state dir>/state.json``. Writers (the CLI, the admin endpoint) take a file lock
and replace the file atomically; the running server re-reads it whenever it changes, so a certificate
registered from another process is usable without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

STATE_FILE = "state.json"
DATABASE_FILE = "netsuite.db"
KNOWN_SCOPES = ("restlets", "rest_webservices", "suite_analytics")
EC_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
RSA_KEY_SIZES = (3072, 4096)
ADMINISTRATOR_ROLE = "administrator"
DEFAULT_COMPANY_LANGUAGE = "en"
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{1,8}([-_][A-Za-z0-9]{1,8})*$")
# NetSuite silently shortens a certificate's validity to two years from upload.
MAX_CERTIFICATE_VALIDITY = timedelta(days=730)
TOKEN_ENDPOINT_FAILURES = (
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "invalid_request",
    "invalid_scope",
    "html",
    "non_json",
    "server_error",
)


class RegistrationError(ValueError):
    """A certificate or TBA token cannot be registered; the message says why."""


@dataclass(frozen=True)
class Certificate:
    """A public certificate mapped to an integration (client ID) under its certificate ID (``kid``).

    :param role: the role of the mapping; only ``administrator`` may read governance limits.
    """

    certificate_id: str
    client_id: str
    scopes: frozenset[str]
    public_key: Any
    not_after: datetime | None
    role: str = ADMINISTRATOR_ROLE

    @property
    def is_administrator(self) -> bool:
        """Tell whether the mapping's role is the administrator role."""
        return self.role.strip().lower() == ADMINISTRATOR_ROLE

    @property
    def usable(self) -> bool:
        """Tell whether the certificate is still within its (possibly shortened) validity."""
        return self.not_after is None or self.not_after > datetime.now(timezone.utc)


@dataclass(frozen=True)
class TBAToken:
    """A TBA token with its integration's consumer key and secrets."""

    token_id: str
    consumer_key: str
    consumer_secret: str
    token_secret: str


def database_path(state_dir: str | Path) -> Path:
    """Return the SQLite database path inside a state directory."""
    return Path(state_dir) / DATABASE_FILE


def parse_scopes(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """Split a comma-separated scope list (or pass a list through), dropping blanks."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def load_public_key(pem: bytes) -> tuple[Any, datetime | None]:
    """Load an x.509 certificate or a bare public key from PEM; return the key and the certificate's end.

    :raises RegistrationError: when the PEM is neither, or the key is not one NetSuite accepts.
    """
    not_after: datetime | None = None
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        public_key = certificate.public_key()
        not_after = certificate.not_valid_after_utc
    except ValueError:
        try:
            public_key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as error:
            raise RegistrationError("not a PEM x.509 certificate or public key") from error
    check_public_key(public_key)
    return public_key, not_after


def check_public_key(public_key: Any) -> None:
    """Refuse keys NetSuite's certificate upload refuses: RSA not 3072 or 4096 bits, EC off P-256/384/521.

    :raises RegistrationError: naming the problem and what is accepted.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size not in RSA_KEY_SIZES:
            raise RegistrationError(
                f"RSA key of {public_key.key_size} bits refused: NetSuite needs 3072 or 4096 bits"
            )
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in EC_CURVES:
            raise RegistrationError(
                f"EC curve {public_key.curve.name} refused: NetSuite accepts P-256, P-384 and P-521"
            )
        return
    raise RegistrationError(f"key type {type(public_key).__name__} refused: use an RSA or EC key")


@contextlib.contextmanager
def _locked_state(state_dir: Path) -> Iterator[dict[str, Any]]:
    """Yield the state document under an exclusive lock and write it back atomically afterwards."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / (STATE_FILE + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            document = _read_state(state_dir / STATE_FILE)
            yield document
            _write_atomically(state_dir / STATE_FILE, json.dumps(document, indent=2, sort_keys=True))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        document = {}
    document.setdefault("certificates", {})
    document.setdefault("tba_tokens", {})
    return document


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def register_certificate(
    state_dir: str | Path,
    client_id: str,
    certificate_id: str,
    pem: str | bytes,
    scopes: list[str],
    role: str = ADMINISTRATOR_ROLE,
) -> None:
    """Map a public certificate to an integration under a certificate ID, as NetSuite's M2M setup does.

    :param client_id: the integration's client ID (the ``iss`` of its assertions).
    :param certificate_id: the ``kid`` assertions must carry.
    :param pem: the x.509 certificate (or bare public key) in PEM.
    :param scopes: the scopes granted to the integration.
    :param role: the role the mapping logs in with; ``administrator`` (the default) may read governance
        limits, any other role gets 403 there.
    :raises RegistrationError: for an unusable key, an empty or unknown scope, or blank IDs or role.
    """
    pem_bytes = pem.encode() if isinstance(pem, str) else pem
    load_public_key(pem_bytes)
    if not client_id.strip() or not certificate_id.strip():
        raise RegistrationError("client ID and certificate ID must not be blank")
    if not isinstance(role, str) or not role.strip():
        raise RegistrationError("role must be a non-blank string")
    unknown = sorted(set(scopes) - set(KNOWN_SCOPES))
    if not scopes or unknown:
        raise RegistrationError(f"scopes must be some of {', '.join(KNOWN_SCOPES)}; got {scopes}")
    with _locked_state(Path(state_dir)) as document:
        document["certificates"][certificate_id] = {
            "client_id": client_id,
            "scopes": sorted(set(scopes)),
            "certificate": pem_bytes.decode(),
            "registered_at": time.time(),
            "role": role.strip(),
        }


def register_tba_token(
    state_dir: str | Path, consumer_key: str, consumer_secret: str, token_id: str, token_secret: str
) -> None:
    """Store a TBA token and its integration's consumer key and secret.

    :raises RegistrationError: when a value is blank.
    """
    if not all(value.strip() for value in (consumer_key, consumer_secret, token_id, token_secret)):
        raise RegistrationError("consumer key, consumer secret, token ID and token secret are all required")
    with _locked_state(Path(state_dir)) as document:
        document["tba_tokens"][token_id] = {
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "token_secret": token_secret,
        }


class StateStore:
    """Read-side view of ``state.json`` for the server, refreshed whenever the file changes."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._certificates: dict[str, Certificate] = {}
        self._tba_tokens: dict[str, TBAToken] = {}

    @property
    def db_path(self) -> Path:
        """Return the path of the emulator's SQLite database."""
        return database_path(self.state_dir)

    def certificate(self, certificate_id: str) -> Certificate | None:
        """Return the certificate registered under a certificate ID, if any."""
        self._refresh()
        return self._certificates.get(certificate_id)

    def knows_client(self, client_id: str) -> bool:
        """Tell whether any certificate is registered for a client ID."""
        self._refresh()
        return any(item.client_id == client_id for item in self._certificates.values())

    def tba_token(self, token_id: str) -> TBAToken | None:
        """Return the TBA token registered under a token ID, if any."""
        self._refresh()
        return self._tba_tokens.get(token_id)

    def _refresh(self) -> None:
        path = self.state_dir / STATE_FILE
        try:
            status = path.stat()
        except FileNotFoundError:
            return
        signature = (status.st_mtime_ns, status.st_size, status.st_ino)
        with self._lock:
            if signature == self._signature:
                return
            document = _read_state(path)
            self._certificates = dict(_certificates_from(document))
            self._tba_tokens = {
                token_id: TBAToken(token_id=token_id, **entry)
                for token_id, entry in document["tba_tokens"].items()
            }
            self._signature = signature


def _certificates_from(document: dict[str, Any]) -> Iterator[tuple[str, Certificate]]:
    for certificate_id, entry in document["certificates"].items():
        try:
            public_key, not_after = load_public_key(entry["certificate"].encode())
        except RegistrationError:
            continue
        registered_at = datetime.fromtimestamp(entry.get("registered_at", time.time()), timezone.utc)
        limit = registered_at + MAX_CERTIFICATE_VALIDITY
        certificate = Certificate(
            certificate_id=certificate_id,
            client_id=entry["client_id"],
            scopes=frozenset(entry["scopes"]),
            public_key=public_key,
            not_after=min(not_after, limit) if not_after else limit,
            role=entry.get("role", ADMINISTRATOR_ROLE),
        )
        yield certificate_id, certificate


@dataclass
class RuntimeConfig:
    """Settings of a running emulator, changed through ``POST /_emulator/config``.

    ``faults`` configures fault injection (see :mod:`airflow_provider_netsuite.emulator.faults`); the
    server hands it to its fault hook on every NetSuite request while it is not empty.
    ``company_language`` is the company's default language (a language tag such as ``en`` or ``de-DE``);
    a data request whose ``Accept-Language`` names another primary language is refused.

    Behaviour no public source settles (UNCONFIRMED), with the project's chosen defaults:

    - ``clock_skew`` (300): seconds an assertion's ``iat`` may lie in the future;
    - ``max_assertion_validity`` (3600): the largest ``exp - iat`` accepted, in seconds;
    - ``suiteql_max_limit`` (1000): the largest SuiteQL ``limit``;
    - ``suiteql_max_results`` (100000): SuiteQL's result cap; an ``offset`` at or above it is refused;
    - ``require_transient`` (true): SuiteQL without ``Prefer: transient`` gives 400 ``INVALID_HEADER``;
    - ``omit_nulls`` (true): SuiteQL leaves null values out of an item; false sends them as ``null``;
    - ``date_format`` (``M/D/YYYY``): the user's date-format preference SuiteQL renders dates in, a key
      of :data:`airflow_provider_netsuite.emulator.suiteql.DATE_FORMATS`.
    """

    concurrency_limit: int = 5
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    retry_after: int | None = None
    token_lifetime: int = 3600
    token_endpoint_failure: str | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    company_language: str = DEFAULT_COMPANY_LANGUAGE
    clock_skew: int = 300
    max_assertion_validity: int = 3600
    suiteql_max_limit: int = 1000
    suiteql_max_results: int = 100_000
    require_transient: bool = True
    omit_nulls: bool = True
    date_format: str = "M/D/YYYY"

    def as_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-ready values."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def update(self, changes: dict[str, Any]) -> None:
        """Apply changes after validating every one of them (all or nothing).

        :raises ValueError: naming the first unknown key or bad value.
        """
        validated = {name: _validate_setting(name, value) for name, value in changes.items()}
        for name, value in validated.items():
            setattr(self, name, value)


# Integer settings and their smallest allowed value.
_INTEGER_SETTINGS = {
    "concurrency_limit": 1,
    "token_lifetime": 1,
    "clock_skew": 0,
    "max_assertion_validity": 1,
    "suiteql_max_limit": 1,
    "suiteql_max_results": 1,
}
_BOOLEAN_SETTINGS = ("require_transient", "omit_nulls")


def _validate_setting(name: str, value: Any) -> Any:
    if name in _INTEGER_SETTINGS:
        return _number(name, value, int, minimum=_INTEGER_SETTINGS[name])
    if name in _BOOLEAN_SETTINGS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name == "date_format":
        return _date_format(value)
    if name in ("latency_ms", "jitter_ms"):
        return _number(name, value, float, minimum=0)
    if name == "retry_after":
        return None if value is None else _number(name, value, int, minimum=0)
    if name == "token_endpoint_failure":
        if value is not None and value not in TOKEN_ENDPOINT_FAILURES:
            raise ValueError(
                f"token_endpoint_failure must be null or one of {', '.join(TOKEN_ENDPOINT_FAILURES)}"
            )
        return value
    if name == "company_language":
        if not isinstance(value, str) or not LANGUAGE_TAG.match(value.strip()):
            raise ValueError("company_language must be a language tag such as 'en' or 'de-DE'")
        return value.strip()
    if name == "faults":
        # Validated where fault injection lives; null or {} turns faults off.
        from airflow_provider_netsuite.emulator.faults import normalize

        return normalize(value)
    raise ValueError(f"unknown setting {name!r}")


def _date_format(value: Any) -> str:
    # Imported here: the SuiteQL engine (and sqlglot) is not needed to read the state file.
    from airflow_provider_netsuite.emulator.suiteql import DATE_FORMATS

    if not isinstance(value, str) or value not in DATE_FORMATS:
        raise ValueError(f"date_format must be one of {', '.join(DATE_FORMATS)}")
    return value


def _number(name: str, value: Any, kind: type, *, minimum: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")
    if kind is int and value != int(value):
        raise ValueError(f"{name} must be an integer")
    return kind(value)
