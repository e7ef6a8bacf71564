"""Authentication as users set it up in the field, end to end against the emulator over real HTTP.

Every key form, account ID form and scope shape is minted into a token by the emulator and used for a
SuiteQL page; every refusal that should happen locally is shown to send nothing; every token endpoint
error is checked for its code, its advice and the absence of secrets; the 401 re-mint, the refresh margin
and the single-flight mint are counted on the emulator's side.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
import requests

from airflow_provider_netsuite.core.account import TOKEN_PATH
from airflow_provider_netsuite.core.assertion import build_client_assertion
from airflow_provider_netsuite.core.auth import ASSERTION_TYPE
from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
from airflow_provider_netsuite.core.errors import NetSuiteAuthError, NetSuiteConfigError, NetSuiteTokenError
from airflow_provider_netsuite.core.tokens import TokenCache
from tests.conftest import CLIENT_ID, JWT_SHAPE, KeyPair, make_keypair

pytestmark = pytest.mark.integration

PROBE = "SELECT id FROM customer ORDER BY id"
PASSPHRASE = "correct horse battery staple 42"
TBA = {
    "consumer_key": "ck" + "1" * 62,
    "consumer_secret": "cs" + "2" * 62,
    "token_id": "ti" + "3" * 62,
    "token_secret": "ts" + "4" * 62,
}


class RecordingSession(requests.Session):
    """A real session that remembers the forms posted to the token endpoint (to read the assertion)."""

    def __init__(self) -> None:
        super().__init__()
        self.token_forms: list[dict] = []

    def request(self, method, url, *args, **kwargs):
        if str(url).endswith(TOKEN_PATH):
            self.token_forms.append(dict(kwargs.get("data") or {}))
        return super().request(method, url, *args, **kwargs)

    def assertion(self) -> tuple[dict, dict]:
        """Return the header and claims of the last assertion sent (decoded, not verified)."""
        token = self.token_forms[-1]["client_assertion"]
        return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


def key_lines(pem: str) -> list[str]:
    """Return the base64 body lines of a PEM (what must never be echoed)."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----") and ":" not in line]


def assert_no_secret(text: str, *pems: str, extra_secrets: tuple[str, ...] = ()) -> None:
    for pem in pems:
        for line in key_lines(pem):
            assert line not in text
    for secret in extra_secrets:
        assert secret not in text
    assert "-----BEGIN" not in text
    assert not JWT_SHAPE.search(text), "a JWT (assertion or access token) appears in the text"


def counters(emulator) -> dict:
    stats = emulator.stats()
    return {name: stats[name] for name in ("requests", "token_requests", "tokens_issued", "tba_requests")}


def delta(emulator, before: dict) -> dict:
    after = counters(emulator)
    return {name: after[name] - before[name] for name in before}


def base_extra(emulator, keypair: KeyPair, **changes) -> dict:
    extra = {
        "account_id": emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": keypair.certificate_id,
        "private_key": keypair.private_key,
        "scopes": ["rest_webservices", "restlets"],
        "base_url": emulator.base_url,
    }
    extra.update(changes)
    return {key: value for key, value in extra.items() if value is not None}


def probe(config: ConnectionConfig, session: requests.Session | None = None, **kwargs) -> dict:
    """Mint a token with an empty cache and fetch one SuiteQL page; return the page."""
    with NetSuiteClient(config, token_cache=TokenCache(), session=session, **kwargs) as client:
        return client.suiteql_page(PROBE, limit=5)


@pytest.fixture(scope="module")
def first_ids(emulator) -> list[str]:
    return [str(row["id"]) for row in emulator.query_db("SELECT id FROM customer ORDER BY id LIMIT 5")]


@pytest.fixture(scope="module")
def keys(emulator, registered_rsa, tmp_path_factory) -> dict[str, KeyPair]:
    """Key pairs registered with the emulator (RSA 3072 shared with the session, RSA 4096, three EC)."""
    directory = tmp_path_factory.mktemp("field-keys")
    made = {"rsa3072": registered_rsa}
    for name, kind in [
        ("rsa4096", "rsa:4096"),
        ("p256", "ec:prime256v1"),
        ("p384", "ec:secp384r1"),
        ("p521", "ec:secp521r1"),
    ]:
        made[name] = emulator.register(make_keypair(directory / name, kind))
    return made


