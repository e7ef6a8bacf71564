"""Lineage of NetSuite tasks as plain data, turned into OpenLineage objects only when that provider exists.

Naming follows OpenLineage's dataset conventions:

* a NetSuite table read by SuiteQL, or a record type written: namespace ``netsuite://<account ID>``, name
  the table or record type in lower case (``customer``, ``transactionline``, ``salesorder``);
* a file: namespace ``file`` and the absolute path for local files; ``<scheme>://<bucket>`` and the key for
  object storage (``s3://conn_id@bucket/key`` gives namespace ``s3://bucket``, name ``key``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Words after which a table name cannot be an alias.
_CLAUSE_WORDS = frozenset(
    {
        "WHERE", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "CROSS", "ON", "GROUP", "ORDER",
        "HAVING", "UNION", "MINUS", "INTERSECT", "EXCEPT", "FETCH", "OFFSET", "CONNECT", "START", "USING",
        "NATURAL", "SELECT", "FROM",
    }
)  # fmt: skip
_TOKEN = re.compile(
    r"""
      (?P<skip>'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/|\s+)     # literals, comments, blanks
    | (?P<quoted>"(?:[^"]|"")*")                         # a quoted identifier
    | (?P<word>[A-Za-z_][A-Za-z0-9_$#]*(?:\.[A-Za-z_][A-Za-z0-9_$#]*)*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class LineageDataset:
    """One dataset in OpenLineage terms: a namespace and a name."""

    namespace: str
    name: str


@dataclass(frozen=True)
class TaskLineage:
    """What a task read and wrote."""

    inputs: tuple[LineageDataset, ...] = field(default_factory=tuple)
    outputs: tuple[LineageDataset, ...] = field(default_factory=tuple)


def netsuite_namespace(account_id: str) -> str:
    """Return the OpenLineage namespace of a NetSuite account: ``netsuite://<account ID>``."""
    return f"netsuite://{account_id}"


def _tokens(query: str) -> Iterator[str]:
    for match in _TOKEN.finditer(query):
        if match.lastgroup == "skip":
            continue
        if match.lastgroup == "quoted":
            yield "Q:" + match.group()[1:-1].replace('""', '"')
        elif match.lastgroup == "word":
            yield "W:" + match.group()
        else:
            yield match.group()


def _table_name(token: str) -> str | None:
    if token.startswith("Q:"):
        return token[2:].lower()
    if token.startswith("W:") and token[2:].upper() not in _CLAUSE_WORDS:
        return token[2:].lower()
    return None


def suiteql_tables(query: str) -> list[str]:
    """Return the tables a SuiteQL query reads, in lower case and in order of first appearance.

    Tables are the names after ``FROM`` and ``JOIN``, including comma-separated lists (Oracle-style joins)
    and tables inside subqueries; aliases, literals and comments are ignored.
    """
    tokens = list(_tokens(query))
    found: list[str] = []
    # One flag per parenthesis level: has this level a SELECT? ``EXTRACT(YEAR FROM d)`` has none.
    selects = [False]
    index = 0
    while index < len(tokens):
        word = tokens[index].upper()
        index += 1
        if word == "(":
            selects.append(False)
        elif word == ")" and len(selects) > 1:
            selects.pop()
        elif word == "W:SELECT":
            selects[-1] = True
        elif word in ("W:FROM", "W:JOIN") and selects[-1]:
            index = _table_list(tokens, index, found, comma_list=word == "W:FROM")
    return found


def _table_list(tokens: list[str], index: int, found: list[str], *, comma_list: bool) -> int:
    """Add the tables named from ``index`` on to ``found``; return the index after them."""
    while index < len(tokens):
        name = _table_name(tokens[index])
        if name is None:
            return index  # a subquery "(" or a clause: its own tables are met later in the scan
        if name not in found:
            found.append(name)
        index = _after_alias(tokens, index + 1)
        if not (comma_list and index < len(tokens) and tokens[index] == ","):
            return index
        index += 1
    return index


def _after_alias(tokens: list[str], index: int) -> int:
    """Return the index after an optional ``[AS] alias`` at ``index``."""
    if index < len(tokens) and tokens[index].upper() == "W:AS":
        index += 1
    if index < len(tokens) and _table_name(tokens[index]) is not None:
        index += 1
    return index


def storage_dataset(path: str | os.PathLike | Any) -> LineageDataset:
    """Return the dataset of a file: a plain path, ``file://...`` or an object store URL or path object.

    :param path: a string, ``os.PathLike`` or ``ObjectStoragePath`` (its ``str()`` is its URL).
    """
    text = str(path) if hasattr(path, "protocol") else os.fspath(path)
    parts = urlsplit(text)
    if parts.scheme in ("", "file", "local") or len(parts.scheme) == 1:  # one letter: a Windows drive
        local = parts.path if parts.scheme in ("file", "local") else text
        return LineageDataset("file", os.path.abspath(local))
    bucket = parts.netloc.rpartition("@")[2]  # drop an Airflow connection ID (s3://conn_id@bucket/key)
    return LineageDataset(f"{parts.scheme}://{bucket}", parts.path.lstrip("/"))


def _unique(datasets: Iterable[LineageDataset]) -> tuple[LineageDataset, ...]:
    return tuple(dict.fromkeys(datasets))


def extract_lineage(account_id: str, query: str, output_path: Any | None) -> TaskLineage:
    """Return the lineage of a SuiteQL extract: the tables read and the file written.

    :param account_id: the canonical account ID (``1234567_SB1``).
    :param query: the SuiteQL query as run.
    :param output_path: the file written, or ``None``.
    """
    namespace = netsuite_namespace(account_id)
    inputs = _unique(LineageDataset(namespace, table) for table in suiteql_tables(query))
    outputs = (storage_dataset(output_path),) if output_path else ()
    return TaskLineage(inputs=inputs, outputs=outputs)


def record_write_lineage(
    account_id: str, record_type: str, source: Any | None = None, failure_report: Any | None = None
) -> TaskLineage:
    """Return the lineage of a record write: the input file read and the record type written.

    :param account_id: the canonical account ID.
    :param record_type: the REST record type written (``customer``, ``salesOrder``).
    :param source: the input file, or ``None`` for records passed as a list.
    :param failure_report: the failure report written, if any.
    """
    inputs = (storage_dataset(source),) if source else ()
    outputs = [LineageDataset(netsuite_namespace(account_id), record_type.lower())]
    if failure_report:
        outputs.append(storage_dataset(failure_report))
    return TaskLineage(inputs=inputs, outputs=_unique(outputs))


def to_operator_lineage(lineage: TaskLineage | None) -> Any | None:
    """Return ``lineage`` as an OpenLineage ``OperatorLineage``, or ``None`` without that provider.

    The OpenLineage classes are imported here, so the provider works when they are not installed.
    """
    if lineage is None:
        return None
    try:
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=item.namespace, name=item.name) for item in lineage.inputs],
        outputs=[Dataset(namespace=item.namespace, name=item.name) for item in lineage.outputs],
    )
