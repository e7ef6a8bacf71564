"""Emulator behaviours a strict NetSuite client relies on: batch GET and DELETE, replaceSelectedFields,
keyed and non-keyed sublists, Accept-Language, SuiteQL links at the 100,000 cap, governance for
non-administrators, the accepted RSA key sizes, and the findings of the emulator audit: JWT headers PyJWT
cannot parse, host forms, free-form idempotency keys, scope syntax, several ``Prefer`` lines, batch item
keys and the UNCONFIRMED choices made configurable.

Driven in-process through FastAPI's TestClient with real bearer tokens minted from assertions signed with
raw PyJWT (never the provider's client code).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from datetime import datetime

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from airflow_provider_netsuite.emulator import auth, dataset, records, server
from airflow_provider_netsuite.emulator.state import (
    KNOWN_SCOPES,
    RegistrationError,
    RuntimeConfig,
    check_public_key,
    database_path,
    register_certificate,
)
from tests.emulator.conftest import ASSERTION_TYPE, IDEMPOTENCY_CONFLICT_BODY, INVALID_LOGIN_BODY, TOKEN_PATH

CLIENT_ID = "k" * 32 + "c7"
ADMIN_CERTIFICATE = "cert-conformance-admin"
CLERK_CERTIFICATE = "cert-conformance-clerk"
ALL_SCOPES_CERTIFICATE = "cert-conformance-all-scopes"
TOKEN_URL = "http://testserver" + TOKEN_PATH
ACCOUNT_HOST = "1234567-sb1.suitetalk.api.netsuite.com"
RECORDS = "/services/rest/record/v1"
SUITEQL = "/services/rest/query/v1/suiteql"
LIMITS = "/services/rest/system/v1/governanceLimits"
ASYNC = {"Prefer": "respond-async"}
COLLECTION = {"Content-Type": "application/vnd.oracle.resource+json; type=collection", **ASYNC}
INVALID_LOGIN_CHALLENGE = (
    'Bearer realm="1234567_SB1", error="invalid_token", error_description="Invalid login attempt."'
)


@pytest.fixture(scope="module")
def app(tmp_path_factory, rsa_keypair):
    state_dir = tmp_path_factory.mktemp("conformance-emulator")
    dataset.create_database(str(database_path(state_dir)))
    pem = rsa_keypair.cert_path.read_text()
    register_certificate(state_dir, CLIENT_ID, ADMIN_CERTIFICATE, pem, ["rest_webservices"])
    register_certificate(state_dir, CLIENT_ID, CLERK_CERTIFICATE, pem, ["rest_webservices"], role="clerk")
    register_certificate(state_dir, CLIENT_ID, ALL_SCOPES_CERTIFICATE, pem, list(KNOWN_SCOPES))
    application = server.create_app(state_dir)
    records.configure_record_failures(application.state, {"job_delay_ms": 20})
    return application


def sign(private_key: str, certificate_id: str = ADMIN_CERTIFICATE, **changes) -> str:
    """Return a PS256 client assertion; ``changes`` replace claims."""
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "scope": ["rest_webservices"], "aud": TOKEN_URL, "iat": now, "exp": now + 300}
    return jwt.encode({**claims, **changes}, private_key, algorithm="PS256", headers={"kid": certificate_id})


def request_token(test_client: TestClient, assertion: str, **kwargs):
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    return test_client.post(TOKEN_PATH, data={**form, "client_assertion": assertion}, **kwargs)


def bearer(test_client: TestClient, private_key: str, certificate_id: str) -> str:
    token = request_token(test_client, sign(private_key, certificate_id))
    assert token.status_code == 200, token.text
    return f"Bearer {token.json()['access_token']}"


def assert_invalid_grant(response, reason: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_description"].startswith(reason)


@pytest.fixture(scope="module")
def client(app, rsa_keypair):
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = bearer(test_client, rsa_keypair.private_key, ADMIN_CERTIFICATE)
        yield test_client


@pytest.fixture
def company_language(app):
    yield app.state.emulator.config
    app.state.emulator.config.company_language = "en"


def detail_of(response) -> dict:
    body = response.json()
    assert body["status"] == response.status_code
    assert len(body["o:errorDetails"]) == 1
    return body["o:errorDetails"][0]


def customer(client, **fields) -> tuple[str, str]:
    external_id = f"CONF-{uuid.uuid4().hex[:10]}"
    body = {"companyName": "Conformance Co.", **fields}
    response = client.put(f"{RECORDS}/customer/eid:{external_id}", json=body)
    assert response.status_code == 204, response.text
    return response.headers["Location"].rsplit("/", 1)[1], external_id


def job_results(client, response) -> list:
    assert response.status_code == 202, response.text
    assert response.headers["Preference-Applied"] == "respond-async"
    location = response.headers["Location"]
    deadline = time.monotonic() + 15
    while not client.get(location).json()["completed"]:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.02)
    results = []
    for item in client.get(f"{location}/task").json()["items"]:
        task = client.get(item["links"][0]["href"]).json()
        result = next(link["href"] for link in task["links"] if link["href"].endswith("/result"))
        results.append(client.get(result))
    return results


def sales_order_lines(client, location: str) -> list[tuple[str, float]]:
    order = client.get(location, params={"expandSubResources": "true"}).json()
    return [(line["item"]["id"], line["quantity"]) for line in order["item"]["items"]]


def new_sales_order(client) -> str:
    lines = [{"item": {"id": "3"}, "quantity": 2, "rate": 10}, {"item": "4", "quantity": 1, "rate": 5}]
    body = {"entity": {"id": "7"}, "memo": "kept", "item": {"items": lines}}
    response = client.post(f"{RECORDS}/salesOrder", json=body)
    assert response.status_code == 204, response.text
    return response.headers["Location"]


# --- E1: batch GET and DELETE --------------------------------------------------------------------------


def test_batch_get_gives_one_task_per_id_with_the_record(client):
    first, _ = customer(client, email="first@example.com")
    _, second = customer(client, email="second@example.com")

    response = client.get(
        f"{RECORDS}/customer",
        params={"expandRecords": "true", "ids": f"{first},eid:{second},999999"},
        headers=ASYNC,
    )

    results = job_results(client, response)
    assert [result.status_code for result in results] == [200, 200, 404]
    assert results[0].json()["id"] == first
    assert results[0].json()["email"] == "first@example.com"
    assert results[1].json()["externalId"] == second
    assert detail_of(results[2])["o:errorCode"] == "NONEXISTENT_ID"


def test_batch_delete_removes_each_record(client):
    first, _ = customer(client)
    second_id, second = customer(client)

    results = job_results(
        client, client.delete(f"{RECORDS}/customer?ids={first},eid:{second}", headers=ASYNC)
    )

    assert [result.status_code for result in results] == [204, 204]
    assert client.get(f"{RECORDS}/customer/{first}").status_code == 404
    assert client.get(f"{RECORDS}/customer/{second_id}").status_code == 404


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_batch_get_and_delete_need_respond_async(client, method):
    record_id, _ = customer(client)

    response = client.request(method, f"{RECORDS}/customer", params={"ids": record_id})

    assert response.status_code == 400
    assert detail_of(response)["o:errorHeader"] == "Prefer"
    assert detail_of(response)["o:errorCode"] == "INVALID_HEADER"
    assert client.get(f"{RECORDS}/customer/{record_id}").status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_collection_without_ids_keeps_answering_405(client, method):
    response = client.request(method, f"{RECORDS}/customer", headers=ASYNC)

    assert response.status_code == 405
    assert detail_of(response)["o:errorCode"] == "INVALID_REQUEST"


@pytest.mark.parametrize("ids", [",".join(str(number) for number in range(1, 102)), "1,,2", ""])
def test_batch_ids_are_checked(client, ids):
    response = client.delete(f"{RECORDS}/customer", params={"ids": ids}, headers=ASYNC)

    assert response.status_code == 400
    assert detail_of(response)["o:errorQueryParam"] == "ids"


def test_batch_of_exactly_100_ids_is_accepted(client):
    ids = ",".join(str(900000 + number) for number in range(100))

    results = job_results(client, client.get(f"{RECORDS}/customer", params={"ids": ids}, headers=ASYNC))

    assert len(results) == 100
    assert {result.status_code for result in results} == {404}


def test_single_record_get_and_delete_by_external_id(client):
    record_id, external_id = customer(client)

    assert client.get(f"{RECORDS}/customer/eid:{external_id}").json()["id"] == record_id
    assert client.delete(f"{RECORDS}/customer/eid:{external_id}").status_code == 204
    assert client.get(f"{RECORDS}/customer/eid:{external_id}").status_code == 404
    assert client.delete(f"{RECORDS}/customer/{record_id}").status_code == 404


# --- E2: replaceSelectedFields -------------------------------------------------------------------------


def test_replace_selected_fields_changes_only_the_named_body_fields(client):
    record_id, _ = customer(client, email="old@example.com", phone="555-0100", creditLimit=100)
    location = f"{RECORDS}/customer/{record_id}"

    response = client.patch(
        f"{location}?replaceSelectedFields=true&replace=email,phone",
        json={"email": None, "phone": "555-0199", "companyName": "Not Changed", "creditLimit": 5},
    )

    assert response.status_code == 204, response.text
    after = client.get(location).json()
    assert "email" not in after
    assert after["phone"] == "555-0199"
    assert after["companyName"] == "Conformance Co."
    assert after["creditLimit"] == 100


def test_replace_selected_field_left_out_of_the_body_is_deleted(client):
    record_id, _ = customer(client, email="gone@example.com", phone="555-0100")
    location = f"{RECORDS}/customer/{record_id}"

    response = client.patch(f"{location}?replaceSelectedFields=true&replace=email", json={"phone": "1"})

    assert response.status_code == 204, response.text
    after = client.get(location).json()
    assert "email" not in after
    assert after["phone"] == "555-0100"


def test_replace_names_body_fields_only_with_replace_selected_fields(client):
    record_id, _ = customer(client, email="stays@example.com")
    location = f"{RECORDS}/customer/{record_id}"

    plain = client.patch(f"{location}?replace=email", json={"email": None})
    unknown = client.patch(f"{location}?replaceSelectedFields=true&replace=noSuchField", json={})

    assert plain.status_code == unknown.status_code == 400
    assert detail_of(plain)["o:errorQueryParam"] == "replace"
    assert detail_of(unknown)["o:errorQueryParam"] == "replace"
    assert client.get(location).json()["email"] == "stays@example.com"


def test_replace_selected_fields_with_a_sublist_leaves_other_body_fields(client):
    location = new_sales_order(client)

    response = client.patch(
        f"{location}?replaceSelectedFields=true&replace=item",
        json={"memo": "changed", "item": {"items": [{"item": {"id": "6"}, "quantity": 4, "rate": 1}]}},
    )

    assert response.status_code == 204, response.text
    assert sales_order_lines(client, location) == [("6", 4)]
    assert client.get(location).json()["memo"] == "kept"


# --- E4: keyed and non-keyed sublists ------------------------------------------------------------------


def test_item_sublist_is_non_keyed_so_lines_with_a_line_number_are_appended(client):
    location = new_sales_order(client)

    client.patch(location, json={"item": {"items": [{"line": 1, "item": {"id": "5"}, "quantity": 9}]}})

    assert sales_order_lines(client, location) == [("3", 2), ("4", 1), ("5", 9)]


def test_item_sublist_replace_replaces_every_line_even_with_matching_line_numbers(client):
    location = new_sales_order(client)

    client.patch(
        f"{location}?replace=item", json={"item": {"items": [{"line": 1, "item": "5", "quantity": 3}]}}
    )

    assert sales_order_lines(client, location) == [("5", 3)]


def test_keyed_and_non_keyed_flags():
    assert records.is_keyed("addressbook") is True
    assert records.is_keyed("item") is False


def _stored_lines(connection: sqlite3.Connection, order_id: int) -> list[tuple[int, int, float]]:
    rows = connection.execute(
        "SELECT id, item, quantity FROM transactionline "
        "WHERE \"transaction\" = ? AND mainline = 'F' ORDER BY id",
        (order_id,),
    )
    return [tuple(row) for row in rows]


@pytest.mark.parametrize(
    ("replaced", "expected"),
    [
        pytest.param(False, [(1, 3, 7), (2, 4, 1), (3, 5, 1)], id="update-by-key-and-append"),
        pytest.param(True, [(1, 3, 7), (3, 5, 1)], id="replace-drops-unmatched"),
    ],
)
def test_keyed_sublist_lines_are_matched_by_line(client, app, replaced, expected):
    order_id = int(new_sales_order(client).rsplit("/", 1)[1])
    sublist = dataset.RECORD_TYPES["salesOrder"].sublists["item"]
    lines = [{"id": 1, "quantity": 7}, {"item": 5, "quantity": 1, "rate": 1}]

    connection = sqlite3.connect(str(app.state.emulator.store.db_path))
    connection.row_factory = sqlite3.Row
    try:
        records._write_lines(connection, sublist, order_id, lines, replaced, keyed=True)
        assert _stored_lines(connection, order_id) == expected
    finally:
        connection.rollback()
        connection.close()


# --- E3: Accept-Language -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["en", "en-US", "EN-gb;q=0.9, de;q=0.5", "*"])
def test_accept_language_of_the_company_language_passes(client, value):
    response = client.post(
        SUITEQL,
        json={"q": "SELECT id FROM currency"},
        headers={"Prefer": "transient", "Accept-Language": value},
    )

    assert response.status_code == 200, response.text


def test_missing_accept_language_passes(client):
    assert "accept-language" not in {name.lower() for name in client.headers}
    assert client.get(f"{RECORDS}/customer/1").status_code == 200


@pytest.mark.parametrize("path", [SUITEQL, f"{RECORDS}/customer/1", LIMITS])
def test_other_accept_language_is_invalid_header(client, path):
    headers = {"Prefer": "transient", "Accept-Language": "de-DE,en;q=0.8"}
    if path == SUITEQL:
        response = client.post(path, json={"q": "SELECT id FROM currency"}, headers=headers)
    else:
        response = client.get(path, headers=headers)

    assert response.status_code == 400
    detail = detail_of(response)
    assert detail["o:errorCode"] == "INVALID_HEADER"
    assert detail["o:errorHeader"] == "Accept-Language"


def test_company_language_is_configurable(client, company_language):
    response = client.post("/_emulator/config", json={"company_language": "de"})
    assert response.status_code == 200
    assert response.json()["company_language"] == "de"

    assert client.get(f"{RECORDS}/customer/1", headers={"Accept-Language": "de-AT"}).status_code == 200
    assert client.get(f"{RECORDS}/customer/1", headers={"Accept-Language": "en-US"}).status_code == 400
    assert client.post("/_emulator/config", json={"company_language": "not a tag"}).status_code == 400


def test_token_endpoint_ignores_accept_language(client, rsa_keypair):
    client.headers["Accept-Language"] = "fr-FR"
    try:
        assert bearer(client, rsa_keypair.private_key, ADMIN_CERTIFICATE).startswith("Bearer ")
    finally:
        del client.headers["Accept-Language"]


def test_company_language_setting_is_validated():
    config = RuntimeConfig()
    config.update({"company_language": "de-DE"})

    assert config.company_language == "de-DE"
    with pytest.raises(ValueError, match="company_language"):
        config.update({"company_language": 5})


# --- E5: SuiteQL links at the 100,000 cap --------------------------------------------------------------


def _links(page: dict) -> dict[str, int]:
    return {link["rel"]: int(link["href"].rsplit("offset=", 1)[1]) for link in page["links"]}


@pytest.mark.parametrize(
    ("limit", "offset", "expected"),
    [
        pytest.param(1000, 0, {"next": 1000, "last": 99000, "self": 0}, id="first-page"),
        pytest.param(1000, 98000, {"first": 0, "prev": 97000, "next": 99000, "last": 99000, "self": 98000}),
        pytest.param(1000, 99000, {"first": 0, "prev": 98000, "last": 99000, "self": 99000}, id="at-cap"),
        pytest.param(
            3, 99996, {"first": 0, "prev": 99993, "next": 99999, "last": 99999, "self": 99996}, id="3-below"
        ),
        pytest.param(3, 99999, {"first": 0, "prev": 99996, "last": 99999, "self": 99999}, id="3-at-cap"),
    ],
)
def test_links_never_reach_the_refused_offsets(limit, offset, expected):
    items = [{"id": str(offset + number)} for number in range(limit)]

    page = server._page("https://x/suiteql", items, 250_000, limit, offset)

    assert _links(page) == expected
    assert page["hasMore"] is True
    assert page["totalResults"] == 250_000
    assert all(value < server.MAX_RESULTS for value in _links(page).values())


def test_prev_link_never_points_past_the_data():
    page = server._page("https://x/suiteql", [], 5, 2, 10)

    assert _links(page) == {"first": 0, "prev": 4, "self": 10}
    assert page["hasMore"] is False


def test_pages_below_the_cap_keep_their_links():
    items = [{"id": str(number)} for number in range(2)]

    page = server._page("https://x/suiteql", items, 5, 2, 2)

    assert _links(page) == {"first": 0, "prev": 0, "next": 4, "last": 4, "self": 2}


# --- E6: governance limits are for administrators ------------------------------------------------------


def test_governance_limits_need_the_administrator_role(client, rsa_keypair):
    clerk = bearer(client, rsa_keypair.private_key, CLERK_CERTIFICATE)

    refused = client.get(LIMITS, headers={"Authorization": clerk})
    allowed = client.get(LIMITS)

    assert refused.status_code == 403
    assert detail_of(refused)["o:errorCode"] == "INSUFFICIENT_PERMISSION"
    assert allowed.status_code == 200
    assert "accountConcurrencyLimit" in allowed.json()
    assert client.get(f"{RECORDS}/customer/1", headers={"Authorization": clerk}).status_code == 200


def test_registration_role_must_not_be_blank(tmp_path, rsa_keypair):
    with pytest.raises(RegistrationError, match="role"):
        register_certificate(
            tmp_path,
            CLIENT_ID,
            "cert-blank-role",
            rsa_keypair.cert_path.read_text(),
            ["rest_webservices"],
            role=" ",
        )


# --- C6: RSA keys of 3072 or 4096 bits only ------------------------------------------------------------


def test_rsa_keys_other_than_3072_or_4096_bits_are_refused():
    key = rsa.generate_private_key(public_exponent=65537, key_size=3584).public_key()

    with pytest.raises(RegistrationError, match="3584 bits"):
        check_public_key(key)


def test_cli_takes_the_company_language_and_the_role(tmp_path):
    from airflow_provider_netsuite.emulator.__main__ import build_parser

    serve = build_parser().parse_args(["serve", "--state-dir", str(tmp_path), "--company-language", "de"])
    register = ["register-certificate", "--state-dir", str(tmp_path), "--client-id", "c"]
    mapping = build_parser().parse_args(
        [*register, "--certificate-id", "k", "--certificate", "cert.pem", "--role", "clerk"]
    )

    assert serve.company_language == "de"
    assert build_parser().parse_args(["serve", "--state-dir", str(tmp_path)]).company_language == "en"
    assert mapping.role == "clerk"


# --- Audit 1: JWT headers PyJWT cannot parse -----------------------------------------------------------


def raw_assertion(private_key: str, header: dict, claims: dict) -> str:
    """Sign a JWT with a header PyJWT's encoder would refuse to write (PS256 over the raw segments)."""
    algorithm = jwt.get_algorithm_by_name("PS256")
    segments = [jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, claims)]
    signing_input = b".".join(segments)
    signature = algorithm.sign(signing_input, algorithm.prepare_key(private_key))
    return b".".join([signing_input, jwt.utils.base64url_encode(signature)]).decode()


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"kid": 123}, id="integer-kid"),
        pytest.param({"kid": [ADMIN_CERTIFICATE]}, id="list-kid"),
        pytest.param({"kid": ADMIN_CERTIFICATE, "crit": ["exp"]}, id="crit"),
        pytest.param({"kid": ADMIN_CERTIFICATE, "crit": "exp"}, id="crit-not-a-list"),
    ],
)
def test_jwt_header_pyjwt_cannot_parse_is_invalid_grant(client, rsa_keypair, header):
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "scope": ["rest_webservices"], "aud": TOKEN_URL, "iat": now, "exp": now + 300}
    assertion = raw_assertion(rsa_keypair.private_key, {"alg": "PS256", "typ": "JWT", **header}, claims)

    response = request_token(client, assertion)

    assert_invalid_grant(response, "InvalidJWT")
    assert assertion not in response.text