@pytest.fixture(scope="module")
def rsa_forms(registered_rsa, tmp_path_factory) -> dict[str, str]:
    """The session's RSA 3072 key rewritten by openssl as PKCS#1 and as encrypted PKCS#8."""
    directory = tmp_path_factory.mktemp("rsa-forms")
    pkcs1 = openssl("pkey", "-in", str(registered_rsa.key_path), "-traditional")
    encrypted = directory / "encrypted.pem"
    openssl(
        "pkcs8", "-topk8", "-in", str(registered_rsa.key_path), "-v2", "aes-256-cbc",
        "-passout", f"pass:{PASSPHRASE}", "-out", str(encrypted),
    )  # fmt: skip
    return {"pkcs1": pkcs1, "encrypted": encrypted.read_text()}


@pytest.fixture
def token_failure(emulator) -> Iterator:
    """Set the emulator's token_endpoint_failure switch; always switch it off afterwards."""

    def switch(failure: str | None) -> None:
        emulator.configure(token_endpoint_failure=failure)

    try:
        yield switch
    finally:
        emulator.configure(token_endpoint_failure=None)


@pytest.fixture
def emulator_settings(emulator) -> Iterator:
    """Change emulator settings for one test; restore the defaults afterwards."""
    original = emulator.admin("GET", "config")
    try:
        yield emulator.configure
    finally:
        emulator.configure(
            token_lifetime=original["token_lifetime"], concurrency_limit=original["concurrency_limit"]
        )


@pytest.fixture(scope="module")
def tba_credentials(emulator) -> dict:
    return emulator.register_tba(TBA)


def tba_extra(emulator, account_id: str | None = None, **changes) -> dict:
    return {
        "auth_type": "tba",
        "account_id": emulator.account_id if account_id is None else account_id,
        "base_url": emulator.base_url,
        **TBA,
        **changes,
    }


# --- 1. Key forms -------------------------------------------------------------------------------------


def _key_form(name: str, keys: dict[str, KeyPair], rsa_forms: dict[str, str]) -> tuple[dict, str, KeyPair]:
    """Return (extra changes, expected algorithm, key pair) for one way users give the key."""
    rsa = keys["rsa3072"]
    pkcs8 = rsa.private_key
    certificate = rsa.cert_path.read_text()
    forms = {
        "pkcs1-rsa3072": ({"private_key": rsa_forms["pkcs1"]}, "PS256", rsa),
        "pkcs8-rsa4096": ({}, "PS256", keys["rsa4096"]),
        "encrypted-pkcs8": (
            {"private_key": rsa_forms["encrypted"], "private_key_passphrase": PASSPHRASE},
            "PS256",
            rsa,
        ),
        "key-then-certificate": ({"private_key": pkcs8 + certificate}, "PS256", rsa),
        "flattened-to-spaces": ({"private_key": pkcs8.replace("\n", " ")}, "PS256", rsa),
        "literal-backslash-n": ({"private_key": rsa_forms["pkcs1"].replace("\n", "\\n")}, "PS256", rsa),
        "encrypted-flattened": (
            {"private_key": rsa_forms["encrypted"].replace("\n", " "), "private_key_passphrase": PASSPHRASE},
            "PS256",
            rsa,
        ),
        "private-key-path": ({"private_key": None, "private_key_path": str(rsa.key_path)}, "PS256", rsa),
        "ec-p256": ({}, "ES256", keys["p256"]),
        "ec-p384": ({}, "ES384", keys["p384"]),
        "ec-p521": ({}, "ES512", keys["p521"]),
        "ps384-on-request": ({"algorithm": "PS384"}, "PS384", rsa),
        "ps512-on-request": ({"algorithm": "ps512"}, "PS512", keys["rsa4096"]),
    }
    return forms[name]


KEY_FORMS = [
    "pkcs1-rsa3072",
    "pkcs8-rsa4096",
    "encrypted-pkcs8",
    "key-then-certificate",
    "flattened-to-spaces",
    "literal-backslash-n",
    "encrypted-flattened",
    "private-key-path",
    "ec-p256",
    "ec-p384",
    "ec-p521",
    "ps384-on-request",
    "ps512-on-request",
]


