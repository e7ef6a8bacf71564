"""The emulator's REST record service and async jobs, driven in-process through FastAPI's TestClient.

Every request carries a real bearer token, minted at the emulator's token endpoint from a client assertion
signed with raw PyJWT (never the provider's client code).
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jwt
import pytest
from fastapi.testclient import TestClient

from airflow_provider_netsuite.emulator import dataset, records
from airflow_provider_netsuite.emulator.dataset import ACCOUNT_TIME_ZONE
from airflow_provider_netsuite.emulator.server import create_app
from airflow_provider_netsuite.emulator.state import database_path, register_certificate
from tests.emulator.conftest import ASSERTION_TYPE, IDEMPOTENCY_CONFLICT_BODY

CLIENT_ID = "r" * 32 + "c9"
CERTIFICATE_ID = "cert-records-tests"
TOKEN_URL = "http://testserver/services/rest/auth/oauth2/v1/token"
RECORDS = "/services/rest/record/v1"
COLLECTION = "application/vnd.oracle.resource+json; type=collection"
MALFORMED = "The request could not be understood by the server due to malformed syntax."


@pytest.fixture(scope="module")
def app(tmp_path_factory, rsa_keypair):
    state_dir = tmp_path_factory.mktemp("records-emulator")
    dataset.create_database(str(database_path(state_dir)))
    register_certificate(
        state_dir, CLIENT_ID, CERTIFICATE_ID, rsa_keypair.cert_path.read_text(), ["rest_webservices"]
    )
    application = create_app(state_dir)
    if not any(getattr(route, "path", "").startswith(RECORDS) for route in application.routes):
        application.include_router(records.router)
    records.configure_record_failures(application.state, {"job_delay_ms": 150})
    return application


@pytest.fixture(scope="module")
def client(app, rsa_keypair):
    with TestClient(app) as test_client:
        now = int(time.time())
        claims = {
            "iss": CLIENT_ID,
            "scope": ["rest_webservices"],
            "aud": TOKEN_URL,
            "iat": now,
            "exp": now + 300,
        }
        assertion = jwt.encode(
            claims, rsa_keypair.private_key, algorithm="PS256", headers={"kid": CERTIFICATE_ID}
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        token = test_client.post(TOKEN_URL, data=form)
        assert token.status_code == 200, token.text
        test_client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield test_client


@pytest.fixture
def no_failures(app):
    yield
    records.configure_record_failures(app.state, {})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def detail_of(response) -> dict:
    body = response.json()
    assert body["status"] == response.status_code
    assert len(body["o:errorDetails"]) == 1
    return body["o:errorDetails"][0]


def suiteql(client, query: str, params: list | None = None) -> list[dict]:
    body = {"q": query, **({"params": params} if params else {})}
    response = client.post("/services/rest/query/v1/suiteql", json=body, headers={"Prefer": "transient"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wait_for_job(client, location: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location).json()
        if job["completed"] or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def task_results(client, job_location: str) -> list:
    listing = client.get(f"{job_location}/task").json()
    assert listing["count"] == len(listing["items"])
    results = []
    for item in listing["items"]:
        task_href = item["links"][0]["href"]
        task = client.get(task_href).json()
        assert task["completed"] is True
        assert task["startTime"].endswith("Z")
        assert task["endTime"].endswith("Z")
        result_href = next(link["href"] for link in task["links"] if link["href"].endswith("/result"))
        results.append(client.get(result_href))
    return results


# --- create, read, update, upsert, delete --------------------------------------------------------------


def test_create_answers_204_with_location_and_no_body(client):
    response = client.post(
        f"{RECORDS}/customer", json={"companyName": "Zoë Ångström GmbH", "creditLimit": 2500.5}
    )

    assert response.status_code == 204
    assert response.content == b""
    location = response.headers["Location"]
    assert location.startswith(f"http://testserver{RECORDS}/customer/")
    record_id = location.rsplit("/", 1)[1]
    assert record_id.isdigit()

    record = client.get(location).json()
    assert record["id"] == record_id
    assert record["companyName"] == "Zoë Ångström GmbH"
    assert record["creditLimit"] == 2500.5
    assert record["isInactive"] is False
    assert record["dateCreated"].endswith("Z")
    assert record["links"] == [{"rel": "self", "href": location}]


def test_id_in_a_create_body_is_refused(client):
    response = client.post(f"{RECORDS}/customer", json={"id": "5", "companyName": "Has An ID"})

    assert response.status_code == 400
    assert detail_of(response)["o:errorPath"] == "id"


def test_non_ascii_survives_the_round_trip_and_reaches_the_table(client, app):
    name = "東京精密株式会社 Łódź Crème Brûlée"
    external_id = unique("UTF8")
    response = client.put(f"{RECORDS}/customer/eid:{external_id}", json={"companyName": name})
    assert response.status_code == 204

    assert client.get(f"{RECORDS}/customer/eid:{external_id}").json()["companyName"] == name
    connection = sqlite3.connect(str(database_path(app.state.emulator.state_dir)))
    try:
        stored = connection.execute("SELECT companyname FROM customer WHERE externalid = ?", (external_id,))
        assert stored.fetchone()[0] == name
    finally:
        connection.close()


def test_upsert_creates_then_updates_the_same_record(client):
    external_id = unique("CID")
    url = f"{RECORDS}/customer/eid:{external_id}"

    created = client.put(url, json={"companyName": "First Name Ltd.", "email": "a@example.com"})
    updated = client.put(url, json={"companyName": "Second Name Ltd."})

    assert created.status_code == updated.status_code == 204
    assert created.headers["Location"] == updated.headers["Location"]
    record = client.get(url).json()
    assert record["companyName"] == "Second Name Ltd."
    assert record["email"] == "a@example.com"
    assert record["externalId"] == external_id
    assert client.get(created.headers["Location"]).json()["externalId"] == external_id


def test_patch_keeps_omitted_fields_and_null_deletes_a_field(client):
    location = client.post(
        f"{RECORDS}/customer", json={"companyName": "Patch Me", "email": "p@example.com", "phone": "+1 555"}
    ).headers["Location"]

    response = client.patch(location, json={"email": None, "companyName": "Patched"})

    assert response.status_code == 204
    assert response.headers["Location"] == location
    record = client.get(location).json()
    assert record["companyName"] == "Patched"
    assert record["phone"] == "+1 555"
    assert "email" not in record


def test_put_with_an_internal_id_is_refused(client):
    response = client.put(f"{RECORDS}/customer/1", json={"companyName": "Nope"})

    assert response.status_code == 400
    assert detail_of(response)["o:errorCode"] == "INVALID_REQUEST"


def test_delete_then_get_is_nonexistent(client):
    location = client.post(f"{RECORDS}/customer", json={"companyName": "Delete Me"}).headers["Location"]

    assert client.delete(location).status_code == 204
    missing = client.get(location)
    assert missing.status_code == 404
    assert detail_of(missing) == {"detail": "Record does not exist.", "o:errorCode": "NONEXISTENT_ID"}


def test_unknown_record_type_and_missing_record(client):
    assert client.get(f"{RECORDS}/notARecordType/1").status_code == 404
    missing = client.get(f"{RECORDS}/customer/eid:{unique('MISSING')}")
    assert missing.status_code == 404
    assert detail_of(missing)["o:errorCode"] == "NONEXISTENT_ID"


def test_requests_without_a_bearer_token_are_refused(app):
    with TestClient(app) as anonymous:
        response = anonymous.get(f"{RECORDS}/customer/1")
    assert response.status_code == 401
    assert detail_of(response)["o:errorCode"] == "INVALID_LOGIN"


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "status", "warned"),
    [("error", 400, False), ("Warning", 204, True), ("IGNORE", 204, False), (None, 204, True)],
)
def test_unknown_field_follows_property_name_validation(client, level, status, warned):
    headers = {"X-NetSuite-PropertyNameValidation": level} if level else {}
    body = {"companyName": "Name Check", "bogusField": 1}

    response = client.post(f"{RECORDS}/customer", json=body, headers=headers)

    assert response.status_code == status
    if status == 400:
        detail = detail_of(response)
        assert detail["o:errorCode"] == "NONEXISTENT_FIELD"
        assert detail["o:errorPath"] == "bogusField"
        return
    warnings = response.headers.get_list(records.WARNING_HEADER)
    assert bool(warnings) is warned
    assert all("bogusField" in warning for warning in warnings)
    assert "bogusField" not in client.get(response.headers["Location"]).json()


def test_wrong_value_type_is_invalid_content(client):
    response = client.post(f"{RECORDS}/customer", json={"companyName": "Typed", "creditLimit": "abc"})

    assert response.status_code == 400
    detail = detail_of(response)
    assert detail["o:errorCode"] == "INVALID_CONTENT"
    assert "Invalid Field Value abc for the following field: creditLimit" in detail["detail"]
    assert detail["o:errorPath"] == "creditLimit"


def test_bad_date_is_invalid_content(client):
    body = {"entity": {"id": "1"}, "tranDate": "2026-13-45"}

    response = client.post(f"{RECORDS}/salesOrder", json=body)

    assert response.status_code == 400
    assert detail_of(response)["o:errorPath"] == "tranDate"


def test_wrong_value_under_warning_is_dropped_with_a_warning(client):
    headers = {"X-NetSuite-PropertyValueValidation": "warning"}
    response = client.post(
        f"{RECORDS}/customer", json={"companyName": "Lenient", "creditLimit": "abc"}, headers=headers
    )

    assert response.status_code == 204
    assert any("creditLimit" in item for item in response.headers.get_list(records.WARNING_HEADER))
    assert "creditLimit" not in client.get(response.headers["Location"]).json()


def test_reference_to_a_nonexistent_record_always_fails(client):
    headers = {"X-NetSuite-PropertyValueValidation": "ignore"}
    body = {"entity": {"id": "99999999"}, "tranDate": "2026-05-01"}

    response = client.post(f"{RECORDS}/salesOrder", json=body, headers=headers)

    assert response.status_code == 400
    detail = detail_of(response)
    assert detail["o:errorCode"] == "INVALID_CONTENT"
    assert detail["o:errorPath"] == "entity"
    assert "99999999" in detail["detail"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_or_non_object_body_is_invalid_request(client, raw):
    response = client.post(f"{RECORDS}/customer", content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert detail_of(response) == {"detail": MALFORMED, "o:errorCode": "INVALID_REQUEST"}


def test_non_json_content_type_is_refused(client):
    response = client.post(f"{RECORDS}/customer", content=b"{}", headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert detail_of(response)["o:errorHeader"] == "Content-Type"


@pytest.mark.parametrize("external_id", ["A|B", "has space", "dot.ted", "ünï"])
def test_bad_external_id_is_refused_in_url_and_body(client, external_id):
    in_url = client.put(f"{RECORDS}/customer/eid:{quote(external_id)}", json={"companyName": "X"})
    in_body = client.post(f"{RECORDS}/customer", json={"companyName": "X", "externalId": external_id})

    assert in_url.status_code == 400
    assert in_body.status_code == 400
    assert detail_of(in_body)["o:errorPath"] == "externalId"


# --- sublists and SuiteQL ------------------------------------------------------------------------------


def test_record_written_here_is_visible_to_suiteql(client):
    before = int(suiteql(client, "SELECT COUNT(*) AS n FROM customer")[0]["n"])
    external_id = unique("SQL")

    client.put(f"{RECORDS}/customer/eid:{external_id}", json={"companyName": "Visible Über Co."})

    assert int(suiteql(client, "SELECT COUNT(*) AS n FROM customer")[0]["n"]) == before + 1
    rows = suiteql(client, "SELECT companyname FROM customer WHERE externalid = ?", [external_id])
    assert [row["companyname"] for row in rows] == ["Visible Über Co."]


def test_sales_order_item_sublist_appends_and_replaces(client):
    body = {
        "entity": {"id": "7"},
        "tranDate": "2026-05-01",
        "item": {
            "items": [
                {"item": {"id": "3"}, "quantity": 2, "rate": 10},
                {"item": "4", "quantity": 1, "rate": 5},
            ]
        },
    }
    location = client.post(f"{RECORDS}/salesOrder", json=body).headers["Location"]
    order_id = location.rsplit("/", 1)[1]

    def lines() -> list[dict]:
        return client.get(location, params={"expandSubResources": "true"}).json()["item"]["items"]

    order = client.get(location, params={"expandSubResources": "true"}).json()
    assert order["entity"]["id"] == "7"
    assert order["foreignTotal"] == 25
    assert [line["amount"] for line in lines()] == [20, 5]

    client.patch(location, json={"item": {"items": [{"item": {"id": "5"}, "quantity": 3, "rate": 1}]}})
    assert [line["item"]["id"] for line in lines()] == ["3", "4", "5"]

    replaced = client.patch(
        f"{location}?replace=item",
        json={"item": {"items": [{"item": {"id": "6"}, "quantity": 1, "rate": 2}]}},
    )
    assert replaced.status_code == 204
    assert [line["item"]["id"] for line in lines()] == ["6"]
    rows = suiteql(
        client,
        "SELECT item, netamount FROM transactionline WHERE transaction = ? AND mainline = 'F' ORDER BY id",
        [order_id],
    )
    assert [(row["item"], row["netamount"]) for row in rows] == [("6", "2")]
    assert client.get(location).json()["foreignTotal"] == 2

    bad = client.patch(f"{location}?replace=addressbook", json={})
    assert bad.status_code == 400
    assert detail_of(bad)["o:errorQueryParam"] == "replace"


# --- injected failures ---------------------------------------------------------------------------------


def test_injected_permanent_and_transient_failures(client, no_failures):
    locked, flaky = unique("LOCKED"), unique("FLAKY")
    settings = client.post(
        records.ADMIN_PATH, json={"permanent": [f"eid:{locked}"], "transient": {f"eid:{flaky}": 2}}
    )
    assert settings.status_code == 200

    refused = client.put(f"{RECORDS}/customer/eid:{locked}", json={"companyName": "Locked"})
    assert refused.status_code == 400
    assert detail_of(refused) == {"detail": records.LOCKED_DETAIL, "o:errorCode": "USER_ERROR"}
    assert client.put(f"{RECORDS}/customer/eid:{locked}", json={"companyName": "Locked"}).status_code == 400

    statuses = [
        client.put(f"{RECORDS}/customer/eid:{flaky}", json={"companyName": "Flaky"}).status_code
        for _ in range(3)
    ]
    assert statuses == [503, 503, 204]


def test_failures_spec_is_validated(client):
    assert client.post(records.ADMIN_PATH, json={"permanent": 5}).status_code == 400
    assert client.post(records.ADMIN_PATH, json={"unknown": []}).status_code == 400


# --- async jobs ----------------------------------------------------------------------------------------


def test_async_single_request_job_lifecycle(client):
    external_id = unique("ASYNC")
    response = client.put(
        f"{RECORDS}/customer/eid:{external_id}",
        json={"companyName": "Async Ltd."},
        headers={"Prefer": "respond-async"},
    )

    assert response.status_code == 202
    assert response.content == b""
    assert response.headers["Preference-Applied"] == "respond-async"
    location = response.headers["Location"]
    assert re.fullmatch(r"/services/rest/async/v1/job/\d+", location)  # a path, as in NetSuite's docs
    pending = client.get(location).json()
    assert pending["completed"] is False
    assert pending["progress"] == "pending"
    assert pending["task"]["links"][0]["href"] == f"http://testserver{location}/task"

    job = wait_for_job(client, location)
    assert job["completed"] is True
    assert job["progress"] == "succeeded"
    [result] = task_results(client, location)
    assert result.status_code == 204
    record = client.get(result.headers["Location"]).json()
    assert record["externalId"] == external_id
    assert record["companyName"] == "Async Ltd."


def test_async_batch_upsert_reports_each_record(client, no_failures):
    locked = unique("BLOCKED")
    records.configure_record_failures(client.app.state, {"permanent": [f"eid:{locked}"]})
    items = [
        {"externalId": unique("B1"), "companyName": "Batch One"},
        {"externalId": locked, "companyName": "Batch Locked"},
        {"externalId": unique("B3"), "companyName": "Batch Three", "creditLimit": "not a number"},
        {"externalId": unique("B4"), "companyName": "Batch Four"},
    ]

    response = client.put(
        f"{RECORDS}/customer",
        json={"items": items},
        headers={"Content-Type": COLLECTION, "Prefer": 'respond-async, batch-processing="parallel"'},
    )

    assert response.status_code == 202
    job = wait_for_job(client, response.headers["Location"])
    assert job["progress"] == "failed"
    results = task_results(client, response.headers["Location"])
    assert [result.status_code for result in results] == [204, 400, 400, 204]
    assert detail_of(results[1])["o:errorCode"] == "USER_ERROR"
    assert detail_of(results[2])["o:errorPath"] == "creditLimit"
    for item, result in zip([items[0], items[3]], [results[0], results[3]], strict=True):
        assert client.get(result.headers["Location"]).json()["externalId"] == item["externalId"]


def test_async_batch_patch_keys_items_by_id_then_external_id(client):
    first = client.post(f"{RECORDS}/customer", json={"companyName": "Key One"}).headers["Location"]
    external_id = unique("KEY2")
    second = client.put(f"{RECORDS}/customer/eid:{external_id}", json={"companyName": "Key Two"}).headers[
        "Location"
    ]
    items = [
        {"id": first.rsplit("/", 1)[1], "externalId": unique("IGNORED"), "email": "one@example.com"},
        {"externalId": external_id, "email": "two@example.com"},
        {"email": "nobody@example.com"},
    ]

    response = client.patch(
        f"{RECORDS}/customer",
        json={"items": items},
        headers={"Content-Type": COLLECTION, "Prefer": "respond-async"},
    )

    wait_for_job(client, response.headers["Location"])
    results = task_results(client, response.headers["Location"])
    assert [result.status_code for result in results] == [204, 204, 400]
    assert client.get(first).json()["email"] == "one@example.com"
    assert client.get(second).json()["email"] == "two@example.com"


def test_batch_limits_and_prefer_header(client):
    headers = {"Content-Type": COLLECTION, "Prefer": "respond-async"}
    too_many = [{"companyName": f"C{number}"} for number in range(101)]

    assert client.post(f"{RECORDS}/customer", json={"items": too_many}, headers=headers).status_code == 400
    no_prefer = client.post(
        f"{RECORDS}/customer", json={"items": too_many[:2]}, headers={"Content-Type": COLLECTION}
    )
    assert no_prefer.status_code == 400
    assert detail_of(no_prefer)["o:errorHeader"] == "Prefer"


def test_duplicate_idempotency_key_gives_the_conflict_body(client):
    key = str(uuid.uuid4())
    headers = {"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": key}

    first = client.post(f"{RECORDS}/customer", json={"companyName": "Idem"}, headers=headers)
    second = client.post(f"{RECORDS}/customer", json={"companyName": "Idem"}, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 400
    assert second.headers["Location"] == first.headers["Location"]
    assert second.json() == IDEMPOTENCY_CONFLICT_BODY
    blank_key = client.post(
        f"{RECORDS}/customer",
        json={"companyName": "Idem"},
        headers={"Prefer": "respond-async", "X-NetSuite-Idempotency-Key": " "},
    )
    assert blank_key.status_code == 400
    assert detail_of(blank_key)["o:errorHeader"] == "X-NetSuite-Idempotency-Key"
    wait_for_job(client, first.headers["Location"])


def test_unknown_job_is_nonexistent(client):
    assert client.get("/services/rest/async/v1/job/999999").status_code == 404


def test_dataset_records_render_with_records_api_types(client):
    [row] = suiteql(
        client,
        "SELECT id, entity, TO_CHAR(createddate, 'YYYY-MM-DD HH24:MI:SS') AS created FROM transaction "
        "WHERE type = 'SalesOrd' AND ROWNUM <= 1 ORDER BY id",
    )

    order = client.get(f"{RECORDS}/salesOrder/{row['id']}").json()

    assert order["id"] == row["id"]
    assert order["entity"]["id"] == row["entity"]
    assert order["entity"]["links"][0]["href"].endswith(f"/customer/{row['entity']}")
    assert isinstance(order["foreignTotal"], (int, float))
    assert len(order["tranDate"]) == 10
    local = datetime.strptime(row["created"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo(ACCOUNT_TIME_ZONE))
    assert order["createdDate"] == local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "type" not in order
    assert client.get(f"{RECORDS}/invoice/{row['id']}").status_code == 404


def test_async_get_and_delete_results(client):
    location = client.post(f"{RECORDS}/customer", json={"companyName": "Async Read"}).headers["Location"]

    read = client.get(location, headers={"Prefer": "respond-async"})
    assert read.status_code == 202
    wait_for_job(client, read.headers["Location"])
    [result] = task_results(client, read.headers["Location"])
    assert result.status_code == 200
    assert result.json()["companyName"] == "Async Read"

    deleted = client.delete(location, headers={"Prefer": "respond-async"})
    wait_for_job(client, deleted.headers["Location"])
    assert [item.status_code for item in task_results(client, deleted.headers["Location"])] == [204]
    assert client.get(location).status_code == 404


def test_duplicate_external_id_is_a_user_error(client):
    taken = unique("TAKEN")
    client.put(f"{RECORDS}/customer/eid:{taken}", json={"companyName": "Taken"})
    other = client.post(f"{RECORDS}/customer", json={"companyName": "Other"}).headers["Location"]

    created = client.post(f"{RECORDS}/customer", json={"companyName": "Dup", "externalId": taken})
    renamed = client.patch(other, json={"externalId": taken})

    assert created.status_code == renamed.status_code == 400
    assert detail_of(renamed)["o:errorCode"] == "USER_ERROR"