# --- Audit 2: only the account's host form ------------------------------------------------------------

FOREIGN_HOSTS = [
    "1234567-SB1.suitetalk.api.netsuite.com",
    "1234567_SB1.suitetalk.api.netsuite.com",
    "1234567_sb1.suitetalk.api.netsuite.com",
    "7654321.suitetalk.api.netsuite.com",
    "1234567-sb2.suitetalk.api.netsuite.com",
]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize("path", [SUITEQL, f"{RECORDS}/customer/1", LIMITS])
def test_data_request_on_another_host_form_is_invalid_login(client, host, path):
    headers = {"Prefer": "transient", "Host": host}
    if path == SUITEQL:
        response = client.post(path, json={"q": "SELECT id FROM currency"}, headers=headers)
    else:
        response = client.get(path, headers=headers)

    assert response.status_code == 401
    assert response.json() == INVALID_LOGIN_BODY
    assert response.headers["WWW-Authenticate"] == INVALID_LOGIN_CHALLENGE


@pytest.mark.parametrize("service", ["suitetalk", "restlets", "connect"])
def test_data_request_on_the_account_hosts_passes(client, service):
    host = f"1234567-sb1.{service}.api.netsuite.com"

    response = client.post(
        SUITEQL, json={"q": "SELECT id FROM currency"}, headers={"Prefer": "transient", "Host": f"{host}:443"}
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
@pytest.mark.parametrize("aud_base", ["http://{host}", f"https://{ACCOUNT_HOST}"])
def test_token_request_on_another_host_form_is_invalid_grant(client, rsa_keypair, host, aud_base):
    assertion = sign(rsa_keypair.private_key, aud=aud_base.format(host=host) + TOKEN_PATH)

    response = request_token(client, assertion, headers={"Host": host})

    assert_invalid_grant(response, "InvalidLogin")


@pytest.mark.parametrize("service", ["suitetalk", "restlets", "connect"])
def test_token_on_an_account_host_needs_an_account_audience(client, rsa_keypair, service):
    host = f"1234567-sb1.{service}.api.netsuite.com"
    own = sign(rsa_keypair.private_key, aud=f"https://1234567-sb1.{service}.api.netsuite.com{TOKEN_PATH}")
    plain_http = sign(rsa_keypair.private_key, aud=f"http://{host}{TOKEN_PATH}")

    assert request_token(client, own, headers={"Host": host}).status_code == 200
    assert_invalid_grant(request_token(client, plain_http, headers={"Host": host}), "InvalidAudience")


def test_token_on_loopback_accepts_its_own_url(client, rsa_keypair):
    assertion = sign(rsa_keypair.private_key, aud=f"http://127.0.0.1:8080{TOKEN_PATH}")

    response = request_token(client, assertion, headers={"Host": "127.0.0.1:8080"})

    assert response.status_code == 200, response.text


def test_accepted_audiences_leave_out_netsuite_request_hosts():
    account = {
        f"https://1234567-sb1.{service}.api.netsuite.com{TOKEN_PATH}"
        for service in ("suitetalk", "restlets", "connect")
    }

    assert auth.accepted_audiences("1234567_SB1", "http://127.0.0.1:8080/") == {
        *account,
        f"http://127.0.0.1:8080{TOKEN_PATH}",
    }
    assert auth.accepted_audiences("1234567_SB1", "http://1234567_SB1.suitetalk.api.netsuite.com/") == account
    assert auth.accepted_audiences("1234567_SB1", "https://Other.NetSuite.com/") == account


# --- Audit 3: any non-empty idempotency key -----------------------------------------------------------


@pytest.mark.parametrize("prefix", ["idem-test-1", "Nightly load 2026-01-06 #1", "x"])
def test_readable_idempotency_key_is_accepted_then_conflicts(client, prefix):
    headers = {**ASYNC, "X-NetSuite-Idempotency-Key": f"{prefix}-{uuid.uuid4().hex[:8]}"}

    first = client.post(f"{RECORDS}/customer", json={"companyName": "Idem"}, headers=headers)
    second = client.post(f"{RECORDS}/customer", json={"companyName": "Idem"}, headers=headers)

    assert [result.status_code for result in job_results(client, first)] == [204]
    assert second.status_code == 400
    assert second.headers["Location"] == first.headers["Location"]
    assert second.json() == IDEMPOTENCY_CONFLICT_BODY


def test_uuid_idempotency_key_is_one_key_in_any_case(client):
    key = str(uuid.uuid4())

    first = client.post(
        f"{RECORDS}/customer",
        json={"companyName": "Idem"},
        headers={**ASYNC, "X-NetSuite-Idempotency-Key": key},
    )
    second = client.post(
        f"{RECORDS}/customer",
        json={"companyName": "Idem"},
        headers={**ASYNC, "X-NetSuite-Idempotency-Key": key.upper()},
    )

    assert first.status_code == 202
    assert second.status_code == 400
    assert detail_of(second)["o:errorCode"] == "IDEMPOTENCY_ERROR"
    job_results(client, first)


# --- Audit 4: scope syntax -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("restlets rest_webservices", id="space-separated"),
        pytest.param("restlets,rest_webservices suite_analytics", id="commas-and-spaces"),
        pytest.param(" REST_WEBSERVICES\tRestlets ", id="upper-case-and-tab"),
        pytest.param(["SuiteAnalytics", "rest_webservices"], id="connect-sample-array"),
        pytest.param("suiteanalytics, Rest_WebServices", id="suiteanalytics-string"),
    ],
)
def test_scope_spellings_are_accepted(client, rsa_keypair, scope):
    assertion = sign(rsa_keypair.private_key, ALL_SCOPES_CERTIFICATE, scope=scope)

    response = request_token(client, assertion)

    assert response.status_code == 200, response.text
    token = f"Bearer {response.json()['access_token']}"
    assert client.get(LIMITS, headers={"Authorization": token}).status_code == 200