@pytest.mark.parametrize("form", KEY_FORMS)
def test_each_key_form_mints_and_reads_a_page(emulator, keys, rsa_forms, first_ids, form):
    changes, algorithm, keypair = _key_form(form, keys, rsa_forms)
    extra = base_extra(emulator, keypair)
    extra.update(changes)
    extra = {key: value for key, value in extra.items() if value is not None}
    session = RecordingSession()
    before = counters(emulator)

    config = ConnectionConfig.from_extra(extra)
    page = probe(config, session)

    assert config.signing_key.algorithm == algorithm
    header, claims = session.assertion()
    assert (header["alg"], header["kid"], header["typ"]) == (algorithm, keypair.certificate_id, "JWT")
    assert claims["iss"] == CLIENT_ID
    assert [item["id"] for item in page["items"]] == first_ids
    assert delta(emulator, before)["tokens_issued"] == 1
    assert delta(emulator, before)["token_requests"] == 1


@pytest.fixture(scope="module")
def refused_keys(tmp_path_factory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("refused-keys")
    return {
        "rsa2048": make_keypair(directory / "rsa2048", "rsa:2048").private_key,
        "secp256k1": make_keypair(directory / "k1", "ec:secp256k1").private_key,
    }


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("rsa2048", "private_key", ["2048 bits", "3072 or 4096", "openssl req"]),
        ("secp256k1", "private_key", ["secp256k1", "P-256", "openssl req"]),
        ("rs256", "algorithm", ["RS256", "PS256", "ES256"]),
        ("hs256", "algorithm", ["HS256", "PS256"]),
        ("es256-on-rsa", "algorithm", ["ES256", "needs an EC key"]),
        ("not-a-key", "private_key", ["could not be decoded", "openssl req"]),
        ("certificate-only", "private_key", ["no private key", "CERTIFICATE"]),
        ("encrypted-no-passphrase", "private_key_passphrase", ["encrypted"]),
        ("wrong-passphrase", "private_key_passphrase", ["does not decrypt"]),
        ("missing-path", "private_key_path", ["cannot read"]),
    ],
)
def test_bad_keys_are_refused_locally_before_any_request(
    emulator, registered_rsa, rsa_forms, refused_keys, tmp_path, case, field, words
):
    pkcs8 = registered_rsa.private_key
    body = "".join(key_lines(pkcs8))
    changes = {
        "rsa2048": {"private_key": refused_keys["rsa2048"]},
        "secp256k1": {"private_key": refused_keys["secp256k1"]},
        "rs256": {"algorithm": "RS256"},
        "hs256": {"algorithm": "HS256"},
        "es256-on-rsa": {"algorithm": "ES256"},
        "not-a-key": {
            "private_key": "-----BEGIN PRIVATE KEY-----\n" + body[:400] + "\n-----END PRIVATE KEY-----"
        },
        "certificate-only": {"private_key": registered_rsa.cert_path.read_text()},
        "encrypted-no-passphrase": {"private_key": rsa_forms["encrypted"]},
        "wrong-passphrase": {"private_key": rsa_forms["encrypted"], "private_key_passphrase": "not it"},
        "missing-path": {"private_key": None, "private_key_path": str(tmp_path / "absent.pem")},
    }[case]
    extra = {k: v for k, v in {**base_extra(emulator, registered_rsa), **changes}.items() if v is not None}
    before = counters(emulator)

    with pytest.raises(NetSuiteConfigError) as info:
        probe(ConnectionConfig.from_extra(extra))

    message = str(info.value)
    assert info.value.field == field
    for word in words:
        assert word in message
    assert_no_secret(
        message, pkcs8, rsa_forms["encrypted"], *refused_keys.values(), extra_secrets=(PASSPHRASE,)
    )
    assert delta(emulator, before) == {
        "requests": 0,
        "token_requests": 0,
        "tokens_issued": 0,
        "tba_requests": 0,
    }


# --- 2. Account ID forms ------------------------------------------------------------------------------

ACCOUNT_FORMS = [
    "1234567_SB1",
    "1234567_sb1",
    "1234567-SB1",
    " '1234567_SB1' ",
    '"1234567-sb1"',
    "\t1234567_SB1 ",
]


