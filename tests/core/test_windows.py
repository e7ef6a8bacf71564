"""Incremental windows: half-open, in the account's time zone, partitioning time across runs."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_netsuite.core.windows import account_wall_time, incremental_window, to_account_time

UTC = timezone.utc
LA = "America/Los_Angeles"
# Instants around both 2026 transitions in Los Angeles (8 March and 1 November) and a quiet period.
AROUND_DST = st.sampled_from(
    [
        datetime(2026, 3, 8, 9, tzinfo=UTC),
        datetime(2026, 11, 1, 8, tzinfo=UTC),
        datetime(2026, 6, 1, tzinfo=UTC),
    ]
)


def test_window_query_and_params_in_account_time():
    start = datetime(2026, 5, 1, 7, 0, 0, tzinfo=UTC)
    query, params = incremental_window(
        "SELECT id, lastmodifieddate FROM customer ORDER BY lastmodifieddate",
        "lastmodifieddate",
        start,
        start + timedelta(hours=1),
        LA,
    )
    assert params == ["2026-05-01 00:00:00", "2026-05-01 01:00:00"]
    assert query == (
        "SELECT * FROM (\nSELECT id, lastmodifieddate FROM customer\n) WHERE lastmodifieddate >= "
        "TO_TIMESTAMP(?, 'YYYY-MM-DD HH24:MI:SS') AND lastmodifieddate < "
        "TO_TIMESTAMP(?, 'YYYY-MM-DD HH24:MI:SS')"
    )


def test_seconds_are_kept():
    assert to_account_time(datetime(2026, 1, 1, 12, 0, 59, 999_999, tzinfo=UTC)) == "2026-01-01 12:00:59"


def test_naive_and_inverted_windows_are_refused():
    start = datetime(2026, 5, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no time zone"):
        incremental_window("SELECT id FROM t", "d", start.replace(tzinfo=None), start + timedelta(hours=1))
    with pytest.raises(ValueError, match="not after"):
        incremental_window("SELECT id FROM t", "d", start, start)
    with pytest.raises(ValueError, match="IANA"):
        incremental_window("SELECT id FROM t", "d", start, start + timedelta(hours=1), "Mars/Olympus")
    with pytest.raises(ValueError, match="plain column"):
        incremental_window("SELECT id FROM t", "d; DROP", start, start + timedelta(hours=1))


def test_repeated_hour_goes_whole_to_the_window_containing_its_end():
    # 1 November 2026, Los Angeles: 01:00-02:00 happens twice (08:00Z-09:00Z PDT, then 09:00Z-10:00Z PST).
    bounds = [to_account_time(datetime(2026, 11, 1, h, tzinfo=UTC), LA) for h in (7, 8, 9, 10)]
    assert bounds == [
        "2026-11-01 00:00:00",
        "2026-11-01 01:00:00",
        "2026-11-01 01:00:00",
        "2026-11-01 02:00:00",
    ]


@settings(max_examples=200, deadline=None)
@given(
    base=AROUND_DST,
    steps=st.lists(st.integers(min_value=1, max_value=3 * 3600), min_size=1, max_size=12),
    zone=st.sampled_from([LA, "UTC", "Europe/Berlin", "Australia/Lord_Howe"]),
    probes=st.lists(st.integers(min_value=0, max_value=12 * 3 * 3600), min_size=1, max_size=20),
)
def test_consecutive_windows_partition_time(base, steps, zone, probes):
    instants = [base - timedelta(hours=2)]
    for step in steps:
        instants.append(instants[-1] + timedelta(seconds=step))
    windows = [
        incremental_window("SELECT id, d FROM t", "d", a, b, zone)[1] for a, b in itertools.pairwise(instants)
    ]

    # Contiguous on the wall clock: each window starts where the previous one ended, never going back.
    for previous, following in itertools.pairwise(windows):
        assert previous[1] == following[0]
    assert all(low <= high for low, high in windows)

    # A row written at any instant of the covered span is found by exactly one window, and that window's
    # run (at its end instant) happens after the row was written.
    for offset in probes:
        moment = instants[0] + timedelta(seconds=offset % int((instants[-1] - instants[0]).total_seconds()))
        wall = moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
        hits = [i for i, (low, high) in enumerate(windows) if low <= wall < high]
        if account_wall_time(instants[-1], zone).strftime("%Y-%m-%d %H:%M:%S") <= wall:
            assert hits == []  # in the repeated hour past the last window's end: the next run takes it
            continue
        assert len(hits) == 1
        assert instants[hits[0] + 1] > moment