@pytest.mark.parametrize("scope", ["SuiteAnalytics", "rest_webservices suite_analytics", "RESTLETS"])
def test_normalised_scopes_must_still_be_granted(client, rsa_keypair, scope):
    assertion = sign(rsa_keypair.private_key, ADMIN_CERTIFICATE, scope=scope)

    assert_invalid_grant(request_token(client, assertion), "ScopeMismatched")


def test_requested_scopes_are_normalised():
    assert auth.requested_scopes("SuiteAnalytics  restlets,REST_WEBSERVICES") == [
        "suite_analytics",
        "restlets",
        "rest_webservices",
    ]
    assert auth.requested_scopes(" , ") == []
    assert auth.requested_scopes(["SuiteAnalytics"]) == ["suite_analytics"]
    assert auth.requested_scopes(5) == []


# --- Audit 5: every Prefer line, parameters cut off ----------------------------------------------------


@pytest.mark.parametrize(
    "prefer",
    [
        pytest.param([("Prefer", "respond-async"), ("Prefer", "transient")], id="two-lines"),
        pytest.param([("Prefer", "transient; x=1")], id="with-parameter"),
        pytest.param([("Prefer", "respond-async, TRANSIENT ;foo=bar")], id="list-upper-case"),
    ],
)
def test_suiteql_reads_every_prefer_line(client, prefer):
    response = client.post(SUITEQL, json={"q": "SELECT id FROM currency"}, headers=prefer)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("prefer", ["respond-async", "x=transient", "transient-ish", "return;transient"])
