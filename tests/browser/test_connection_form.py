"""The NetSuite connection form in Airflow's own UI, driven in Chromium against the emulator.

One scenario, as a data engineer lives it: sign in, add a NetSuite connection, see the form the provider
declares, point it at the emulator, save, press Test and see success; then put the wrong key in, press
Test again and see a failure that names the problem. Screenshots land in ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import re
import warnings

import pytest

from airflow_provider_netsuite.get_provider_info import get_provider_info
from tests.conftest import CLIENT_ID, make_keypair

pytestmark = [pytest.mark.browser, pytest.mark.airflow, pytest.mark.timeout(240)]

CONN_ID = "netsuite_browser"
FIELDS = get_provider_info()["connection-types"][0]["conn-fields"]
SECRET_FIELDS = {name for name, field in FIELDS.items() if field["schema"].get("format") == "password"}
HIDDEN_STANDARD_LABELS = ["Host", "Login", "Password", "Port", "Schema"]
# The expected formats a user should see next to the fields (the UI renders descriptions, not placeholders).
FORMAT_HINTS = {
    "account_id": "1234567_SB1",
    "private_key": "-----BEGIN PRIVATE KEY-----",
    "scopes": "rest_webservices,restlets",
    "timezone": "America/Los_Angeles",
    "base_url": "http://127.0.0.1:",
}


def _flatten(pem: str) -> str:
    """Return the PEM as a one-line input leaves it after a paste: line breaks become spaces."""
    return pem.strip().replace("\n", " ")


def _key_fragments(pem: str) -> list[str]:
    """Return 24-character pieces of a key's base64 body, to prove none of it reaches the page."""
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    return [body[i : i + 24] for i in range(0, len(body) - 24, 24)]


def _sign_in(page, server) -> None:
    page.goto(f"{server.base_url}/connections")
    page.get_by_label("Username").fill(server.username)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/connections")


def _field(page, name: str):
    """Return the form row (label, input, description) of the extra field ``name``."""
    return page.locator("[role=group]").filter(has=page.locator(f"[name=element_{name}]"))


def _open_netsuite_form(page, conn_id: str) -> None:
    page.get_by_role("button", name="Add Connection").click()
    page.get_by_label("Connection ID").fill(conn_id)
    page.get_by_label("Connection Type").fill("NetSuite")
    page.get_by_role("option", name="NetSuite", exact=True).click()
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    page.locator("[name=element_account_id]").wait_for()


def _toast(page, title: str) -> str:
    """Wait for the toast with ``title`` and return its whole text."""
    toast = page.get_by_role("status").filter(has_text=title).last
    toast.wait_for(state="visible", timeout=30_000)
    return toast.inner_text()


def _retry_port_zero(page) -> list[str]:
    """Work around Airflow 3.3.2's Test button on a connection that has no port, if the server needs it.

    The button posts ``port: 0`` for a NULL port and that release's API then answers 400 ("host or port to
    test differs"), for every connection type that hides the port. The request goes out unchanged first;
    only that exact 400 makes it go again with ``port: null``. Returns a list that records each retry.
    """
    retried: list[str] = []

    def handle(route):
        response = route.fetch()
        body = route.request.post_data_json or {}
        if response.status == 400 and "host or port" in response.text() and body.get("port") == 0:
            retried.append(route.request.url)
            response = route.fetch(post_data=json.dumps({**body, "port": None}))
        route.fulfill(response=response)

    page.route("**/api/v2/connections/test", handle)
    return retried


def test_form_shows_netsuite_fields(chromium_path, api_server, page):
    _sign_in(page, api_server)
    _open_netsuite_form(page, "netsuite_form_only")

    for name, field in FIELDS.items():
        row = _field(page, name)
        assert row.is_visible(), name
        assert field["label"] in row.inner_text(), name
    for name in FIELDS.keys() - {"auth_type"}:
        expected = "password" if name in SECRET_FIELDS else "text"
        assert page.locator(f"[name=element_{name}]").evaluate("e => e.type") == expected, name
    for name, hint in FORMAT_HINTS.items():
        assert hint in _field(page, name).inner_text(), name

    auth = _field(page, "auth_type")
    assert "OAuth 2.0 client credentials (M2M)" in auth.inner_text()
    auth.get_by_role("combobox").click()
    options = [option.inner_text() for option in page.get_by_role("option").all()]
    assert options == ["OAuth 2.0 client credentials (M2M)", "Token-Based Authentication (TBA)"]
    page.get_by_role("option", name="OAuth 2.0 client credentials (M2M)").click()

    page.get_by_role("button", name="Standard Fields", exact=True).click()
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_text("Description", exact=True).is_visible()
    for label in HIDDEN_STANDARD_LABELS:
        assert dialog.get_by_text(label, exact=True).count() == 0, label


