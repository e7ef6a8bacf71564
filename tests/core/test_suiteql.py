"""Unit tests of the SuiteQL paging engine against the in-memory fake."""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections import Counter

import pytest

from airflow_provider_netsuite.core.errors import NetSuiteAPIError, NetSuiteError
from airflow_provider_netsuite.core.suiteql import (
    SuiteQLExtract,
    SuiteQLExtractError,
    keyset_params,
    keyset_predicate,
    ordered_parallel,
    range_predicate,
    strip_order_by,
    wrap_query,
)

try:
    from tests.core.fake_netsuite import FakeNetSuite, make_rows
except ImportError:  # tests/ is not a package: pytest put this directory on sys.path instead
    from fake_netsuite import FakeNetSuite, make_rows

QUERY = "SELECT id, companyname FROM customer"


def extract_all(extract: SuiteQLExtract) -> list[dict]:
    return [row for page in extract.pages() for row in page]


def ids_of(rows: list[dict]) -> list[int]:
    return [int(row["id"]) for row in rows]


# -- query shaping ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected", "removed"),
    [
        ("SELECT id FROM customer ORDER BY id", "SELECT id FROM customer", True),
        ("SELECT id FROM customer order  by lastmodifieddate DESC;", "SELECT id FROM customer", True),
        ("SELECT id FROM customer;  ", "SELECT id FROM customer", False),
        ("SELECT 'x ORDER BY y' AS s FROM customer", "SELECT 'x ORDER BY y' AS s FROM customer", False),
        ("SELECT 'it''s ORDER BY' AS s FROM t", "SELECT 'it''s ORDER BY' AS s FROM t", False),
        ('SELECT "ORDER BY" FROM t', 'SELECT "ORDER BY" FROM t', False),
        ("SELECT id FROM t -- ORDER BY id", "SELECT id FROM t -- ORDER BY id", False),
        ("SELECT id FROM t /* ORDER BY id */", "SELECT id FROM t /* ORDER BY id */", False),
        (
            "SELECT id FROM (SELECT id FROM t ORDER BY id) WHERE ROWNUM < 5",
            "SELECT id FROM (SELECT id FROM t ORDER BY id) WHERE ROWNUM < 5",
            False,
        ),
        (
            "SELECT id FROM (SELECT id FROM t ORDER BY id) x ORDER BY x.id, 'a)'",
            "SELECT id FROM (SELECT id FROM t ORDER BY id) x",
            True,
        ),
        (
            "SELECT id FROM t ORDER BY id FETCH FIRST 10 ROWS ONLY",
            "SELECT id FROM t ORDER BY id FETCH FIRST 10 ROWS ONLY",
            False,
        ),
    ],
)
def test_strip_order_by(query, expected, removed):
    assert strip_order_by(query) == (expected, removed)


def test_strip_order_by_refuses_two_statements_and_open_quotes():
    with pytest.raises(ValueError, match="more than one statement"):
        strip_order_by("SELECT 1 FROM a; SELECT 2 FROM b")
    with pytest.raises(ValueError, match="unterminated"):
        strip_order_by("SELECT 'abc FROM t")


def test_wrapped_query_survives_trailing_line_comment():
    wrapped = wrap_query("SELECT id FROM t -- note", ("id",))
    assert wrapped.endswith("\n) ORDER BY id")


def test_composite_keyset_predicate_and_params():
    assert keyset_predicate(("a", "b")) == "(a > ?) OR (a = ? AND b > ?)"
    assert keyset_predicate(("a", "b", "c")) == "(a > ?) OR (a = ? AND b > ?) OR (a = ? AND b = ? AND c > ?)"
    assert keyset_params(["1", "2", "3"]) == ["1", "1", "2", "1", "2", "3"]


def test_key_columns_must_be_plain_identifiers():
    with pytest.raises(ValueError, match="plain column name"):
        SuiteQLExtract(FakeNetSuite([]), QUERY, key_columns=("id; DROP",))


# -- offset paging ---------------------------------------------------------------------------------------