def test_suiteql_without_the_transient_preference_is_refused(client, prefer):
    response = client.post(SUITEQL, json={"q": "SELECT id FROM currency"}, headers={"Prefer": prefer})

    assert response.status_code == 400
    assert detail_of(response)["o:errorHeader"] == "Prefer"


# --- Audit 6: batch item keys --------------------------------------------------------------------------


def batch_write(client, method: str, items: list[dict]) -> list:
    """Send ``items`` to customers as one asynchronous collection request; each must succeed (204)."""
    response = client.request(method, f"{RECORDS}/customer", json={"items": items}, headers=COLLECTION)
    results = job_results(client, response)
    assert [result.status_code for result in results] == [204], results[0].text
    return results


def test_batch_patch_item_id_wins_and_external_id_is_not_written(client):
    record_id, external_id = customer(client)
    other_id, other_external_id = customer(client)
    items = [{"id": record_id, "externalId": other_external_id, "phone": "555-0142"}]

    batch_write(client, "PATCH", items)

    updated = client.get(f"{RECORDS}/customer/{record_id}").json()
    assert updated["phone"] == "555-0142"
    assert updated["externalId"] == external_id
    assert "phone" not in client.get(f"{RECORDS}/customer/{other_id}").json()


def test_batch_put_item_id_is_ignored(client):
    record_id, external_id = customer(client)
    other_id, _ = customer(client)
    items = [{"externalId": external_id, "id": other_id, "phone": "555-0143"}]

    results = batch_write(client, "PUT", items)

    assert results[0].headers["Location"].endswith(f"/customer/{record_id}")
    assert client.get(f"{RECORDS}/customer/{record_id}").json()["phone"] == "555-0143"
    assert "phone" not in client.get(f"{RECORDS}/customer/{other_id}").json()


