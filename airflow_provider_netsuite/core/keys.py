"""Load the private key that signs the client assertion, and choose the JWT algorithm from it.

NetSuite accepts RSA keys of 3072 or 4096 bits (signed with PS256/PS384/PS512) and EC keys on P-256, P-384
and P-521 (ES256/ES384/ES512). Keys arrive the way people paste them: PKCS#1 or PKCS#8, encrypted or not,
followed by their certificate, or with the newlines flattened by a one-line form field. Errors never quote
the key.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_provider_netsuite.core.errors import NetSuiteConfigError

MAX_KEY_BYTES = 64 * 1024
#: The only RSA modulus sizes NetSuite's M2M setup accepts (not "at least 3072": 3584 or 8192 are refused).
RSA_KEY_SIZES = (3072, 4096)
RSA_ALGORITHMS = ("PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
HOW_TO_MAKE_A_KEY = (
    "Make a valid key and certificate with: openssl req -new -x509 -newkey rsa:4096 -keyout private.pem "
    "-sigopt rsa_padding_mode:pss -sha256 -sigopt rsa_pss_saltlen:64 -out public.pem -nodes -days 365 "
    "(or -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 for ES256), upload public.pem in NetSuite's "
    "OAuth 2.0 Client Credentials (M2M) Setup and put private.pem in private_key."
)

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_LEGACY_HEADERS = re.compile(r"Proc-Type:\s*(\S+)\s+DEK-Info:\s*(\S+)\s+(.*)", re.DOTALL)


@dataclass(frozen=True)
class SigningKey:
    """A loaded private key and the JWT algorithm it signs with.

    :param key: the ``cryptography`` private key object (never shown in ``repr``).
    :param algorithm: ``PS256``, ``PS384``, ``PS512``, ``ES256``, ``ES384`` or ``ES512``.
    :param key_size: RSA modulus bits or EC curve bits.
    :param curve: EC curve name (``secp256r1``), ``None`` for RSA.
    """

    key: Any = field(repr=False, compare=False)
    algorithm: str
    key_size: int
    curve: str | None = None

    @property
    def key_type(self) -> str:
        """Return ``RSA`` or ``EC``."""
        return "EC" if self.curve else "RSA"

    def fingerprint(self) -> str:
        """Return the SHA-256 hex digest of the public key (safe to use in cache keys and logs)."""
        public = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(public).hexdigest()

    def secret_bytes(self) -> bytes:
        """Return the private key as unencrypted PKCS#8 DER; only for deriving local encryption keys."""
        return self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _error(message: str, field_name: str = "private_key", how_to: bool = True) -> NetSuiteConfigError:
    return NetSuiteConfigError(message + (" " + HOW_TO_MAKE_A_KEY if how_to else ""), field=field_name)


def _read_path(path: str) -> str:
    file = Path(path).expanduser()
    try:
        if file.stat().st_size > MAX_KEY_BYTES:
            raise _error(
                f"the file {str(file)!r} is larger than {MAX_KEY_BYTES} bytes; it is not a key.",
                "private_key_path",
                how_to=False,
            )
        return file.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise _error(
            f"cannot read the key file {str(file)!r} ({exc.strerror or type(exc).__name__}).",
            "private_key_path",
            how_to=False,
        ) from None


def _unflatten(text: str) -> str:
    """Undo what one-line form fields and JSON escaping do to a PEM: quotes, literal ``\\n``, ``\\r``."""
    text = text.strip().strip("\"'").strip()
    return text.replace("\\r", "").replace("\\n", "\n").replace("\r", "")


def _rebuild_block(label: str, body: str) -> bytes:
    """Return a well-formed PEM block from a body whose line breaks may have become spaces."""
    headers = ""
    legacy = _LEGACY_HEADERS.search(body)
    if legacy:  # traditional OpenSSL encryption: "Proc-Type" and "DEK-Info" lines precede the base64
        headers = f"Proc-Type: {legacy.group(1)}\nDEK-Info: {legacy.group(2)}\n\n"
        body = legacy.group(3)
    data = "".join(body.split())
    lines = "\n".join(textwrap.wrap(data, 64))
    return f"-----BEGIN {label}-----\n{headers}{lines}\n-----END {label}-----\n".encode("ascii")