@pytest.mark.parametrize("form", ACCOUNT_FORMS)
def test_account_id_forms_reach_the_same_account(emulator, registered_rsa, tba_credentials, form):
    session = RecordingSession()
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa, account_id=form))
    before = counters(emulator)

    page = probe(config, session)

    assert config.account_id == "1234567_SB1"
    assert config.account.host_slug == "1234567-sb1"
    assert session.assertion()[1]["aud"] == emulator.base_url + TOKEN_PATH
    assert page["count"] == 5
    assert delta(emulator, before)["tokens_issued"] == 1

    # TBA signs with the realm: the emulator accepts only the canonical upper-case underscore form.
    tba = ConnectionConfig.from_extra(tba_extra(emulator, account_id=form))
    assert tba.account.realm == "1234567_SB1"
    assert probe(tba)["count"] == 5


def post_assertion(emulator, config: ConnectionConfig, keypair: KeyPair) -> requests.Response:
    """Post an assertion built for ``config`` (its token URL is its aud) to the emulator's token endpoint."""
    assertion = build_client_assertion(
        config.signing_key,
        client_id=CLIENT_ID,
        certificate_id=keypair.certificate_id,
        token_url=config.token_url,
        scopes=config.scopes,
    )
    form_body = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return requests.post(emulator.base_url + TOKEN_PATH, data=form_body, timeout=30)


@pytest.mark.parametrize("form", ACCOUNT_FORMS)
def test_aud_for_the_real_host_is_accepted_for_each_form(emulator, registered_rsa, form):
    """Without base_url the assertion names NetSuite's host for the account; the emulator checks that aud."""
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa, account_id=form, base_url=None))
    assert config.token_url == "https://1234567-sb1.suitetalk.api.netsuite.com" + TOKEN_PATH

    response = post_assertion(emulator, config, registered_rsa)

    assert response.status_code == 200, response.text
    assert response.json()["token_type"].lower() == "bearer"


def test_an_aud_for_another_account_is_refused(emulator, registered_rsa):
    config = ConnectionConfig.from_extra(
        base_extra(emulator, registered_rsa, account_id="7654321_SB1", base_url=None)
    )

    response = post_assertion(emulator, config, registered_rsa)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


HOSTILE_ACCOUNT_IDS = [
    "1234567.evil.example",
    "evil.example/1234567",
    "https://1234567.suitetalk.api.netsuite.com",
    "1234567_SB1@evil.example",
    "1234567_SB1/../../admin",
    "1234567 SB1",
    "1234567_SB1;x",
    "\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width digits
    "1234567_XX1",
    "123456789012345",
    "",
    "   ",
    "x" * 80,
    "1234567%2eevil",
]


@pytest.mark.parametrize("account_id", HOSTILE_ACCOUNT_IDS)
def test_hostile_account_ids_are_refused_before_any_request(emulator, registered_rsa, account_id):
    before = counters(emulator)

    for extra in (
        base_extra(emulator, registered_rsa, account_id=account_id),
        tba_extra(emulator, account_id),
    ):
        with pytest.raises(NetSuiteConfigError) as info:
            probe(ConnectionConfig.from_extra(extra))
        assert info.value.field == "account_id"
        assert "account ID" in str(info.value)

    assert delta(emulator, before) == {
        "requests": 0,
        "token_requests": 0,
        "tokens_issued": 0,
        "tba_requests": 0,
    }


@pytest.mark.parametrize(
    "base_url",
    ["http://example.com", "ftp://127.0.0.1", "https://user:pw@1234567.suitetalk.api.netsuite.com"],
)
def test_unsafe_base_urls_are_refused_before_any_request(emulator, registered_rsa, base_url):
    before = counters(emulator)
    with pytest.raises(NetSuiteConfigError) as info:
        ConnectionConfig.from_extra(base_extra(emulator, registered_rsa, base_url=base_url))
    assert info.value.field == "base_url"
    assert "pw" not in str(info.value)
    assert delta(emulator, before)["requests"] == 0