def test_connection_test_succeeds_then_names_a_broken_key(
    chromium_path, api_server, page, emulator, registered_rsa, screenshots_dir
):
    retried = _retry_port_zero(page)
    _sign_in(page, api_server)
    _open_netsuite_form(page, CONN_ID)

    page.locator("[name=element_account_id]").fill(emulator.account_id)
    page.locator("[name=element_client_id]").fill(CLIENT_ID)
    page.locator("[name=element_certificate_id]").fill(registered_rsa.certificate_id)
    page.locator("[name=element_private_key]").fill(_flatten(registered_rsa.private_key))
    page.locator("[name=element_scopes]").fill("rest_webservices,restlets")
    page.locator("[name=element_base_url]").fill(emulator.base_url)
    assert "\n" not in page.locator("[name=element_private_key]").input_value()
    _screenshot_whole_dialog(page, screenshots_dir / "connection-form.png")

    page.get_by_role("button", name="Save").click()
    _toast(page, "Create Connection Request Submitted")
    _assert_stored_extras(api_server, CONN_ID, emulator, registered_rsa)

    success = _press_test(page, CONN_ID, "Test Connection Successful")
    assert f"Authenticated to NetSuite account {emulator.account_id}" in success
    page.wait_for_timeout(800)
    page.screenshot(path=screenshots_dir / "connection-test-success.png")

    # A paste cut short: the BEGIN line and half the body, no END line.
    truncated = _flatten(registered_rsa.private_key)[: len(registered_rsa.private_key) // 2]
    _replace_private_key(page, CONN_ID, truncated)
    failure = _press_test(page, CONN_ID, "Test Connection Failed")
    page.wait_for_timeout(800)  # let the toast finish fading in
    page.screenshot(path=screenshots_dir / "connection-test-failure.png")
    assert "private_key" in failure
    assert "PEM" in failure
    _assert_no_key_text(page, registered_rsa.private_key)
    _report_retries(retried)


def test_another_keys_pem_is_reported(chromium_path, api_server, page, emulator, registered_rsa, keys_dir):
    """Swap in a key whose certificate NetSuite does not know, right after a successful Test."""
    conn_id = "netsuite_wrong_key"
    _create_connection(api_server, conn_id, emulator, registered_rsa)
    retried = _retry_port_zero(page)
    _sign_in(page, api_server)
    assert "Authenticated" in _press_test(page, conn_id, "Test Connection Successful")

    other = make_keypair(keys_dir / "unregistered", "rsa:3072")
    _replace_private_key(page, conn_id, _flatten(other.private_key))
    failure = _press_test(page, conn_id, "Test Connection Failed")
    assert re.search(r"signature|certificate|invalid_grant|invalid_client", failure, re.IGNORECASE), failure
    _assert_no_key_text(page, other.private_key)
    _report_retries(retried)


def _screenshot_whole_dialog(page, path) -> None:
    """Screenshot the dialog with every field on it: grow the window to the dialog's height first."""
    size = page.viewport_size
    height = page.get_by_role("dialog").evaluate("e => e.scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": height + 160})
    page.get_by_role("dialog").evaluate("e => e.scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=path)
    page.set_viewport_size(size)


def _press_test(page, conn_id: str, title: str) -> str:
    row = page.get_by_role("row").filter(has_text=conn_id)
    row.get_by_role("button", name="Test Connection").click()
    return _toast(page, title)


def _replace_private_key(page, conn_id: str, key_text: str) -> None:
    page.get_by_role("row").filter(has_text=conn_id).get_by_role("button", name="Edit Connection").click()
    page.get_by_role("button", name="Extra Fields", exact=True).click()
    page.locator("[name=element_private_key]").fill(key_text)
    page.get_by_role("button", name="Save").click()
    page.get_by_role("dialog").wait_for(state="hidden")


def _assert_no_key_text(page, pem: str) -> None:
    content = page.content()
    assert not [fragment for fragment in _key_fragments(pem) if fragment in content]


def _report_retries(retried: list[str]) -> None:
    if retried:
        warnings.warn(
            "Airflow's Test button sent port 0 for a connection without a port; the test retried with "
            "port null (Airflow 3.3.2 rejects that request with 400).",
            stacklevel=2,
        )


def _create_connection(api_server, conn_id: str, emulator, keypair) -> None:
    extra = {
        "account_id": emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": keypair.certificate_id,
        "private_key": keypair.private_key,
        "base_url": emulator.base_url,
    }
    response = api_server.api(
        "POST",
        "connections",
        json={"connection_id": conn_id, "conn_type": "netsuite", "extra": json.dumps(extra)},
    )
    response.raise_for_status()


def _assert_stored_extras(api_server, conn_id: str, emulator, keypair) -> None:
    """Check through the REST API that the extras are stored under their own names, secrets redacted."""
    response = api_server.api("GET", f"connections/{conn_id}")
    response.raise_for_status()
    stored = response.json()
    extra = json.loads(stored["extra"])
    assert stored["conn_type"] == "netsuite"
    assert not [key for key in extra if key.startswith("extra__")], extra.keys()
    assert extra["account_id"] == emulator.account_id
    assert extra["client_id"] == CLIENT_ID
    assert extra["certificate_id"] == keypair.certificate_id
    assert extra["base_url"] == emulator.base_url
    assert extra["auth_type"] == "oauth2_client_credentials"
    assert extra["private_key"] == "***"
