"""The emulator's authentication, checked with raw HTTP: M2M assertions, bearer tokens, TBA signatures."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256, Client

from tests.conftest import CLIENT_ID, make_keypair
from tests.emulator.conftest import ASSERTION_TYPE, INVALID_LOGIN_BODY, TOKEN_PATH

NOW = time.time()
LIMITS_PATH = "/services/rest/system/v1/governanceLimits"
CONSUMER_KEY, CONSUMER_SECRET = "ck-" + "1" * 61, "cs-" + "2" * 61
TOKEN_ID, TOKEN_SECRET = "tk-" + "3" * 61, "ts-" + "4" * 61


def claims(emulator, **changes) -> dict:
    """Return valid assertion claims for the emulator, with ``changes`` applied (``None`` drops a claim)."""
    now = time.time()
    payload = {
        "iss": CLIENT_ID,
        "scope": ["rest_webservices", "restlets"],
        "aud": emulator.base_url + TOKEN_PATH,
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": uuid.uuid4().hex,
    }
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not None}


def sign(keypair, payload: dict, algorithm: str = "PS256", kid: str | None = "default") -> str:
    """Sign claims with the key pair's private key; ``kid="default"`` means its certificate ID."""
    headers = {} if kid is None else {"kid": keypair.certificate_id if kid == "default" else kid}
    return jwt.encode(payload, keypair.private_key, algorithm=algorithm, headers=headers)


def request_token(emulator, assertion: str | None, **form_changes) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    form.update(form_changes)
    form = {name: value for name, value in form.items() if value is not None}
    return requests.post(emulator.base_url + TOKEN_PATH, data=form, timeout=30)


def assert_invalid_grant(response: requests.Response, reason: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"].startswith(reason)


@pytest.fixture(scope="module")
def ec_keypair(emulator, tmp_path_factory):
    return emulator.register(make_keypair(tmp_path_factory.mktemp("ec"), "ec:prime256v1"))


@pytest.fixture(scope="module")
def tba_registered(emulator) -> None:
    emulator.register_tba(
        {
            "consumer_key": CONSUMER_KEY,
            "consumer_secret": CONSUMER_SECRET,
            "token_id": TOKEN_ID,
            "token_secret": TOKEN_SECRET,
        }
    )


# --- OAuth 2.0 client credentials -------------------------------------------------------------------


def test_ps256_assertion_with_rsa_3072_key_gets_a_token(emulator, registered_rsa):
    before = emulator.stats()["tokens_issued"]

    response = request_token(emulator, sign(registered_rsa, claims(emulator)))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == 3600
    assert body["token_type"] == "Bearer"
    assert emulator.stats()["tokens_issued"] == before + 1
    limits = requests.get(
        emulator.base_url + LIMITS_PATH,
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=30,
    )
    assert limits.status_code == 200


def test_es256_assertion_gets_a_token(emulator, ec_keypair):
    response = request_token(emulator, sign(ec_keypair, claims(emulator), algorithm="ES256"))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(
            {"aud": "https://1234567-sb1.suitetalk.api.netsuite.com" + TOKEN_PATH}, id="suitetalk-aud"
        ),
        pytest.param(
            {"aud": "https://1234567-sb1.restlets.api.netsuite.com" + TOKEN_PATH}, id="restlets-aud"
        ),
        pytest.param(
            {"aud": ["https://other.example", "https://1234567-sb1.connect.api.netsuite.com" + TOKEN_PATH]},
            id="aud-list",
        ),
        pytest.param({"scope": "rest_webservices, restlets"}, id="comma-scope"),
        pytest.param({"scope": "rest_webservices"}, id="single-scope-string"),
        pytest.param({"iat": NOW - 0.25, "exp": NOW + 3599.75}, id="float-times-one-hour"),
        pytest.param({"jti": None}, id="no-jti"),
    ],
)
def test_accepted_assertion_variants(emulator, registered_rsa, changes):
    response = request_token(emulator, sign(registered_rsa, claims(emulator, **changes)))

    assert response.status_code == 200, response.text


def test_rs256_is_refused(emulator, registered_rsa):
    response = request_token(emulator, sign(registered_rsa, claims(emulator), algorithm="RS256"))

    assert_invalid_grant(response, "UnsupportedAlgo")


