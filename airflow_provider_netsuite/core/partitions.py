"""Key-range partitions: split one large SuiteQL extract into pieces that separate workers can fetch.

One statistics query gives the lowest key, the highest key and the row count::

    {"count": 1, "hasMore": false, "offset": 0, "totalResults": 1,
     "items": [{"links": [], "lo": "1", "hi": "150000", "n": "150000"}]}

and the key space ``[lo, hi + 1)`` is cut into half-open ranges of equal width. Each partition is a plain,
JSON-safe dict, so it can travel through XCom to a mapped task::

    {"index": 0, "key_column": "id", "lower": 1, "upper": 37501}

The ranges are contiguous and do not overlap, so every row whose key lies in the statistics' bounds falls
in exactly one partition. Rows inserted later with a key beyond ``hi`` belong to no partition: plan and
extract in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_netsuite.core.suiteql import (
    check_key_columns,
    key_stats_query,
    range_predicate,
    strip_order_by,
)

PARTITION_KEYS = ("index", "key_column", "lower", "upper")


def _integer(value: Any, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ValueError(
            f"the {what} of the partition key is {value!r}, not an integer: key-range partitions need a "
            "single integer key column (such as id)"
        ) from None


def _check_sizing(partitions: int | None, rows_per_partition: int | None) -> None:
    if (partitions is None) == (rows_per_partition is None):
        raise ValueError("give exactly one of partitions and rows_per_partition")
    if partitions is not None and partitions < 1:
        raise ValueError("partitions must be at least 1")
    if rows_per_partition is not None and rows_per_partition < 1:
        raise ValueError("rows_per_partition must be at least 1")


def _partition_count(count: int, span: int, partitions: int | None, rows_per_partition: int | None) -> int:
    wanted = partitions if partitions is not None else math.ceil(count / rows_per_partition)
    return max(1, min(wanted, span))


def split_key_space(lower: int, upper: int, count: int, key_column: str = "id") -> list[dict[str, Any]]:
    """Cut ``[lower, upper)`` into at most ``count`` contiguous half-open ranges of equal width.

    :param lower: the first key of the space.
    :param upper: one past the last key of the space.
    :param count: the number of ranges wanted; fewer come back when the space is narrower.
    :param key_column: the key column, recorded in each partition.
    """
    span = upper - lower
    if span <= 0:
        return []
    width = math.ceil(span / max(1, min(count, span)))
    starts = range(lower, upper, width)
    return [
        {"index": index, "key_column": key_column, "lower": start, "upper": min(start + width, upper)}
        for index, start in enumerate(starts)
    ]


def plan_key_partitions(
    client: Any,
    query: str,
    key_column: str = "id",
    *,
    partitions: int | None = None,
    rows_per_partition: int | None = None,
    params: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """Plan key-range partitions of a SuiteQL query with one statistics request.

    Give either ``partitions`` (how many pieces) or ``rows_per_partition`` (about how many rows each;
    exact only when keys are evenly spread). An empty result gives an empty list.

    :param client: a :class:`~airflow_provider_netsuite.core.client.NetSuiteClient` (anything with
        ``suiteql_page``).
    :param query: the SuiteQL query to split; it must select ``key_column``.
    :param key_column: a single integer column, unique in the query's result.
    :param partitions: the number of partitions wanted.
    :param rows_per_partition: the rows wanted per partition.
    :param params: values for the query's ``?`` placeholders.
    :return: JSON-safe dicts ``{"index", "key_column", "lower", "upper"}``, ranges ``[lower, upper)``.
    :raises ValueError: for bad settings or a key that is not an integer.
    """
    _check_sizing(partitions, rows_per_partition)
    (key,) = check_key_columns([key_column])
    body, _ = strip_order_by(query)
    page = client.suiteql_page(key_stats_query(body, key), params=list(params) if params else None, limit=1)
    row = (page.get("items") or [{}])[0]
    count = int(row.get("n") or 0)
    if count == 0:
        return []
    low, high = _integer(row.get("lo"), "lowest value"), _integer(row.get("hi"), "highest value")
    wanted = _partition_count(count, high - low + 1, partitions, rows_per_partition)
    return split_key_space(low, high + 1, wanted, key)


def check_key_range(key_range: Mapping[str, Any], default_key: str) -> tuple[str, int, int]:
    """Validate a partition dict and return its key column and bounds.

    :param key_range: ``{"lower": ..., "upper": ...}`` and optionally ``"key_column"``.
    :param default_key: the key column to use when the dict names none.
    :raises ValueError: when bounds are missing, not integers, or empty.
    """
    if not isinstance(key_range, Mapping) or "lower" not in key_range or "upper" not in key_range:
        raise ValueError(f"key_range must be a dict with 'lower' and 'upper', not {key_range!r}")
    (key,) = check_key_columns([key_range.get("key_column") or default_key])
    lower, upper = _integer(key_range["lower"], "lower bound"), _integer(key_range["upper"], "upper bound")
    if lower >= upper:
        raise ValueError(f"key_range [{lower}, {upper}) is empty")
    return key, lower, upper


def key_range_query(
    query: str, key_range: Mapping[str, Any], default_key: str = "id"
) -> tuple[str, list[str]]:
    """Restrict a query to one partition: ``SELECT * FROM (<q>) WHERE k >= ? AND k < ?``.

    :param query: the SuiteQL query (its ``ORDER BY`` is dropped; extracts order by their key anyway).
    :param key_range: a partition from :func:`plan_key_partitions`.
    :param default_key: the key column when the partition names none.
    :return: the query and the two bound parameters, to append after the query's own parameters.
    """
    key, lower, upper = check_key_range(key_range, default_key)
    body, _ = strip_order_by(query)
    # The query is the user's own SuiteQL; the key is a checked identifier and the bounds are `?` params.
    wrapped = f"SELECT * FROM (\n{body}\n) WHERE {range_predicate(key)}"  # noqa: S608
    return wrapped, [str(lower), str(upper)]