def test_offset_paging_parallel_exactly_once_in_order():
    fake = FakeNetSuite(make_rows(25_500), latency=0.004, throttle_rate=0.1, seed=7)
    extract = SuiteQLExtract(fake, QUERY, max_concurrency=6)
    rows = extract_all(extract)
    assert ids_of(rows) == list(range(1, 25_501))
    assert extract.strategy == "offset"
    assert extract.stats.rows == 25_500
    assert extract.stats.pages == 26
    assert extract.stats.retries == fake.stats.retries > 0
    assert 1 < fake.stats.max_in_flight <= 6


def test_pool_has_one_thread_per_request_slot():
    # More threads than governor slots only hand freed slots from thread to thread, each handover waiting
    # for the GIL: the pool is the concurrency, and the governor caps it lower after 429s.
    fake = FakeNetSuite(make_rows(30_000), latency=0.004, parse_latency=0.002, max_concurrency=3, seed=5)
    extract = SuiteQLExtract(fake, QUERY, max_concurrency=3)
    assert ids_of(extract_all(extract)) == list(range(1, 30_001))
    assert fake.governor.peak_in_flight == 3
    assert fake.stats.max_in_flight == 3
    assert len({name for name in fake.threads if name.startswith("suiteql")}) == 3


def test_pool_stays_at_the_concurrency_without_a_governor():
    fake = FakeNetSuite(make_rows(20_000), latency=0.004, seed=5)
    extract_all(SuiteQLExtract(fake, QUERY, max_concurrency=3))
    assert fake.governor is None
    assert fake.stats.max_in_flight <= 3
    assert len({name for name in fake.threads if name.startswith("suiteql")}) <= 3


def test_offset_paging_user_params_are_passed_first():
    seen = []
    fake = FakeNetSuite(make_rows(10), on_request=lambda f, q, p, o: seen.append(p))
    extract_all(SuiteQLExtract(fake, "SELECT id FROM customer WHERE x = ?", params=["7"]))
    assert seen == [["7"]]


def test_ties_in_user_order_by_do_not_duplicate(caplog):
    rows = make_rows(3_000, extra=lambda i: {"lastmodifieddate": "1/6/2026"})
    query = "SELECT id, lastmodifieddate FROM customer ORDER BY lastmodifieddate"

    # The fault: paging the user's order as is duplicates and loses tied rows.
    naive = FakeNetSuite(rows, seed=3)
    naive_ids = [
        r["id"] for off in range(0, 3_000, 1000) for r in naive.suiteql_page(query, offset=off)["items"]
    ]
    assert len(set(naive_ids)) < 3_000

    caplog.set_level(logging.INFO)
    extract = SuiteQLExtract(FakeNetSuite(rows, seed=3), query, max_concurrency=3)
    assert ids_of(extract_all(extract)) == list(range(1, 3_001))
    assert "ordered by the unique key id" in caplog.text


def test_empty_page_while_rows_expected_raises_with_offset():
    fake = FakeNetSuite(make_rows(5_000), empty_offsets=(3000,))
    with pytest.raises(SuiteQLExtractError, match="offset 3000"):
        extract_all(SuiteQLExtract(fake, QUERY))


def test_empty_first_page_with_positive_total_raises():
    fake = FakeNetSuite(make_rows(5_000), empty_offsets=(0,))
    with pytest.raises(SuiteQLExtractError, match="empty page at offset 0"):
        extract_all(SuiteQLExtract(fake, QUERY))


def test_empty_result_is_fine():
    extract = SuiteQLExtract(FakeNetSuite([]), QUERY)
    assert extract_all(extract) == []
    assert extract.stats.rows == 0


def test_data_change_during_extract_raises():
    def grow(fake, query, params, offset):
        if offset == 2000 and len(fake.rows) == 4_000:
            fake.rows.append({"links": [], "id": "999999"})
            fake.invalidate()

    fake = FakeNetSuite(make_rows(4_000), on_request=grow)
    with pytest.raises(SuiteQLExtractError, match="changed"):
        extract_all(SuiteQLExtract(fake, QUERY, max_concurrency=1))


