"""Private keys in every form people paste them; errors never echo key material."""

from __future__ import annotations

import subprocess
from pathlib import Path
from unittest import mock

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_netsuite.core import keys
from airflow_provider_netsuite.core.errors import NetSuiteConfigError
from airflow_provider_netsuite.core.keys import load_signing_key
from tests.conftest import KeyPair, make_keypair

PASSPHRASE = "correct horse battery"


def _keypair(keys_dir: Path, kind: str, passphrase: str | None = None) -> KeyPair:
    directory = keys_dir / ("enc" if passphrase else "plain")
    name = kind.replace(":", "-")
    pair = KeyPair(kind, directory / f"{name}.key.pem", directory / f"{name}.cert.pem")
    if pair.key_path.exists():
        return pair
    return make_keypair(directory, kind, passphrase=passphrase)


def _openssl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True, text=True).stdout


def _body_lines(pem: str) -> list[str]:
    """Return the base64 lines of a PEM (what must never appear in a message)."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----") and ":" not in line]


def _assert_no_key_text(exc: BaseException, pem: str, *extra_secrets: str) -> None:
    text = f"{exc} {exc!r} {exc.args!r}"
    for line in _body_lines(pem):
        assert line[:24] not in text
    for secret in extra_secrets:
        assert secret not in text


@pytest.fixture(scope="module")
def rsa3072(keys_dir) -> KeyPair:
    return _keypair(keys_dir, "rsa:3072")


def test_pkcs8_rsa_3072_gives_ps256(rsa3072):
    assert "BEGIN PRIVATE KEY" in rsa3072.private_key
    key = load_signing_key(rsa3072.private_key)
    assert (key.algorithm, key.key_size, key.key_type, key.curve) == ("PS256", 3072, "RSA", None)


def test_pkcs1_loads_to_the_same_key(rsa3072):
    pkcs1 = _openssl("pkey", "-in", str(rsa3072.key_path), "-traditional")
    assert "BEGIN RSA PRIVATE KEY" in pkcs1
    assert load_signing_key(pkcs1).fingerprint() == load_signing_key(rsa3072.private_key).fingerprint()


def test_rsa_4096_and_requested_ps384_ps512(keys_dir):
    pem = _keypair(keys_dir, "rsa:4096").private_key
    assert load_signing_key(pem).key_size == 4096
    assert load_signing_key(pem, algorithm="ps384").algorithm == "PS384"
    assert load_signing_key(pem, algorithm="PS512").algorithm == "PS512"


def test_encrypted_pkcs8_with_passphrase(keys_dir):
    pair = _keypair(keys_dir, "rsa:3072", passphrase=PASSPHRASE)
    assert "BEGIN ENCRYPTED PRIVATE KEY" in pair.private_key
    assert load_signing_key(pair.private_key, passphrase=PASSPHRASE).algorithm == "PS256"


def test_wrong_passphrase_names_the_passphrase_field(keys_dir):
    pair = _keypair(keys_dir, "rsa:3072", passphrase=PASSPHRASE)
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(pair.private_key, passphrase="not the passphrase")
    assert info.value.field == "private_key_passphrase"
    _assert_no_key_text(info.value, pair.private_key, "not the passphrase", PASSPHRASE)


def test_encrypted_key_without_passphrase(keys_dir):
    pair = _keypair(keys_dir, "rsa:3072", passphrase=PASSPHRASE)
    with pytest.raises(NetSuiteConfigError, match="encrypted") as info:
        load_signing_key(pair.private_key)
    assert info.value.field == "private_key_passphrase"
    _assert_no_key_text(info.value, pair.private_key)


def test_legacy_encrypted_pkcs1_also_when_flattened(rsa3072):
    legacy = _openssl(
        "pkey", "-in", str(rsa3072.key_path), "-traditional", "-aes256", "-passout", f"pass:{PASSPHRASE}"
    )
    assert "Proc-Type: 4,ENCRYPTED" in legacy
    expected = load_signing_key(rsa3072.private_key).fingerprint()
    assert load_signing_key(legacy, passphrase=PASSPHRASE).fingerprint() == expected
    flattened = legacy.replace("\n", " ")
    assert load_signing_key(flattened, passphrase=PASSPHRASE).fingerprint() == expected


def test_passphrase_for_unencrypted_key_is_ignored(rsa3072):
    assert load_signing_key(rsa3072.private_key, passphrase="left over").algorithm == "PS256"


@pytest.mark.parametrize("order", ["key_then_cert", "cert_then_key"])
def test_key_and_certificate_in_one_blob(rsa3072, order):
    key, cert = rsa3072.private_key, rsa3072.cert_path.read_text()
    blob = key + cert if order == "key_then_cert" else cert + "\n" + key
    assert load_signing_key(blob).fingerprint() == load_signing_key(key).fingerprint()


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda pem: pem.replace("\n", " "), id="spaces"),
        pytest.param(lambda pem: pem.replace("\n", "\\n"), id="literal-backslash-n"),
        pytest.param(lambda pem: pem.replace("\n", "\\r\\n"), id="literal-crlf"),
        pytest.param(lambda pem: pem.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda pem: f'  "{pem.strip()}"  ', id="quoted"),
        pytest.param(lambda pem: pem.replace("\n", ""), id="no-separators"),
    ],
)
def test_flattened_pem_is_rebuilt(rsa3072, mangle):
    mangled = mangle(rsa3072.private_key)
    assert load_signing_key(mangled).fingerprint() == load_signing_key(rsa3072.private_key).fingerprint()


def test_flattened_key_and_cert_blob(rsa3072):
    blob = (rsa3072.private_key + rsa3072.cert_path.read_text()).replace("\n", " ")
    assert load_signing_key(blob).algorithm == "PS256"


def test_path_to_key_file(rsa3072):
    key = load_signing_key(None, path=str(rsa3072.key_path))
    assert key.fingerprint() == load_signing_key(rsa3072.private_key).fingerprint()


def test_missing_path_names_the_path_field(tmp_path):
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(None, path=str(tmp_path / "missing.pem"))
    assert info.value.field == "private_key_path"


def test_key_and_path_together_refused(rsa3072):
    with pytest.raises(NetSuiteConfigError, match="not both"):
        load_signing_key(rsa3072.private_key, path=str(rsa3072.key_path))


def test_no_key_at_all():
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(None)
    assert info.value.field == "private_key"


def test_rsa_pss_key_loads(keys_dir):
    pair = _keypair(keys_dir, "rsa-pss:3072")
    key = load_signing_key(pair.private_key)
    assert (key.algorithm, key.key_size) == ("PS256", 3072)


def test_rsa_2048_refused_with_recipe(keys_dir):
    pair = _keypair(keys_dir, "rsa:2048")
    with pytest.raises(NetSuiteConfigError, match="3072") as info:
        load_signing_key(pair.private_key)
    assert info.value.field == "private_key"
    assert "openssl req -new -x509 -newkey rsa:4096" in str(info.value)
    _assert_no_key_text(info.value, pair.private_key)


def test_rsa_3584_between_the_accepted_sizes_refused(keys_dir):
    pair = _keypair(keys_dir, "rsa:3584")
    with pytest.raises(NetSuiteConfigError, match=r"3584 bits.*exactly 3072 or 4096") as info:
        load_signing_key(pair.private_key)
    assert info.value.field == "private_key"
    assert "openssl req -new -x509 -newkey rsa:4096" in str(info.value)
    _assert_no_key_text(info.value, pair.private_key)


def test_rsa_8192_larger_than_accepted_refused():
    # Generating an 8192-bit key takes seconds; a key object reporting the size exercises the same check.
    big = mock.create_autospec(rsa.RSAPrivateKey, instance=True)
    big.key_size = 8192
    with pytest.raises(NetSuiteConfigError, match=r"8192 bits.*exactly 3072 or 4096") as info:
        keys._choose_algorithm(big, None)
    assert "openssl req -new -x509" in str(info.value)


@pytest.mark.parametrize(
    ("curve", "algorithm", "bits"),
    [("prime256v1", "ES256", 256), ("secp384r1", "ES384", 384), ("secp521r1", "ES512", 521)],
)
def test_ec_curves_choose_their_algorithm(keys_dir, curve, algorithm, bits):
    pair = _keypair(keys_dir, f"ec:{curve}")
    key = load_signing_key(pair.private_key)
    assert (key.algorithm, key.key_size, key.key_type) == (algorithm, bits, "EC")
    traditional = _openssl("ec", "-in", str(pair.key_path))
    assert "BEGIN EC PRIVATE KEY" in traditional
    assert load_signing_key(traditional).fingerprint() == key.fingerprint()


def test_ec_parameters_block_before_key_is_ignored(keys_dir):
    pem = _openssl("ecparam", "-name", "prime256v1", "-genkey")
    assert "BEGIN EC PARAMETERS" in pem
    assert load_signing_key(pem).algorithm == "ES256"


def test_secp256k1_refused(keys_dir):
    pair = _keypair(keys_dir, "ec:secp256k1")
    with pytest.raises(NetSuiteConfigError, match="secp256k1") as info:
        load_signing_key(pair.private_key)
    _assert_no_key_text(info.value, pair.private_key)


def test_ec_algorithm_must_match_curve(keys_dir):
    pair = _keypair(keys_dir, "ec:prime256v1")
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(pair.private_key, algorithm="ES384")
    assert info.value.field == "algorithm"
    with pytest.raises(NetSuiteConfigError):
        load_signing_key(pair.private_key, algorithm="PS256")


def test_ed25519_refused():
    pem = _openssl("genpkey", "-algorithm", "ed25519")
    with pytest.raises(NetSuiteConfigError, match="Ed25519") as info:
        load_signing_key(pem)
    _assert_no_key_text(info.value, pem)


@pytest.mark.parametrize("algorithm", ["RS256", "rs512", "HS256", "none", "EdDSA"])
def test_refused_algorithms(rsa3072, algorithm):
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(rsa3072.private_key, algorithm=algorithm)
    assert info.value.field == "algorithm"
    assert "PS256" in str(info.value)
    _assert_no_key_text(info.value, rsa3072.private_key)


def test_rsa_key_with_es256_refused(rsa3072):
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(rsa3072.private_key, algorithm="ES256")
    assert info.value.field == "algorithm"


def test_certificate_only_refused(rsa3072):
    cert = rsa3072.cert_path.read_text()
    with pytest.raises(NetSuiteConfigError, match="CERTIFICATE") as info:
        load_signing_key(cert)
    _assert_no_key_text(info.value, cert)


def test_public_key_only_refused(rsa3072):
    public = _openssl("pkey", "-in", str(rsa3072.key_path), "-pubout")
    with pytest.raises(NetSuiteConfigError, match="PUBLIC KEY"):
        load_signing_key(public)


def test_two_private_keys_refused(rsa3072, keys_dir):
    other = _keypair(keys_dir, "ec:prime256v1").private_key
    with pytest.raises(NetSuiteConfigError, match="more than one") as info:
        load_signing_key(rsa3072.private_key + other)
    _assert_no_key_text(info.value, rsa3072.private_key + other)


@pytest.mark.parametrize(
    "garbage",
    ["hello", "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----", "\x00\x01" * 10],
)
def test_garbage_refused(garbage):
    with pytest.raises(NetSuiteConfigError) as info:
        load_signing_key(garbage)
    assert info.value.field == "private_key"
    assert "openssl" in str(info.value)


def test_damaged_key_refused_without_echo(rsa3072):
    lines = rsa3072.private_key.splitlines()
    damaged = "\n".join(lines[:5] + lines[8:])
    with pytest.raises(NetSuiteConfigError, match="damaged") as info:
        load_signing_key(damaged)
    _assert_no_key_text(info.value, rsa3072.private_key)


def test_oversized_value_refused():
    with pytest.raises(NetSuiteConfigError, match="larger"):
        load_signing_key("A" * (70 * 1024))


def test_signing_key_repr_hides_key(rsa3072):
    key = load_signing_key(rsa3072.private_key)
    text = repr(key) + str(key)
    assert "PS256" in text
    for line in _body_lines(rsa3072.private_key):
        assert line[:24] not in text
    assert len(key.fingerprint()) == 64