# --- Audit 7: UNCONFIRMED choices are RuntimeConfig settings ------------------------------------------

UNCONFIRMED_DEFAULTS = {
    "clock_skew": 300,
    "max_assertion_validity": 3600,
    "suiteql_max_limit": 1000,
    "suiteql_max_results": 100_000,
    "require_transient": True,
    "omit_nulls": True,
    "date_format": "M/D/YYYY",
}


@pytest.fixture
def settings(client):
    """Change settings through the admin endpoint; restore the defaults afterwards."""

    def change(**values):
        response = client.post("/_emulator/config", json=values)
        assert response.status_code == 200, response.text

    yield change
    change(**UNCONFIRMED_DEFAULTS)


def suiteql_page(client, query: str, values: list | None = None, **params):
    body = {"q": query} if values is None else {"q": query, "params": values}
    return client.post(SUITEQL, params=params, json=body, headers={"Prefer": "transient"})


def test_unconfirmed_settings_keep_their_defaults(client):
    config = RuntimeConfig().as_dict()

    assert {name: config[name] for name in UNCONFIRMED_DEFAULTS} == UNCONFIRMED_DEFAULTS
    served = client.get("/_emulator/config").json()
    assert {name: served[name] for name in UNCONFIRMED_DEFAULTS} == UNCONFIRMED_DEFAULTS