def test_duplicate_keys_across_pages_raise():
    rows = make_rows(2_000)
    rows[1000]["id"] = rows[999]["id"]  # a key that is not unique
    fake = FakeNetSuite(rows)
    with pytest.raises(SuiteQLExtractError, match="page boundary"):
        extract_all(SuiteQLExtract(fake, QUERY))


def test_missing_key_column_is_explained():
    rows = [{"links": [], "companyname": f"c{i}"} for i in range(10)]
    with pytest.raises(NetSuiteAPIError, match="must select these columns"):
        extract_all(SuiteQLExtract(FakeNetSuite(rows, unique=(("companyname",),)), QUERY))


def test_key_column_absent_from_items_raises_clear_error():
    class NoKeyClient(FakeNetSuite):
        def suiteql_page(self, query, **kwargs):
            return {
                "count": 1,
                "hasMore": False,
                "offset": 0,
                "totalResults": 1,
                "items": [{"links": [], "companyname": "Acme"}],
            }

    with pytest.raises(NetSuiteError, match="key_columns"):
        extract_all(SuiteQLExtract(NoKeyClient([]), QUERY))


def test_progress_and_summary_are_logged(caplog):
    caplog.set_level(logging.INFO)
    extract = SuiteQLExtract(FakeNetSuite(make_rows(3_000), latency=0.01), QUERY, progress_interval=0.0)
    extract_all(extract)
    assert "rows/s" in caplog.text
    assert "SuiteQL extract done: 3000 rows, 3 pages" in caplog.text


def test_stopping_early_cancels_pending_work():
    fake = FakeNetSuite(make_rows(50_000), latency=0.002)
    pages = SuiteQLExtract(fake, QUERY, max_concurrency=2).pages()
    next(pages)
    pages.close()
    assert fake.stats.requests <= 1 + 2 * 2 + 2  # first page + window + at most one refill per worker
    assert not [t for t in threading.enumerate() if t.name.startswith("suiteql")]


def test_ordered_parallel_propagates_errors_and_shuts_down():
    def task(i):
        if i == 3:
            raise RuntimeError("boom")
        return i

    results = []
    iterator = ordered_parallel((lambda i=i: task(i) for i in range(100)), 3, 6)
    results.extend(next(iterator) for _ in range(3))
    with pytest.raises(RuntimeError, match="boom"):
        next(iterator)
    assert results == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name.startswith("suiteql")]


# -- beyond 100,000 results ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_rows():
    return make_rows(150_000, start=10, step=3)


def test_auto_switches_to_key_ranges_above_the_cap(big_rows):
    fake = FakeNetSuite(big_rows, latency=0.0005, seed=1)
    extract = SuiteQLExtract(fake, QUERY, max_concurrency=4)
    ids = [int(row["id"]) for page in extract.pages() for row in page]
    assert extract.strategy == "key_ranges"
    assert ids == list(range(10, 10 + 3 * 150_000, 3))
    assert extract.stats.rows == 150_000


def test_key_ranges_start_after_the_planners_first_page(big_rows):
    ranges: list[tuple[int, int]] = []

    def record(fake, query, params, offset):
        if range_predicate("id") in query:
            ranges.append((int(params[0]), int(params[1])))

    fake = FakeNetSuite(big_rows, on_request=record)
    extract = SuiteQLExtract(fake, QUERY, max_concurrency=4)
    ids = ids_of(extract_all(extract))
    assert ids == list(range(10, 10 + 3 * 150_000, 3))
    first_page_last_key = 10 + 3 * 999
    assert min(start for start, _ in ranges) == first_page_last_key + 1  # no key fetched twice
    assert extract.stats.requests == 2 + len(ranges)  # the first page, the key statistics, the ranges


def test_forced_keyset_extracts_every_key_once(big_rows):
    extract = SuiteQLExtract(FakeNetSuite(big_rows), QUERY, strategy="keyset")
    ids = [int(row["id"]) for page in extract.pages() for row in page]
    assert extract.strategy == "keyset"
    assert ids == list(range(10, 10 + 3 * 150_000, 3))