# --- 3. Scopes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "scope_format", "sent"),
    [
        (["rest_webservices", "restlets"], None, ["rest_webservices", "restlets"]),
        ("rest_webservices, restlets", None, ["rest_webservices", "restlets"]),
        ('["rest_webservices"]', None, ["rest_webservices"]),
        (None, None, ["rest_webservices"]),
        (["rest_webservices", "restlets"], "string", "rest_webservices,restlets"),
        ("rest_webservices", "STRING", "rest_webservices"),
    ],
)
def test_scope_shapes_are_sent_as_configured_and_accepted(
    emulator, registered_rsa, scopes, scope_format, sent
):
    session = RecordingSession()
    extra = base_extra(emulator, registered_rsa, scopes=scopes, scope_format=scope_format)

    page = probe(ConnectionConfig.from_extra(extra), session)

    assert session.assertion()[1]["scope"] == sent
    assert page["count"] == 5


@pytest.mark.parametrize("scopes", [[], ",", " , ,", ["rest webservices"], "rest_webservices;drop"])
def test_empty_or_malformed_scopes_are_refused_locally(emulator, registered_rsa, scopes):
    before = counters(emulator)
    with pytest.raises(NetSuiteConfigError) as info:
        ConnectionConfig.from_extra(base_extra(emulator, registered_rsa, scopes=scopes))
    assert info.value.field == "scopes"
    assert delta(emulator, before)["requests"] == 0


def test_a_scope_not_granted_is_refused_with_advice(emulator, tmp_path):
    keypair = make_keypair(tmp_path, "ec:prime256v1")
    emulator.register(keypair, scopes=["rest_webservices"])
    extra = base_extra(emulator, keypair, scopes=["rest_webservices", "suite_analytics"])
    before = counters(emulator)

    with pytest.raises(NetSuiteTokenError) as info:
        probe(ConnectionConfig.from_extra(extra))

    message = str(info.value)
    assert info.value.error == "invalid_grant"
    assert info.value.status == 400
    assert "ScopeMismatched" in message
    assert "suite_analytics" in message
    assert "scopes match the integration record" in message
    assert keypair.certificate_id in message
    assert_no_secret(message, keypair.private_key)
    assert delta(emulator, before)["token_requests"] == 1


# --- 4. Token endpoint errors -------------------------------------------------------------------------

TOKEN_FAILURES = {
    # failure: (error code, HTTP status, attempts, words the message must hold)
    "invalid_client": ("invalid_client", 401, 1, ["integration record is enabled", "Client Credentials"]),
    "invalid_grant": ("invalid_grant", 400, 1, ["sandbox refresh", "not expired or revoked", "clock"]),
    "unauthorized_client": ("unauthorized_client", 400, 1, ["Log in using OAuth 2.0 Access Tokens"]),
    "invalid_request": ("invalid_request", 400, 1, ["proxy rewrites the form body"]),
    "invalid_scope": ("invalid_scope", 400, 1, ["scopes match the integration record"]),
    "html": ("temporarily_unavailable", 503, 4, ["HTML page", "no proxy or firewall"]),
    "non_json": ("temporarily_unavailable", 500, 4, ["not JSON", "try again later"]),
    "server_error": ("temporarily_unavailable", 500, 4, ["server_error", "try again later"]),
}


@pytest.mark.parametrize("failure", sorted(TOKEN_FAILURES))
def test_each_token_error_has_its_code_advice_and_no_secret(emulator, registered_rsa, token_failure, failure):
    code, status, attempts, words = TOKEN_FAILURES[failure]
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa))
    waits: list[float] = []
    token_failure(failure)
    before = counters(emulator)

    with pytest.raises(NetSuiteTokenError) as info:
        probe(config, sleep=waits.append)

    error, message = info.value, str(info.value)
    assert (error.error, error.status) == (code, status)
    for word in [emulator.account_id, CLIENT_ID, registered_rsa.certificate_id, *words]:
        assert word in message
    assert_no_secret(message, registered_rsa.private_key)
    counted = delta(emulator, before)
    assert counted["token_requests"] == attempts  # refusals are never retried; 5xx answers are
    assert counted["requests"] == attempts  # and no data request was sent without a token
    assert len(waits) == attempts - 1


def test_a_server_error_that_clears_is_retried_into_a_token(
    emulator, registered_rsa, token_failure, first_ids
):
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa))
    token_failure("server_error")
    before = counters(emulator)

    page = probe(config, sleep=lambda _: token_failure(None))  # the endpoint recovers during the backoff

    assert [item["id"] for item in page["items"]] == first_ids
    assert delta(emulator, before)["token_requests"] == 2
    assert delta(emulator, before)["tokens_issued"] == 1