@pytest.mark.parametrize(
    "change",
    [
        {"clock_skew": -1},
        {"max_assertion_validity": 0},
        {"suiteql_max_limit": 0},
        {"suiteql_max_results": 2.5},
        {"require_transient": "yes"},
        {"omit_nulls": 1},
        {"date_format": "YYYY/DD/MM"},
        {"date_format": ["M/D/YYYY"]},
    ],
)
def test_unconfirmed_settings_are_validated(client, change):
    with pytest.raises(ValueError, match=next(iter(change))):
        RuntimeConfig().update(change)
    assert client.post("/_emulator/config", json=change).status_code == 400


def test_clock_skew_is_configurable(client, rsa_keypair, settings):
    now = int(time.time())
    assertion = sign(rsa_keypair.private_key, iat=now + 120, exp=now + 400)
    assert request_token(client, assertion).status_code == 200

    settings(clock_skew=60)

    assert_invalid_grant(request_token(client, assertion), "TokenNotAcceptable")


def test_max_assertion_validity_is_configurable(client, rsa_keypair, settings):
    now = int(time.time())
    assertion = sign(rsa_keypair.private_key, iat=now, exp=now + 900)
    assert request_token(client, assertion).status_code == 200

    settings(max_assertion_validity=600)

    response = request_token(client, assertion)
    assert_invalid_grant(response, "TokenValidityTooBroad")
    assert "600 seconds" in response.json()["error_description"]