def test_auto_uses_keyset_for_text_keys_above_the_cap():
    rows = [{"links": [], "tranid": f"SO{i:07d}"} for i in range(1_500)]
    fake = FakeNetSuite(rows, unique=(("tranid",),), result_cap=1_000)
    extract = SuiteQLExtract(
        fake, "SELECT tranid FROM transaction", key_columns=("tranid",), result_cap=1_000
    )
    got = [row["tranid"] for page in extract.pages() for row in page]
    assert extract.strategy == "keyset"
    assert got == sorted(r["tranid"] for r in rows)


def test_below_the_cap_stays_offset():
    extract = SuiteQLExtract(FakeNetSuite(make_rows(99_999)), QUERY)
    assert len(extract_all(extract)) == 99_999
    assert extract.strategy == "offset"


def test_total_of_exactly_the_cap_is_not_trusted_for_offset_paging():
    # totalResults 100,000 may be NetSuite's cap with more rows behind it: auto leaves offset paging.
    fake = FakeNetSuite(make_rows(100_500), total_cap=100_000)
    extract = SuiteQLExtract(fake, QUERY)
    assert ids_of(extract_all(extract)) == list(range(1, 100_501))
    assert extract.strategy == "key_ranges"


def test_forced_offset_with_capped_total_continues_by_key(caplog):
    fake = FakeNetSuite(make_rows(1_550), total_cap=1_000, result_cap=1_000)
    extract = SuiteQLExtract(fake, QUERY, strategy="offset", result_cap=1_000, page_size=100)
    caplog.set_level(logging.WARNING)
    assert ids_of(extract_all(extract)) == list(range(1, 1_551))
    assert extract.strategy == "offset"
    assert max(fake.offsets) == 900  # never at or past the cap
    assert any(keyset_predicate(("id",)) in q for q in fake.queries)
    assert "stops at offset 1000 with rows possibly left" in caplog.text


@pytest.mark.parametrize("omit", [(), ("totalResults",)], ids=["capped-total", "no-total"])
def test_has_more_false_at_the_offset_cap_still_continues_by_key(omit):
    # hasMore computed against a capped total says false at the cap with 550 rows behind it.
    fake = FakeNetSuite(
        make_rows(1_550), total_cap=1_000, has_more_within_cap=True, result_cap=1_000, omit=omit
    )
    extract = SuiteQLExtract(fake, QUERY, strategy="offset", result_cap=1_000, page_size=100)
    assert ids_of(extract_all(extract)) == list(range(1, 1_551))
    assert max(fake.offsets) == 900
    assert sum(keyset_predicate(("id",)) in q for q in fake.queries) == 6  # 5 full pages, 1 short


def test_exactly_the_cap_costs_one_empty_key_ordered_page():
    fake = FakeNetSuite(make_rows(1_000), omit=("totalResults",), result_cap=1_000)
    extract = SuiteQLExtract(fake, QUERY, result_cap=1_000, page_size=100)
    assert ids_of(extract_all(extract)) == list(range(1, 1_001))
    assert len(fake.queries) == 11
    assert keyset_predicate(("id",)) in fake.queries[-1]


def test_auto_with_capped_total_and_text_key_uses_keyset():
    rows = [{"links": [], "tranid": f"SO{i:07d}"} for i in range(1_200)]
    fake = FakeNetSuite(rows, unique=(("tranid",),), total_cap=1_000, result_cap=1_000)
    extract = SuiteQLExtract(
        fake, "SELECT tranid FROM transaction", key_columns=("tranid",), result_cap=1_000
    )
    assert [r["tranid"] for r in extract_all(extract)] == [r["tranid"] for r in rows]
    assert extract.strategy == "keyset"


# -- pages without totalResults or hasMore ---------------------------------------------------------------


def test_no_total_results_pages_sequentially_until_has_more_is_false():
    fake = FakeNetSuite(make_rows(2_500), omit=("totalResults",), max_concurrency=4)
    extract = SuiteQLExtract(fake, QUERY, max_concurrency=4)
    assert ids_of(extract_all(extract)) == list(range(1, 2_501))
    assert extract.strategy == "offset"
    assert fake.offsets == [0, 1000, 2000]


