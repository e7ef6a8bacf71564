"""Incremental windows ``[start, end)`` as SuiteQL predicates in the account's time zone.

Consecutive scheduled runs over ``[data_interval_start, data_interval_end)`` must cover time with no gap
and no overlap. The window is therefore half-open, keeps seconds, and is compared in the time zone in
which NetSuite stores and compares the column (the account's, as configured on the connection), with an
explicit ``TO_TIMESTAMP`` format because SuiteQL has no date literals and display formats are ambiguous.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_netsuite.core.suiteql import strip_order_by

SUITEQL_TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS"
_PYTHON_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _account_zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"timezone: {timezone!r} is not an IANA time zone name") from error


def _is_repeated(wall: datetime, zone: ZoneInfo) -> bool:
    """Tell whether a wall-clock time occurs twice (the hour repeated when clocks go back)."""
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() > second.utcoffset()


def account_wall_time(moment: datetime, timezone: str = "UTC") -> datetime:
    """Return the account's wall-clock time (naive, whole seconds) that stands for an aware instant.

    The mapping never goes backwards, so consecutive windows stay contiguous on the wall clock. When clocks
    go back, an hour of wall-clock time occurs twice and rows in it cannot be told apart; every instant of
    both passes maps to the start of the repeated hour, so all its rows belong to the window that contains
    the end of the repeated hour, which runs only after both passes have happened.

    :raises ValueError: for a naive datetime or an unknown time zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"window bound {moment!r} has no time zone: give an aware datetime")
    zone = _account_zone(timezone)
    wall = moment.astimezone(zone).replace(tzinfo=None, microsecond=0)
    if not _is_repeated(wall, zone):
        return wall

    # Find the first repeated second: ``low`` is before the repeated range, ``high`` inside it.
    repeat = wall.replace(tzinfo=zone, fold=0).utcoffset() - wall.replace(tzinfo=zone, fold=1).utcoffset()
    low, high = wall - repeat, wall
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
        if _is_repeated(middle, zone):
            high = middle
        else:
            low = middle
    return high


def to_account_time(moment: datetime, timezone: str = "UTC") -> str:
    """Format an aware datetime as the account's wall-clock time, ``YYYY-MM-DD HH:MM:SS``.

    Sub-second parts are cut for both neighbouring windows alike, so they still meet exactly.
    """
    return account_wall_time(moment, timezone).strftime(_PYTHON_TIMESTAMP_FORMAT)


def incremental_window(
    query: str, column: str, start: datetime, end: datetime, timezone: str = "UTC"
) -> tuple[str, list[str]]:
    """Restrict a SuiteQL query to rows whose ``column`` lies in ``[start, end)``.

    The query is wrapped: ``SELECT * FROM (<q>) WHERE <column> >= TO_TIMESTAMP(?, 'YYYY-MM-DD HH24:MI:SS')
    AND <column> < TO_TIMESTAMP(?, ...)``, with both bounds as parameters in the account's time zone. The
    query must therefore select ``column`` (under that name or alias) for the wrapper to see it. The
    query's own ``ORDER BY`` is dropped (an inner order means nothing; the extract orders by its key).

    NetSuite compares wall-clock values. When the account's clocks go back, the repeated hour is given
    whole to the window that contains its end (see :func:`account_wall_time`), so windows never overlap
    and never leave a gap on the wall clock; a window inside the repeated hour can be empty.

    :param query: the SuiteQL query; its own ``?`` parameters come first, then the two bounds.
    :param column: a date/time column selected by the query (plain name).
    :param start: aware datetime, inclusive.
    :param end: aware datetime, exclusive; must be after ``start``.
    :param timezone: the account's IANA time zone (``America/Los_Angeles``).
    :return: the wrapped query and the two bound parameters to append after the query's own.
    """
    if not _COLUMN.match(column or ""):
        raise ValueError(f"incremental column {column!r} is not a plain column name")
    low, high = to_account_time(start, timezone), to_account_time(end, timezone)
    if end <= start:
        raise ValueError(f"window end {end.isoformat()} is not after its start {start.isoformat()}")
    body, _ = strip_order_by(query)
    bound = f"TO_TIMESTAMP(?, '{SUITEQL_TIMESTAMP_FORMAT}')"
    # The user's own query; the column name is a checked identifier and the bounds are `?` parameters.
    wrapped = f"SELECT * FROM (\n{body}\n) WHERE {column} >= {bound} AND {column} < {bound}"  # noqa: S608
    return wrapped, [low, high]