def test_hs256_is_refused(emulator, registered_rsa):
    assertion = jwt.encode(
        claims(emulator),
        "shared-secret-" * 3,
        algorithm="HS256",
        headers={"kid": registered_rsa.certificate_id},
    )

    assert_invalid_grant(request_token(emulator, assertion), "UnsupportedAlgo")


def test_unsigned_assertion_is_refused(emulator, registered_rsa):
    assertion = jwt.encode(
        claims(emulator), None, algorithm="none", headers={"kid": registered_rsa.certificate_id}
    )

    assert_invalid_grant(request_token(emulator, assertion), "UnsupportedAlgo")


def test_missing_kid_is_refused(emulator, registered_rsa):
    assert_invalid_grant(
        request_token(emulator, sign(registered_rsa, claims(emulator), kid=None)), "MissingKeyId"
    )


def test_unknown_kid_is_refused(emulator, registered_rsa):
    response = request_token(emulator, sign(registered_rsa, claims(emulator), kid="no-such-certificate"))

    assert_invalid_grant(response, "MissingKey")


def test_unknown_client_id_gets_invalid_client(emulator, registered_rsa):
    response = request_token(emulator, sign(registered_rsa, claims(emulator, iss="unknown-client")))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{emulator.account_id}"'


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param(
            {"aud": "https://1234567_SB1.suitetalk.api.netsuite.com" + TOKEN_PATH},
            "InvalidAudience",
            id="underscore-host-aud",
        ),
        pytest.param({"aud": "https://evil.example" + TOKEN_PATH}, "InvalidAudience", id="wrong-aud"),
        pytest.param({"aud": None}, "InvalidAudience", id="no-aud"),
        pytest.param(
            {"exp": int(time.time()) + 3601, "iat": int(time.time())}, "TokenValidityTooBroad", id="3601s"
        ),
        pytest.param(
            {"iat": int(time.time()) + 600, "exp": int(time.time()) + 900},
            "TokenNotAcceptable",
            id="future-iat",
        ),
        pytest.param(
            {"iat": int(time.time()) - 600, "exp": int(time.time()) - 300}, "TokenExpired", id="expired"
        ),
        pytest.param({"iat": None}, "InvalidTokenValidity", id="no-iat"),
        pytest.param({"exp": "1999999999"}, "InvalidTokenValidity", id="string-exp"),
        pytest.param({"scope": []}, "InvalidScope", id="empty-scope-list"),
        pytest.param({"scope": ""}, "InvalidScope", id="empty-scope-string"),
        pytest.param({"scope": None}, "InvalidScope", id="no-scope"),
        pytest.param({"scope": ["rest_webservices", "everything"]}, "ScopeMismatched", id="unknown-scope"),
        pytest.param({"scope": "suite_analytics"}, "ScopeMismatched", id="scope-not-granted"),
    ],
)
def test_bad_claims_are_refused(emulator, registered_rsa, changes, reason):
    assertion = sign(registered_rsa, claims(emulator, **changes))

    response = request_token(emulator, assertion)

    assert_invalid_grant(response, reason)
    assert assertion not in response.text


def test_tampered_signature_is_refused(emulator, registered_rsa):
    header, payload, signature = sign(registered_rsa, claims(emulator)).split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b'"rest_webservices"', b'"restlets"        ')
    ).decode()

    assert_invalid_grant(
        request_token(emulator, f"{header}.{forged_payload}.{signature}"), "SignatureValidation"
    )
    assert_invalid_grant(
        request_token(emulator, f"{header}.{payload}.{signature[::-1]}"), "SignatureValidation"
    )


def test_certificate_of_another_key_does_not_verify(emulator, registered_rsa, ec_keypair):
    assertion = sign(ec_keypair, claims(emulator), algorithm="ES256", kid=registered_rsa.certificate_id)

    assert_invalid_grant(request_token(emulator, assertion), "SignatureValidation")