def test_no_total_results_nor_has_more_stops_at_a_short_page():
    fake = FakeNetSuite(make_rows(2_000), omit=("totalResults", "hasMore"))
    extract = SuiteQLExtract(fake, QUERY)
    assert ids_of(extract_all(extract)) == list(range(1, 2_001))
    assert fake.offsets == [0, 1000, 2000]  # the third page is empty: the end

    short = FakeNetSuite(make_rows(1_500), omit=("totalResults", "hasMore"))
    assert ids_of(extract_all(SuiteQLExtract(short, QUERY))) == list(range(1, 1_501))
    assert short.offsets == [0, 1000]


@pytest.mark.parametrize("omit", [("totalResults",), ("totalResults", "hasMore")])
def test_no_total_results_switches_to_key_order_at_the_offset_cap(omit):
    fake = FakeNetSuite(make_rows(2_345), omit=omit, result_cap=1_000)
    extract = SuiteQLExtract(fake, QUERY, result_cap=1_000, page_size=100)
    assert ids_of(extract_all(extract)) == list(range(1, 2_346))
    assert max(fake.offsets) == 900  # the fake refuses offsets at or past its cap anyway
    assert sum(keyset_predicate(("id",)) in q for q in fake.queries) >= 13


def test_no_total_results_empty_page_after_has_more_raises():
    fake = FakeNetSuite(make_rows(3_000), omit=("totalResults",), empty_offsets=(2000,))
    with pytest.raises(SuiteQLExtractError, match=r"empty page at offset 2000 .*hasMore"):
        extract_all(SuiteQLExtract(fake, QUERY))


def test_key_ranges_without_has_more_page_through_each_range():
    # 1,500 dense keys and a few far away: the first range holds 15 pages of 100.
    rows = make_rows(1_500) + make_rows(5, start=1_000_000)
    fake = FakeNetSuite(rows, omit=("hasMore",))
    extract = SuiteQLExtract(fake, QUERY, strategy="key_ranges", page_size=100)
    assert ids_of(extract_all(extract)) == sorted(ids_of(rows))
    assert extract.stats.rows == 1_505


def test_key_ranges_without_total_results_split_at_the_offset_cap():
    rows = make_rows(1_500) + make_rows(5, start=1_000_000)
    fake = FakeNetSuite(rows, omit=("totalResults",), result_cap=1_000)
    extract = SuiteQLExtract(fake, QUERY, strategy="key_ranges", result_cap=1_000, page_size=100)
    assert ids_of(extract_all(extract)) == sorted(ids_of(rows))
    assert max(fake.offsets) < 1_000


def test_forced_offset_above_the_cap_refuses(big_rows):
    with pytest.raises(ValueError, match="key_ranges"):
        extract_all(SuiteQLExtract(FakeNetSuite(big_rows), QUERY, strategy="offset"))


def test_composite_keys_keyset():
    rows = [
        {"links": [], "transaction": str(t), "line": str(line), "amount": f"{t}.{line}"}
        for t in range(1, 501)
        for line in range(1, 1 + (t % 7) + 1)
    ]
    fake = FakeNetSuite(rows, unique=(("transaction", "line"),), result_cap=1_000)
    extract = SuiteQLExtract(
        fake,
        "SELECT transaction, line, amount FROM transactionline",
        key_columns=("transaction", "line"),
        result_cap=1_000,
    )
    got = [(int(r["transaction"]), int(r["line"])) for page in extract.pages() for r in page]
    assert extract.strategy == "keyset"
    assert got == sorted((int(r["transaction"]), int(r["line"])) for r in rows)
    assert Counter(got).most_common(1)[0][1] == 1
    assert any("(transaction > ?) OR (transaction = ? AND line > ?)" in q for q in fake.queries)


def test_key_ranges_with_skewed_keys_split_ranges():
    # 1,500 dense keys and a few far away: one range holds more than the (lowered) cap and is halved.
    rows = make_rows(1_500) + make_rows(5, start=1_000_000)
    fake = FakeNetSuite(rows, result_cap=1_000)
    extract = SuiteQLExtract(fake, QUERY, strategy="key_ranges", result_cap=1_000, page_size=100)
    assert ids_of(extract_all(extract)) == sorted(ids_of(rows))