def test_a_wrong_key_for_the_certificate_is_invalid_grant(emulator, registered_rsa, tmp_path):
    other = make_keypair(tmp_path, "ec:prime256v1")
    extra = base_extra(emulator, registered_rsa, private_key=other.private_key)
    before = counters(emulator)

    with pytest.raises(NetSuiteTokenError) as info:
        probe(ConnectionConfig.from_extra(extra))

    assert info.value.error == "invalid_grant"
    assert "SignatureValidation" in str(info.value)
    assert_no_secret(str(info.value), other.private_key, registered_rsa.private_key)
    assert delta(emulator, before)["token_requests"] == 1


# --- 5. 401 refresh, refresh margin, single flight ----------------------------------------------------


def test_revoked_token_mid_extract_is_reminted_once_and_the_request_repeated(emulator, registered_rsa):
    query = "SELECT id FROM customer WHERE id <= 500 ORDER BY id"
    expected = [str(row["id"]) for row in emulator.query_db(query)]
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa))
    limit, rows = 100, []
    before = counters(emulator)

    with NetSuiteClient(config, token_cache=TokenCache()) as client:
        for offset in range(0, len(expected), limit):
            page = client.suiteql_page(query, limit=limit, offset=offset)
            rows.extend(item["id"] for item in page["items"])
            if offset == limit:
                emulator.configure(revoke_tokens=True)
        stats = client.stats

    assert len(expected) > 2 * limit
    assert rows == expected  # no page lost, none fetched twice
    assert delta(emulator, before)["tokens_issued"] == 2
    assert stats.unauthorized == 1
    assert stats.token_mints == 2


def test_a_second_401_is_an_error_not_a_loop(emulator, registered_rsa, monkeypatch):
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa))
    with NetSuiteClient(config, token_cache=TokenCache()) as client:
        client.suiteql_page(PROBE, limit=1)
        # Every token this client mints is revoked before it is used: a fresh token cannot help.
        mint = client.auth._mint

        def mint_then_revoke():
            token = mint()
            emulator.configure(revoke_tokens=True)
            return token

        monkeypatch.setattr(client.auth, "_mint", mint_then_revoke)
        emulator.configure(revoke_tokens=True)
        with pytest.raises(NetSuiteAuthError) as info:
            client.suiteql_page(PROBE, limit=1)
        assert client.stats.unauthorized == 2
        assert client.stats.token_mints == 2

    message = str(info.value)
    assert "freshly minted token" in message
    assert "INVALID_LOGIN" in message
    assert_no_secret(message, registered_rsa.private_key)


def test_a_short_lived_token_is_refreshed_before_it_expires(emulator, registered_rsa, emulator_settings):
    emulator_settings(token_lifetime=4)
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa, token_refresh_margin=1.5))
    before = counters(emulator)

    with NetSuiteClient(config, token_cache=TokenCache()) as client:
        client.suiteql_page(PROBE, limit=1)
        first = client.auth.current_token()
        client.suiteql_page(PROBE, limit=1)  # well inside the token's life: reused
        assert delta(emulator, before)["tokens_issued"] == 1
        time.sleep(max(0.0, first.expires_at - 1.5 - time.time()) + 0.3)  # inside the margin, not expired
        assert time.time() < first.expires_at
        client.suiteql_page(PROBE, limit=1)
        stats = client.stats

    assert delta(emulator, before)["tokens_issued"] == 2
    assert stats.unauthorized == 0  # refreshed ahead of expiry, never refused


def test_twenty_threads_needing_a_token_at_once_cause_one_mint(emulator, registered_rsa, emulator_settings):
    emulator_settings(concurrency_limit=25)
    config = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa))
    cache, barrier, results, errors = TokenCache(), threading.Barrier(20), [], []
    clients = [NetSuiteClient(config, token_cache=cache) for _ in range(20)]
    before = counters(emulator)

    def work(client: NetSuiteClient) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(client.suiteql_page(PROBE, limit=1)["count"])
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()

    assert errors == []
    assert results == [1] * 20
    assert delta(emulator, before)["tokens_issued"] == 1
    assert sum(client.stats.token_mints for client in clients) == 1


