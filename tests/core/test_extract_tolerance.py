"""Extracts, the sensor condition and the connection test with pages NetSuite may shape differently.

``totalResults`` missing, null or not a number; ``hasMore`` null; an empty page that says ``hasMore``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_netsuite.core.suiteql import SuiteQLExtract, SuiteQLExtractError, page_total
from airflow_provider_netsuite.triggers.suiteql import SuiteQLCondition

try:
    from tests.core.fake_netsuite import FakeNetSuite, make_rows
except ImportError:  # tests/ is not a package: pytest put this directory on sys.path instead
    from fake_netsuite import FakeNetSuite, make_rows

QUERY = "SELECT id, companyname FROM customer"


class Reshaped:
    """Pass the pages of a :class:`FakeNetSuite` through ``fields`` (set, or drop when ``...``).

    Every call's ``limit`` and ``offset`` are kept in ``calls``; other attributes are the fake's.
    """

    def __init__(self, fake: FakeNetSuite, **fields: Any) -> None:
        self.fake = fake
        self.fields = fields
        self.calls: list[tuple[int, int]] = []

    def suiteql_page(self, query: str, *, params=None, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        self.calls.append((limit, offset))
        page = self.fake.suiteql_page(query, params=params, limit=limit, offset=offset)
        for name, value in self.fields.items():
            if value is ...:
                page.pop(name, None)
            else:
                page[name] = value
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fake, name)


class OnePage:
    """A client whose every page is ``page``."""

    def __init__(self, page: dict[str, Any]) -> None:
        self.page = page

    def suiteql_page(self, query: str, **kwargs: Any) -> dict[str, Any]:
        return dict(self.page)


def extract_ids(client: Any, **options: Any) -> list[int]:
    extract = SuiteQLExtract(client, QUERY, **options)
    return [int(row["id"]) for page in extract.pages() for row in page]


# -- totalResults present but null or not a number -------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ({"totalResults": 5}, 5),
        ({"totalResults": 0}, 0),
        ({"totalResults": "5"}, 5),
        ({"totalResults": 5.0}, 5),
        ({}, None),
        ({"totalResults": None}, None),
        ({"totalResults": "many"}, None),
        ({"totalResults": 5.5}, None),
        ({"totalResults": True}, None),
        ({"totalResults": -1}, None),
        ({"totalResults": [5]}, None),
    ],
)
def test_page_total_treats_null_and_non_numbers_as_missing(page, expected):
    assert page_total(page) == expected


@pytest.mark.parametrize("total", [None, "not a number"])
@pytest.mark.parametrize("strategy", ["auto", "offset", "key_ranges", "keyset"])
def test_extract_with_a_null_or_odd_total_returns_every_row_once(total, strategy):
    client = Reshaped(FakeNetSuite(make_rows(2_500)), totalResults=total)
    assert extract_ids(client, strategy=strategy) == list(range(1, 2_501))


def test_extract_with_a_null_total_switches_to_key_order_at_the_offset_cap():
    client = Reshaped(FakeNetSuite(make_rows(2_345), result_cap=1_000), totalResults=None)
    assert extract_ids(client, result_cap=1_000) == list(range(1, 2_346))


# -- hasMore null, and empty pages that say hasMore -------------------------------------------------------


def test_null_has_more_is_taken_as_missing():
    # Full pages go on, a short page ends: a null hasMore must not end the extract after the first page.
    client = Reshaped(FakeNetSuite(make_rows(2_500)), totalResults=..., hasMore=None)
    assert extract_ids(client) == list(range(1, 2_501))


@pytest.mark.parametrize("strategy", ["auto", "offset", "keyset"])
def test_empty_first_page_that_says_has_more_raises(strategy):
    client = OnePage({"links": [], "count": 0, "hasMore": True, "offset": 0, "items": []})
    with pytest.raises(SuiteQLExtractError, match="empty page at offset 0 while hasMore is true"):
        extract_ids(client, strategy=strategy)


def test_empty_later_page_that_says_has_more_raises_in_key_order():
    fake = FakeNetSuite(make_rows(2_500))
    client = Reshaped(fake, totalResults=None)

    def empty_second_page(query: str, *, params=None, limit: int = 1000, offset: int = 0):
        page = Reshaped.suiteql_page(client, query, params=params, limit=limit, offset=offset)
        if len(client.calls) == 2:
            page["items"] = []
        return page

    client.suiteql_page = empty_second_page
    with pytest.raises(SuiteQLExtractError, match="hasMore is true"):
        extract_ids(client, strategy="keyset")


def test_empty_page_without_has_more_ends_an_empty_result():
    client = OnePage({"links": [], "count": 0, "hasMore": False, "offset": 0, "items": []})
    assert extract_ids(client) == []


# -- the sensor and trigger condition --------------------------------------------------------------------


@pytest.mark.parametrize("total", [..., None, "n/a"])
def test_condition_without_a_usable_total_counts_rows(total):
    client = Reshaped(FakeNetSuite(make_rows(7)), totalResults=total)
    assert SuiteQLCondition(query=QUERY, min_rows=1).check(client) == (True, 1)
    client.calls.clear()

    assert SuiteQLCondition(query=QUERY, min_rows=5).check(client) == (True, 5)
    assert client.calls == [(1, 0), (5, 0)]

    met, rows = SuiteQLCondition(query=QUERY, min_rows=10).check(client)
    assert (met, rows) == (False, 7)


def test_condition_without_a_total_pages_up_to_min_rows():
    client = Reshaped(FakeNetSuite(make_rows(2_600)), totalResults=...)
    assert SuiteQLCondition(query=QUERY, min_rows=2_500).check(client) == (True, 2_600)
    assert client.calls == [(1, 0), (1_000, 0), (1_000, 1_000), (1_000, 2_000)]

    client.calls.clear()
    assert SuiteQLCondition(query=QUERY, min_rows=2_700).check(client) == (False, 2_600)


def test_condition_reads_a_numeric_total_with_one_request():
    client = Reshaped(FakeNetSuite(make_rows(7)))
    assert SuiteQLCondition(query=QUERY, min_rows=5).check(client) == (True, 7)
    assert client.calls == [(1, 0)]


def test_condition_on_an_empty_result_without_a_total():
    client = Reshaped(FakeNetSuite([]), totalResults=None)
    assert SuiteQLCondition(query=QUERY, min_rows=3).check(client) == (False, 0)


# -- the connection test ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "visible"),
    [
        ({"items": [{"links": [], "id": "1"}], "hasMore": False}, True),
        ({"items": [{"links": [], "id": "1"}], "totalResults": None}, True),
        ({"items": [], "totalResults": 0}, False),
        ({"items": [], "hasMore": False}, False),
    ],
)
def test_connection_test_counts_items_without_a_total(page, visible):
    from airflow_provider_netsuite.hooks.netsuite import NetSuiteHook

    hook = NetSuiteHook("netsuite_probe")
    hook.__dict__["client"] = OnePage(page)
    hook.__dict__["config"] = SimpleNamespace(
        account=SimpleNamespace(account_id="1234567_SB1"), auth_type="oauth2_client_credentials"
    )
    ok, message = hook.test_connection()
    assert ok
    assert ("no customer records visible" not in message) is visible
    assert "customer records visible" in message