def test_suiteql_max_limit_is_configurable(client, settings):
    assert suiteql_page(client, "SELECT id FROM customer", limit=1500).status_code == 400

    settings(suiteql_max_limit=5)

    refused = suiteql_page(client, "SELECT id FROM customer", limit=6)
    assert refused.status_code == 400
    assert detail_of(refused)["o:errorQueryParam"] == "limit"
    assert suiteql_page(client, "SELECT id FROM customer", limit=5).json()["count"] == 5
    assert suiteql_page(client, "SELECT id FROM customer").json()["count"] == 5
    settings(suiteql_max_limit=2000)
    assert suiteql_page(client, "SELECT id FROM customer", limit=1500).status_code == 200


def test_suiteql_max_results_is_configurable(client, settings):
    settings(suiteql_max_results=10)

    refused = suiteql_page(client, "SELECT id FROM customer ORDER BY id", limit=5, offset=10)
    page = suiteql_page(client, "SELECT id FROM customer ORDER BY id", limit=5, offset=5).json()

    assert refused.status_code == 400
    assert detail_of(refused)["o:errorQueryParam"] == "offset"
    assert "less than 10;" in detail_of(refused)["detail"]
    assert page["totalResults"] > 10
    assert _links(page) == {"first": 0, "prev": 0, "last": 5, "self": 5}


def test_transient_preference_requirement_is_configurable(client, settings):
    query = {"q": "SELECT id FROM currency"}
    assert client.post(SUITEQL, json=query).status_code == 400

    settings(require_transient=False)

    assert client.post(SUITEQL, json=query).status_code == 200


def test_null_omission_is_configurable(client, settings):
    record_id, _ = customer(client)
    query = "SELECT id, email FROM customer WHERE id = ?"
    assert suiteql_page(client, query, [record_id]).json()["items"] == [{"links": [], "id": record_id}]

    settings(omit_nulls=False)

    items = suiteql_page(client, query, [record_id]).json()["items"]
    assert items == [{"links": [], "id": record_id, "email": None}]


def test_suiteql_date_format_is_configurable(client, settings):
    query = "SELECT id, trandate FROM transaction ORDER BY id"
    default = suiteql_page(client, query, limit=1).json()["items"][0]["trandate"]
    assert re.fullmatch(r"[1-9]\d?/[1-9]\d?/\d{4}", default)

    settings(date_format="YYYY-MM-DD")

    iso = suiteql_page(client, query, limit=1).json()["items"][0]["trandate"]
    assert datetime.strptime(iso, "%Y-%m-%d") == datetime.strptime(default, "%m/%d/%Y")