@pytest.mark.parametrize(
    ("form_changes", "status", "error"),
    [
        pytest.param({"grant_type": None}, 400, "invalid_request", id="no-grant-type"),
        pytest.param({"grant_type": "password"}, 400, "unsupported_grant_type", id="wrong-grant-type"),
        pytest.param({"client_assertion_type": None}, 400, "invalid_request", id="no-assertion-type"),
        pytest.param({"client_assertion_type": "jwt"}, 400, "invalid_request", id="wrong-assertion-type"),
        pytest.param({"client_assertion": None}, 400, "invalid_request", id="no-assertion"),
    ],
)
def test_malformed_token_requests(emulator, registered_rsa, form_changes, status, error):
    response = request_token(emulator, sign(registered_rsa, claims(emulator)), **form_changes)

    assert response.status_code == status
    assert response.json()["error"] == error


def test_garbage_assertion_is_invalid_grant(emulator):
    assert_invalid_grant(request_token(emulator, "not-a-jwt"), "InvalidJWT")


def test_scopes_granted_per_certificate(emulator, tmp_path):
    restlets_only = emulator.register(make_keypair(tmp_path, "ec:secp384r1"), scopes=["restlets"])
    restlets_claims = claims(emulator, scope=["restlets"])

    granted = request_token(emulator, sign(restlets_only, restlets_claims, algorithm="ES384"))
    refused = request_token(emulator, sign(restlets_only, claims(emulator), algorithm="ES384"))

    assert granted.status_code == 200, granted.text
    assert_invalid_grant(refused, "ScopeMismatched")
    # A token without rest_webservices does not open the REST web services.
    token = granted.json()["access_token"]
    limits = requests.get(
        emulator.base_url + LIMITS_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert limits.status_code == 401


def test_rsa_pss_key_and_bare_public_key_registration(emulator, tmp_path):
    keypair = make_keypair(tmp_path, "rsa-pss:3072")
    certificate = x509.load_pem_x509_certificate(keypair.cert_path.read_bytes())
    public_pem = certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keypair.cert_path = tmp_path / "public.pem"
    keypair.cert_path.write_bytes(public_pem)
    emulator.register(keypair)

    response = request_token(emulator, sign(keypair, claims(emulator), algorithm="PS384"))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("kind", "message"), [("rsa:2048", "2048 bits"), ("ec:secp256k1", "secp256k1")])
def test_registration_refuses_keys_netsuite_refuses(emulator, tmp_path, kind, message):
    keypair = make_keypair(tmp_path, kind)
    command = [
        sys.executable, "-m", "airflow_provider_netsuite.emulator", "register-certificate",
        "--state-dir", str(emulator.state_dir), "--client-id", CLIENT_ID, "--certificate-id", "refused",
        "--certificate", str(keypair.cert_path),
    ]  # fmt: skip

    result = subprocess.run(command, capture_output=True, text=True)

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("failure", "status", "content_type"),
    [
        ("invalid_client", 401, "application/json"),
        ("invalid_grant", 400, "application/json"),
        ("unauthorized_client", 400, "application/json"),
        ("html", 503, "text/html"),
        ("non_json", 500, "text/plain"),
        ("server_error", 500, "application/json"),
    ],
)
def test_forced_token_endpoint_failures(emulator, registered_rsa, failure, status, content_type):
    emulator.configure(token_endpoint_failure=failure)
    try:
        response = request_token(emulator, sign(registered_rsa, claims(emulator)))
    finally:
        emulator.configure(token_endpoint_failure=None)

    assert response.status_code == status
    assert response.headers["Content-Type"].startswith(content_type)
    if content_type == "application/json" and status != 500:
        assert response.json()["error"] == failure
    if failure == "invalid_client":
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_token_lifetime_is_configurable(emulator, registered_rsa):
    emulator.configure(token_lifetime=1)
    try:
        response = request_token(emulator, sign(registered_rsa, claims(emulator)))
    finally:
        emulator.configure(token_lifetime=3600)
    assert response.json()["expires_in"] == 1
    time.sleep(1.2)

    expired = requests.get(
        emulator.base_url + LIMITS_PATH,
        headers={"Authorization": f"Bearer {response.json()['access_token']}"},
        timeout=30,
    )

    assert expired.status_code == 401
    assert emulator.admin("GET", "audit")[-1]["reason"] == "AccessTokenExpired"


# --- Bearer tokens on data endpoints --------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz"],
    ids=["none", "empty", "junk", "basic"],
)
def test_bad_bearer_gets_netsuite_401(emulator, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=30)

    assert response.status_code == 401
    assert response.json() == INVALID_LOGIN_BODY
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{emulator.account_id}", error="invalid_token", '
        'error_description="Invalid login attempt."'
    )
    assert response.headers["Content-Type"].startswith("application/vnd.oracle.resource+json; type=error")