def _private_key_block(text: str, field_name: str) -> tuple[str, bytes]:
    blocks = [(label, body) for label, body in _BLOCK.findall(text)]
    private = [(label, body) for label, body in blocks if label.endswith("PRIVATE KEY")]
    if len(private) > 1:
        raise _error(
            "contains more than one private key; keep only the key that matches the certificate "
            "registered in NetSuite.",
            field_name,
            how_to=False,
        )
    if private:
        label, body = private[0]
        return label, _rebuild_block(label, body)
    labels = sorted({label for label, _ in blocks})
    if labels:
        raise _error(
            f"contains no private key, only {', '.join(labels)}; the certificate goes to NetSuite, "
            "the private key goes here.",
            field_name,
        )
    raise _error("is not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' block found).", field_name)


def _deserialize(pem: bytes, label: str, passphrase: str | None, field_name: str) -> Any:
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        return serialization.load_pem_private_key(pem, password=password)
    except TypeError:
        if password is None:
            raise _error(
                "the private key is encrypted; set private_key_passphrase.",
                "private_key_passphrase",
                how_to=False,
            ) from None
        # A passphrase left over for a key that is not encrypted is harmless: load without it.
        return _deserialize(pem, label, None, field_name)
    except UnsupportedAlgorithm:
        raise _error(
            "the key type or its encryption is not supported by this installation.", field_name
        ) from None
    except ValueError:
        if password is not None and ("ENCRYPTED" in label or b"ENCRYPTED" in pem):
            raise _error(
                "the passphrase does not decrypt the private key.", "private_key_passphrase", how_to=False
            ) from None
        raise _error(
            f"the {label} block could not be decoded; it is damaged or incomplete.", field_name
        ) from None


def _choose_algorithm(key: Any, requested: str | None) -> SigningKey:
    wanted = requested.strip().upper() if requested and requested.strip() else None
    if wanted and wanted not in RSA_ALGORITHMS + tuple(EC_ALGORITHMS.values()):
        raise _error(
            f"{wanted!r} is not accepted by NetSuite; use PS256, PS384, PS512 (RSA) or ES256, ES384, "
            "ES512 (EC). RS256 and HS256 signatures are refused by NetSuite.",
            "algorithm",
        )
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size not in RSA_KEY_SIZES:
            raise _error(
                f"the RSA key has {key.key_size} bits; NetSuite accepts only RSA keys of exactly 3072 or "
                "4096 bits."
            )
        if wanted and wanted not in RSA_ALGORITHMS:
            raise _error(
                f"{wanted} needs an EC key; an RSA key signs with PS256, PS384 or PS512.", "algorithm"
            )
        return SigningKey(key=key, algorithm=wanted or "PS256", key_size=key.key_size)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        natural = EC_ALGORITHMS.get(key.curve.name)
        if natural is None:
            raise _error(f"the EC curve {key.curve.name} is not accepted; use P-256, P-384 or P-521.")
        if wanted and wanted != natural:
            raise _error(
                f"{wanted} does not match the key's curve {key.curve.name}; it signs with {natural}.",
                "algorithm",
            )
        return SigningKey(key=key, algorithm=natural, key_size=key.curve.key_size, curve=key.curve.name)
    raise _error(f"{type(key).__name__.lstrip('_')} keys are not accepted; use RSA (3072/4096) or EC.")


def load_signing_key(
    pem: str | bytes | None,
    *,
    path: str | None = None,
    passphrase: str | None = None,
    algorithm: str | None = None,
) -> SigningKey:
    """Load a private key from PEM text or a file and choose its JWT algorithm.

    :param pem: the PEM text (``private_key`` extra); may be flattened, or followed by its certificate.
    :param path: a file holding the PEM (``private_key_path`` extra); used when ``pem`` is empty.
    :param passphrase: passphrase of an encrypted key.
    :param algorithm: optional override (``PS384``...); must suit the key.
    :raises NetSuiteConfigError: naming ``private_key``, ``private_key_path``, ``private_key_passphrase``
        or ``algorithm``; the message never contains key material.
    """
    if isinstance(pem, bytes):
        pem = pem.decode("ascii", errors="replace")
    if pem and pem.strip() and path:
        raise _error("set either private_key or private_key_path, not both.", how_to=False)
    field_name = "private_key"
    if not (pem and pem.strip()):
        if not path:
            raise _error("a private key is required (private_key or private_key_path).")
        pem, field_name = _read_path(path), "private_key_path"
    if len(pem) > MAX_KEY_BYTES:
        raise _error(f"is larger than {MAX_KEY_BYTES} bytes; it is not a key.", field_name, how_to=False)

    label, block = _private_key_block(_unflatten(pem), field_name)
    key = _deserialize(block, label, passphrase, field_name)
    return _choose_algorithm(key, algorithm)