# --- 6. Cross-process file cache ----------------------------------------------------------------------


def test_twenty_processes_share_one_token_through_the_file_cache(emulator, tmp_path, emulator_settings):
    from benchmarks.token_cache import run_processes

    emulator_settings(concurrency_limit=25)
    keypair = emulator.register(make_keypair(tmp_path / "key", "ec:prime256v1"))
    cache_dir = tmp_path / "token-cache"
    extra = base_extra(emulator, keypair, token_cache_dir=str(cache_dir))
    before = counters(emulator)

    outcome = run_processes(extra, processes=20)

    assert [result["count"] for result in outcome["results"]] == [1] * 20
    assert delta(emulator, before)["tokens_issued"] == 1
    assert sum(result["mints"] for result in outcome["results"]) == 1
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    entries = list(cache_dir.glob("*.token"))
    assert len(entries) == 1
    assert oct(entries[0].stat().st_mode & 0o777) == "0o600"
    stored = entries[0].read_bytes()
    assert b"eyJ" not in stored
    assert not JWT_SHAPE.search(stored.decode("ascii"))


def test_the_file_cache_is_useless_without_the_private_key(emulator, registered_rsa, tmp_path):
    """A second key pair pointed at the same cache directory cannot read the first one's token."""
    cache_dir = tmp_path / "shared"
    other = make_keypair(tmp_path / "other", "ec:prime256v1")
    first = ConnectionConfig.from_extra(base_extra(emulator, registered_rsa, token_cache_dir=str(cache_dir)))
    probe(first)
    entry = next(cache_dir.glob("*.token"))
    # Same cache key, another private key: the entry must not decrypt and must count as a miss.
    forged = ConnectionConfig.from_extra(
        base_extra(emulator, registered_rsa, private_key=other.private_key, token_cache_dir=str(cache_dir))
    )
    before = counters(emulator)

    with pytest.raises(NetSuiteTokenError):  # the other key cannot sign for this certificate
        probe(forged)

    assert delta(emulator, before)["token_requests"] == 1  # it had to ask: the cached token stayed sealed
    assert entry.exists()


# --- 7. Token-based authentication --------------------------------------------------------------------


def test_tba_reads_a_page_with_a_signed_request(emulator, tba_credentials, first_ids):
    before = counters(emulator)

    page = probe(ConnectionConfig.from_extra(tba_extra(emulator)))

    assert [item["id"] for item in page["items"]] == first_ids
    counted = delta(emulator, before)
    assert counted["tba_requests"] == 1
    assert counted["token_requests"] == 0


@pytest.mark.parametrize(
    "wrong",
    [{"token_secret": "ts" + "9" * 62}, {"consumer_secret": "cs" + "8" * 62}, {"token_id": "ti" + "7" * 62}],
)
def test_tba_with_a_wrong_secret_fails_clearly_once(emulator, tba_credentials, wrong):
    before = counters(emulator)

    with pytest.raises(NetSuiteAuthError) as info:
        probe(ConnectionConfig.from_extra(tba_extra(emulator, **wrong)))

    message = str(info.value)
    assert "401" in message
    assert "INVALID_LOGIN" in message
    assert TBA["consumer_key"] in message
    assert "1234567_SB1" in message
    assert "token ID and secret" in message
    assert "Log in using Access Tokens" in message
    assert "OAuth 2.0" not in message
    for secret in (*wrong.values(), TBA["consumer_secret"], TBA["token_secret"], TBA["token_id"]):
        assert secret not in message
    assert "oauth_signature" not in message
    assert delta(emulator, before)["tba_requests"] == 1  # no retry can fix a wrong secret


def test_tba_audit_trail_names_the_reason(emulator, tba_credentials):
    with pytest.raises(NetSuiteAuthError):
        probe(ConnectionConfig.from_extra(tba_extra(emulator, token_secret="ts" + "0" * 62)))
    reasons = [entry["reason"] for entry in emulator.admin("GET", "audit") if entry["kind"] == "tba"]
    assert reasons[-1] == "InvalidSignature"
    assert json.dumps(emulator.admin("GET", "audit")).count(TBA["token_secret"]) == 0
