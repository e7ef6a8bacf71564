"""Emulator behaviours a strict NetSuite client relies on: batch GET and DELETE, replaceSelectedFields,
keyed and non-keyed sublists, Accept-Language, SuiteQL links at the 100,000 cap, governance for
non-administrators and the accepted RSA key sizes.

Driven in-process through FastAPI's TestClient with real bearer tokens minted from assertions signed with
raw PyJWT (never the provider's client code).
"""

from __future__ import annotations

import sqlite3
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from airflow_provider_netsuite.emulator import dataset, records, server
from airflow_provider_netsuite.emulator.state import (
    RegistrationError,
    RuntimeConfig,
    check_public_key,
    database_path,
    register_certificate,
)

CLIENT_ID = "k" * 32 + "c7"
ADMIN_CERTIFICATE = "cert-conformance-admin"
CLERK_CERTIFICATE = "cert-conformance-clerk"
TOKEN_URL = "http://testserver/services/rest/auth/oauth2/v1/token"
RECORDS = "/services/rest/record/v1"
SUITEQL = "/services/rest/query/v1/suiteql"
LIMITS = "/services/rest/system/v1/governanceLimits"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, rsa_keypair):
    state_dir = tmp_path_factory.mktemp("conformance-emulator")
    dataset.create_database(str(database_path(state_dir)))
    pem = rsa_keypair.cert_path.read_text()
    register_certificate(state_dir, CLIENT_ID, ADMIN_CERTIFICATE, pem, ["rest_webservices"])
    register_certificate(state_dir, CLIENT_ID, CLERK_CERTIFICATE, pem, ["rest_webservices"], role="clerk")
    application = server.create_app(state_dir)
    records.configure_record_failures(application.state, {"job_delay_ms": 20})
    return application


def bearer(test_client: TestClient, private_key: str, certificate_id: str) -> str:
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "scope": ["rest_webservices"], "aud": TOKEN_URL, "iat": now, "exp": now + 300}
    assertion = jwt.encode(claims, private_key, algorithm="PS256", headers={"kid": certificate_id})
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    token = test_client.post(TOKEN_URL, data=form)
    assert token.status_code == 200, token.text
    return f"Bearer {token.json()['access_token']}"


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