def test_token_from_elsewhere_is_refused(emulator, registered_rsa):
    forged = jwt.encode({"jti": "x", "exp": time.time() + 60}, registered_rsa.private_key, algorithm="PS256")

    response = requests.get(
        emulator.base_url + LIMITS_PATH, headers={"Authorization": f"Bearer {forged}"}, timeout=30
    )

    assert response.status_code == 401


def test_revoked_tokens_are_refused(emulator, registered_rsa):
    token = request_token(emulator, sign(registered_rsa, claims(emulator))).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=30).status_code == 200

    emulator.configure(revoke_tokens=True)

    response = requests.get(emulator.base_url + LIMITS_PATH, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.json() == INVALID_LOGIN_BODY


# --- Token-based authentication (OAuth 1.0a) ------------------------------------------------------------


def tba_headers(emulator, url: str, method: str = "GET", **overrides) -> dict:
    """Sign a request the way a TBA client does, with oauthlib; ``overrides`` change the signing inputs."""
    options = {
        "client_secret": CONSUMER_SECRET,
        "resource_owner_key": TOKEN_ID,
        "resource_owner_secret": TOKEN_SECRET,
        "signature_method": SIGNATURE_HMAC_SHA256,
        "realm": emulator.account_id,
        "nonce": uuid.uuid4().hex,
        "timestamp": str(int(time.time())),
    }
    options.update(overrides)
    _, headers, _ = Client(CONSUMER_KEY, **options).sign(url, http_method=method)
    return headers


@pytest.mark.usefixtures("tba_registered")
def test_tba_good_signature_passes(emulator):
    url = emulator.base_url + LIMITS_PATH + "?probe=a%20b&x=1"
    before = emulator.stats()["tba_requests"]

    response = requests.get(url, headers=tba_headers(emulator, url), timeout=30)

    assert response.status_code == 200, response.text
    assert response.json()["integrationLimitType"] == "accountLimit"
    assert emulator.stats()["tba_requests"] == before + 1


@pytest.mark.usefixtures("tba_registered")
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"signature_method": SIGNATURE_HMAC_SHA1}, "UnknownAlgorithm", id="hmac-sha1"),
        pytest.param({"realm": "1234567_sb1"}, "InvalidSignature", id="lower-case-realm"),
        pytest.param({"realm": "1234567-SB1"}, "InvalidSignature", id="hyphen-realm"),
        pytest.param({"timestamp": str(int(time.time()) - 600)}, "InvalidTimestamp", id="stale-timestamp"),
        pytest.param({"nonce": "abc"}, "InvalidNonce", id="short-nonce"),
        pytest.param({"client_secret": "wrong"}, "InvalidSignature", id="wrong-secret"),
        pytest.param({"resource_owner_key": "unknown-token"}, "InvalidToken", id="unknown-token"),
    ],
)
def test_tba_bad_signatures_fail(emulator, overrides, reason):
    url = emulator.base_url + LIMITS_PATH

    response = requests.get(url, headers=tba_headers(emulator, url, **overrides), timeout=30)

    assert response.status_code == 401
    assert response.json() == INVALID_LOGIN_BODY
    assert emulator.admin("GET", "audit")[-1]["reason"] == reason


@pytest.mark.usefixtures("tba_registered")
def test_tba_signature_covers_the_query_string(emulator):
    url = emulator.base_url + LIMITS_PATH + "?limit=10"
    headers = tba_headers(emulator, url)

    response = requests.get(emulator.base_url + LIMITS_PATH + "?limit=20", headers=headers, timeout=30)

    assert response.status_code == 401


@pytest.mark.usefixtures("tba_registered")
def test_tba_nonce_cannot_be_reused(emulator):
    url = emulator.base_url + LIMITS_PATH
    headers = tba_headers(emulator, url)

    first = requests.get(url, headers=headers, timeout=30)
    second = requests.get(url, headers=headers, timeout=30)

    assert first.status_code == 200
    assert second.status_code == 401
    assert emulator.admin("GET", "audit")[-1]["reason"] == "NonceUsed"
