"""The signed client assertion: header, claims, and a signature the certificate verifies."""

from __future__ import annotations

import jwt
import pytest
from cryptography import x509

from airflow_provider_netsuite.core.assertion import build_client_assertion
from airflow_provider_netsuite.core.errors import NetSuiteConfigError
from airflow_provider_netsuite.core.keys import load_signing_key
from tests.conftest import CLIENT_ID, make_keypair

TOKEN_URL = "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"


def _public_key(keypair):
    return x509.load_pem_x509_certificate(keypair.cert_path.read_bytes()).public_key()


def _build(signing_key, **overrides):
    arguments = {
        "client_id": CLIENT_ID,
        "certificate_id": "cert-123",
        "token_url": TOKEN_URL,
        "scopes": ["rest_webservices", "restlets"],
        "now": 1_700_000_000.7,
    }
    arguments.update(overrides)
    return build_client_assertion(signing_key, **arguments)


def test_rsa_assertion_header_claims_and_signature(rsa_keypair):
    assertion = _build(load_signing_key(rsa_keypair.private_key))
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": "PS256", "typ": "JWT", "kid": "cert-123"}
    claims = jwt.decode(
        assertion,
        _public_key(rsa_keypair),
        algorithms=["PS256"],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert claims["scope"] == ["rest_webservices", "restlets"]
    assert claims["iat"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_300
    assert len(claims["jti"]) == 36


def test_signature_fails_with_another_key(rsa_keypair, tmp_path):
    other = make_keypair(tmp_path, "rsa:3072")
    assertion = _build(load_signing_key(rsa_keypair.private_key))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            assertion,
            _public_key(other),
            algorithms=["PS256"],
            audience=TOKEN_URL,
            options={"verify_exp": False},
        )


@pytest.mark.parametrize(("curve", "algorithm"), [("prime256v1", "ES256"), ("secp384r1", "ES384")])
def test_ec_assertion_verifies(tmp_path, curve, algorithm):
    pair = make_keypair(tmp_path, f"ec:{curve}")
    assertion = _build(load_signing_key(pair.private_key), now=None, lifetime=60)
    assert jwt.get_unverified_header(assertion)["alg"] == algorithm
    claims = jwt.decode(assertion, _public_key(pair), algorithms=[algorithm], audience=TOKEN_URL)
    assert claims["exp"] - claims["iat"] == 60


def test_scope_string_format(rsa_keypair):
    assertion = _build(load_signing_key(rsa_keypair.private_key), scope_format="string")
    claims = jwt.decode(assertion, options={"verify_signature": False})
    assert claims["scope"] == "rest_webservices,restlets"


def test_jti_is_unique(rsa_keypair):
    key = load_signing_key(rsa_keypair.private_key)
    ids = {jwt.decode(_build(key), options={"verify_signature": False})["jti"] for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("lifetime", [0, -1, 3601, 1.5, True, "300"])
def test_lifetime_bounds(rsa_keypair, lifetime):
    with pytest.raises(NetSuiteConfigError) as info:
        _build(load_signing_key(rsa_keypair.private_key), lifetime=lifetime)
    assert info.value.field == "assertion_lifetime"


def test_lifetime_3600_allowed(rsa_keypair):
    claims = jwt.decode(
        _build(load_signing_key(rsa_keypair.private_key), lifetime=3600), options={"verify_signature": False}
    )
    assert claims["exp"] - claims["iat"] == 3600


def test_empty_scopes_and_bad_format_refused(rsa_keypair):
    key = load_signing_key(rsa_keypair.private_key)
    with pytest.raises(NetSuiteConfigError, match="scope"):
        _build(key, scopes=[])
    with pytest.raises(NetSuiteConfigError) as info:
        _build(key, scope_format="space")
    assert info.value.field == "scope_format"