# -- the Airflow operator over the engine ----------------------------------------------------------------


@pytest.fixture
def operator_with_fake(monkeypatch):
    from types import SimpleNamespace

    from airflow_provider_netsuite.hooks import netsuite as hook_module
    from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator

    fakes = {}

    class FakeHook:
        def __init__(self, netsuite_conn_id, max_concurrency):
            self.config = SimpleNamespace(account_id="1234567_SB1", timezone="America/Los_Angeles")

        def get_conn(self):
            return fakes["client"]

    monkeypatch.setattr(hook_module, "NetSuiteHook", FakeHook)
    return NetSuiteSuiteQLOperator, fakes


def test_operator_writes_the_file_and_returns_a_summary(tmp_path, operator_with_fake):
    from datetime import datetime, timezone

    operator_class, fakes = operator_with_fake
    seen = []
    fakes["client"] = FakeNetSuite(make_rows(2_500), on_request=lambda f, q, p, o: seen.append(p))
    target = tmp_path / "out" / "customers.jsonl"
    operator = operator_class(
        task_id="extract",
        query=QUERY + " ORDER BY companyname",
        output_path=str(target),
        typed=True,
        incremental_column="lastmodifieddate",
    )
    context = {
        "data_interval_start": datetime(2026, 5, 1, 7, tzinfo=timezone.utc),
        "data_interval_end": datetime(2026, 5, 2, 7, tzinfo=timezone.utc),
    }
    summary = operator.execute(context)

    lines = target.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(range(1, 2_501))
    assert summary["rows"] == 2_500
    assert summary["bytes"] == target.stat().st_size
    assert summary["strategy"] == "offset"
    assert summary["format"] == "jsonl"
    assert seen[0] == ["2026-05-01 00:00:00", "2026-05-02 00:00:00"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["customers.jsonl"]


def test_operator_failure_leaves_the_existing_target_untouched(tmp_path, operator_with_fake):
    operator_class, fakes = operator_with_fake
    fakes["client"] = FakeNetSuite(make_rows(5_000), empty_offsets=(2000,))
    target = tmp_path / "customers.csv"
    target.write_text("previous run\n")
    operator = operator_class(task_id="extract", query=QUERY, output_path=str(target), output_format="csv")
    with pytest.raises(SuiteQLExtractError):
        operator.execute({})
    assert target.read_text() == "previous run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["customers.csv"]


def test_operator_reads_pages_with_the_heap_frozen_and_thaws_it_after(tmp_path, operator_with_fake):
    operator_class, fakes = operator_with_fake
    frozen_at_requests: list[int] = []
    fakes["client"] = FakeNetSuite(
        make_rows(5_000), on_request=lambda f, q, p, o: frozen_at_requests.append(gc.get_freeze_count())
    )
    operator = operator_class(task_id="extract", query=QUERY, output_path=str(tmp_path / "c.jsonl"))
    assert operator.execute({})["rows"] == 5_000
    assert frozen_at_requests
    assert min(frozen_at_requests) > 0
    assert gc.get_freeze_count() == 0

    fakes["client"] = FakeNetSuite(make_rows(5_000), empty_offsets=(2000,))
    with pytest.raises(SuiteQLExtractError):
        operator.execute({})
    assert gc.get_freeze_count() == 0  # thawed when the extract fails too


def test_operator_declares_templates():
    from airflow_provider_netsuite.operators.suiteql import NetSuiteSuiteQLOperator

    assert set(NetSuiteSuiteQLOperator.template_fields) == {
        "netsuite_conn_id",
        "query",
        "key_range",
        "output_path",
        "query_params",
    }
    assert NetSuiteSuiteQLOperator.template_ext == (".sql",)
    with pytest.raises(ValueError, match="compression"):
        NetSuiteSuiteQLOperator(
            task_id="x", query=QUERY, output_path="/tmp/x", output_format="parquet", compression="gzip"
        )
