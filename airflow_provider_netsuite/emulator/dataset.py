"""The emulator's demo account: a deterministic SQLite database with NetSuite's SuiteQL tables.

Column names are SuiteQL's (lower-case). Storage conventions the SuiteQL engine relies on:

- booleans are the text ``'T'`` / ``'F'``;
- dates and datetimes are text ``'YYYY-MM-DD HH:MM:SS'`` in the account's time zone (dates at midnight), in
  columns declared ``NSDATE`` / ``NSDATETIME`` so the engine can render them in the user's date format;
- decimals are declared ``DECIMAL`` (numeric affinity), so ``12.50`` is stored and rendered as ``12.5``.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# The demo account's time zone; all stored dates and datetimes are local to it.
ACCOUNT_TIME_ZONE = "America/Los_Angeles"

CUSTOMER_COUNT = 5_000
ITEM_COUNT = 1_000
TRANSACTION_COUNT = 20_000
# Customers touched by one mass update share this lastmodifieddate, to expose unstable paging orders.
TIE_GROUP_SIZE = 3_000
TIE_LASTMODIFIED = "2026-03-02 04:00:00"
SECOND_TIE_GROUP_SIZE = 400
SECOND_TIE_LASTMODIFIED = "2026-06-15 23:30:00"

_WINDOW_START = datetime(2025, 1, 1)
_WINDOW_END = datetime(2026, 11, 30, 23, 59, 59)
_STAMP = "%Y-%m-%d %H:%M:%S"
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

FIELD_TYPES = frozenset({"string", "integer", "decimal", "boolean", "date", "datetime", "select"})


@dataclass(frozen=True)
class Sublist:
    """A sublist of a record type, stored as child rows of another table.

    :param table: table that holds the lines.
    :param parent_column: column of ``table`` that holds the parent record's internal ID.
    :param line_column: column numbering the lines within one parent.
    :param fields: column name to field type of a line.
    """

    table: str
    parent_column: str
    line_column: str
    fields: dict[str, str]
    references: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordType:
    """A REST record type and how it is stored.

    :param name: the REST record type name (camelCase, e.g. ``salesOrder``).
    :param table: the SuiteQL table that holds it.
    :param fields: column name (lower-case) to field type, one of :data:`FIELD_TYPES`.
    :param read_only: columns a client may not set (internal ID and system dates).
    :param references: ``select`` columns to the table they reference.
    :param discriminator: ``(column, value)`` that every row of this record type has, when the table is
        shared by several record types (transactions, items).
    :param sublists: sublist name (e.g. ``item``) to its storage.
    """

    name: str
    table: str
    fields: dict[str, str]
    read_only: frozenset[str] = frozenset({"id", "datecreated", "lastmodifieddate"})
    references: dict[str, str] = field(default_factory=dict)
    discriminator: tuple[str, str] | None = None
    sublists: dict[str, Sublist] = field(default_factory=dict)

    def field_type(self, name: str) -> str | None:
        """Return the type of a field named by REST property (``companyName``) or column, or ``None``."""
        return self.fields.get(name.lower())


_CUSTOMER_FIELDS = {
    "id": "integer",
    "entityid": "string",
    "externalid": "string",
    "companyname": "string",
    "firstname": "string",
    "lastname": "string",
    "email": "string",
    "phone": "string",
    "isperson": "boolean",
    "isinactive": "boolean",
    "balance": "decimal",
    "creditlimit": "decimal",
    "currency": "select",
    "subsidiary": "select",
    "datecreated": "datetime",
    "lastmodifieddate": "datetime",
}
_ITEM_FIELDS = {
    "id": "integer",
    "itemid": "string",
    "externalid": "string",
    "displayname": "string",
    "itemtype": "string",
    "baseprice": "decimal",
    "isinactive": "boolean",
    "datecreated": "datetime",
    "lastmodifieddate": "datetime",
}
_TRANSACTION_FIELDS = {
    "id": "integer",
    "tranid": "string",
    "externalid": "string",
    "type": "string",
    "entity": "select",
    "trandate": "date",
    "status": "string",
    "currency": "select",
    "foreigntotal": "decimal",
    "memo": "string",
    "createddate": "datetime",
    "lastmodifieddate": "datetime",
}
_TRANSACTION_LINE_FIELDS = {
    "transaction": "select",
    "id": "integer",
    "uniquekey": "integer",
    "item": "select",
    "quantity": "decimal",
    "rate": "decimal",
    "netamount": "decimal",
    "memo": "string",
    "linesequencenumber": "integer",
    "mainline": "boolean",
}
_ITEM_SUBLIST = Sublist(
    table="transactionline",
    parent_column="transaction",
    line_column="id",
    fields=_TRANSACTION_LINE_FIELDS,
    references={"item": "item", "transaction": "transaction"},
)
_TRANSACTION_READ_ONLY = frozenset({"id", "createddate", "lastmodifieddate", "type", "foreigntotal"})
_TRANSACTION_REFERENCES = {"entity": "customer", "currency": "currency"}
_ITEM_READ_ONLY = frozenset({"id", "datecreated", "lastmodifieddate", "itemtype"})

RECORD_TYPES: dict[str, RecordType] = {
    "customer": RecordType(
        "customer",
        "customer",
        _CUSTOMER_FIELDS,
        read_only=frozenset({"id", "datecreated", "lastmodifieddate", "balance"}),
        references={"currency": "currency", "subsidiary": "subsidiary"},
    ),
    "inventoryItem": RecordType(
        "inventoryItem", "item", _ITEM_FIELDS, _ITEM_READ_ONLY, discriminator=("itemtype", "InvtPart")
    ),
    "nonInventorySaleItem": RecordType(
        "nonInventorySaleItem",
        "item",
        _ITEM_FIELDS,
        _ITEM_READ_ONLY,
        discriminator=("itemtype", "NonInvtPart"),
    ),
    "serviceSaleItem": RecordType(
        "serviceSaleItem", "item", _ITEM_FIELDS, _ITEM_READ_ONLY, discriminator=("itemtype", "Service")
    ),
    **{
        name: RecordType(
            name,
            "transaction",
            _TRANSACTION_FIELDS,
            _TRANSACTION_READ_ONLY,
            references=_TRANSACTION_REFERENCES,
            discriminator=("type", code),
            sublists={"item": _ITEM_SUBLIST},
        )
        for name, code in (("salesOrder", "SalesOrd"), ("invoice", "CustInvc"), ("cashSale", "CashSale"))
    },
}

_SCHEMA = """
CREATE TABLE subsidiary (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, isinactive TEXT NOT NULL);
CREATE TABLE currency (id INTEGER PRIMARY KEY, name TEXT NOT NULL, symbol TEXT NOT NULL);
CREATE TABLE customer (
    id INTEGER PRIMARY KEY, entityid TEXT NOT NULL, externalid TEXT, companyname TEXT, firstname TEXT,
    lastname TEXT, email TEXT, phone TEXT, isperson TEXT NOT NULL, isinactive TEXT NOT NULL,
    balance DECIMAL, creditlimit DECIMAL, currency INTEGER, subsidiary INTEGER,
    datecreated NSDATETIME NOT NULL, lastmodifieddate NSDATETIME NOT NULL);
CREATE TABLE item (
    id INTEGER PRIMARY KEY, itemid TEXT NOT NULL, externalid TEXT, displayname TEXT, itemtype TEXT NOT NULL,
    baseprice DECIMAL, isinactive TEXT NOT NULL, datecreated NSDATETIME NOT NULL,
    lastmodifieddate NSDATETIME NOT NULL);
CREATE TABLE "transaction" (
    id INTEGER PRIMARY KEY, tranid TEXT NOT NULL, externalid TEXT, type TEXT NOT NULL, entity INTEGER,
    trandate NSDATE NOT NULL, status TEXT, currency INTEGER, foreigntotal DECIMAL, memo TEXT,
    createddate NSDATETIME NOT NULL, lastmodifieddate NSDATETIME NOT NULL);
CREATE TABLE transactionline (
    "transaction" INTEGER NOT NULL, id INTEGER NOT NULL, uniquekey INTEGER PRIMARY KEY, item INTEGER,
    quantity DECIMAL, rate DECIMAL, netamount DECIMAL, memo TEXT, linesequencenumber INTEGER,
    mainline TEXT NOT NULL);
"""

_INDEXES = """
CREATE UNIQUE INDEX customer_externalid ON customer (externalid);
CREATE INDEX customer_id ON customer (id);
CREATE INDEX customer_lastmodifieddate ON customer (lastmodifieddate);
CREATE UNIQUE INDEX item_externalid ON item (externalid);
CREATE INDEX item_lastmodifieddate ON item (lastmodifieddate);
CREATE UNIQUE INDEX transaction_externalid ON "transaction" (externalid);
CREATE INDEX transaction_lastmodifieddate ON "transaction" (lastmodifieddate);
CREATE INDEX transaction_entity ON "transaction" (entity);
CREATE UNIQUE INDEX transactionline_line ON transactionline ("transaction", id);
CREATE INDEX transactionline_item ON transactionline (item);
"""

_SUBSIDIARIES = [
    (1, "Honeycomb Holdings Inc.", "US", "F"),
    (2, "Honeycomb Europe GmbH", "DE", "F"),
    (3, "Honeycomb Japan K.K.", "JP", "F"),
]
_CURRENCIES = [
    (1, "US Dollar", "USD"),
    (2, "Euro", "EUR"),
    (3, "British pound", "GBP"),
    (4, "Japanese yen", "JPY"),
    (5, "Canadian Dollar", "CAD"),
]
_FIRST_NAMES = [
    "Ava",
    "Liam",
    "Noah",
    "Emma",
    "Olivia",
    "Mateo",
    "Sofía",
    "Jürgen",
    "Zoë",
    "Chloé",
    "Søren",
    "Agnieszka",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Élodie",
    "Björn",
    "Maria",
    "James",
    "Wei",
    "Ana",
]
_LAST_NAMES = [
    "Smith",
    "Johnson",
    "García",
    "Müller",
    "Ångström",
    "Nakamura",
    "Kowalski",
    "O'Brien",
    "Dubois",
    "Novák",
    "Rossi",
    "Andersson",
    "Patel",
    "Nguyen",
    "Fernández",
    "Schäfer",
    "Brown",
    "Lefèvre",
    "Silva",
    "Kim",
]
_COMPANY_WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Nordwind",
    "Sakura",
    "Fjord",
    "Atlas",
    "Zenith",
    "Pioneer",
    "Summit",
]
_COMPANY_SUFFIXES = ["Inc.", "LLC", "Ltd.", "GmbH", "S.A.", "K.K.", "Corp.", "& Co.", "AB", "S.r.l."]
# Names that must survive every layer intact (JSON, SQLite, CSV, Parquet).
_SPECIAL_COMPANIES = [
    "Zoë Ångström GmbH",
    "Société Générale de Café",
    "Müller & Söhne KG",
    "東京精密株式会社",
    "Łódź Trading Sp. z o.o.",
    "Ærø Fisk ApS",
    "São Paulo Comércio Ltda.",
    "Crème Brûlée, Inc.",
    'The "Quoted" Company',
    "O'Reilly Widgets",
]
_ITEM_TYPES = [("InvtPart", "Widget"), ("NonInvtPart", "Supply"), ("Service", "Service")]
_ITEM_NOUNS = ["Bracket", "Bolt", "Panel", "Sensor", "Cable", "Valve", "Gasket", "Hinge", "Filter", "Pump"]
_TRANSACTION_TYPES = [
    ("SalesOrd", "SO", ["A", "B", "D", "E", "F", "G", "H"]),
    ("CustInvc", "INV", ["A", "B"]),
    ("CashSale", "CS", ["B", "C"]),
]
_MEMOS = [
    None,
    None,
    None,
    "Rush order",
    "Net 30",
    "Résumé of Q3 deal",
    "Call before delivery",
    "Über-priority",
]


def _stamp(moment: datetime) -> str:
    return moment.strftime(_STAMP)


def _random_moment(rng: random.Random, start: datetime, end: datetime = _WINDOW_END) -> datetime:
    span = int((end - start).total_seconds())
    return start + timedelta(seconds=rng.randint(0, max(span, 0)))


def _decimal(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def _customer_rows(rng: random.Random) -> list[tuple]:
    rows = []
    tied = rng.sample(range(1, CUSTOMER_COUNT + 1), TIE_GROUP_SIZE + SECOND_TIE_GROUP_SIZE)
    tie_ids, second_tie_ids = set(tied[SECOND_TIE_GROUP_SIZE:]), set(tied[:SECOND_TIE_GROUP_SIZE])
    for customer_id in range(1, CUSTOMER_COUNT + 1):
        is_person = rng.random() < 0.2
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        if is_person:
            company = None
        elif customer_id <= len(_SPECIAL_COMPANIES):
            company = _SPECIAL_COMPANIES[customer_id - 1]
        else:
            company = (
                f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_COMPANY_WORDS)} {rng.choice(_COMPANY_SUFFIXES)}"
            )
        created = _random_moment(rng, _WINDOW_START, datetime(2026, 2, 28))
        if customer_id in second_tie_ids:
            modified = SECOND_TIE_LASTMODIFIED
        elif customer_id in tie_ids:
            modified = TIE_LASTMODIFIED
        else:
            modified = _stamp(_random_moment(rng, created))
        external_id = f"CUST-{customer_id:06d}" if rng.random() < 0.9 else None
        mailbox = unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode().lower()
        rows.append(
            (
                customer_id,
                f"C{100000 + customer_id}",
                external_id,
                company,
                first if is_person else None,
                last if is_person else None,
                f"{mailbox}.{customer_id}@example.com",
                f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                "T" if is_person else "F",
                "T" if rng.random() < 0.08 else "F",
                _decimal(rng, 0, 250_000) if rng.random() < 0.7 else 0,
                rng.choice([None, 5000, 10000, 25000.5, 100000]),
                rng.choice([1, 1, 1, 2, 3, 4, 5]),
                rng.choice([1, 1, 2, 3]),
                _stamp(created),
                modified,
            )
        )
    return rows


def _item_rows(rng: random.Random) -> list[tuple]:
    rows = []
    for item_id in range(1, ITEM_COUNT + 1):
        item_type, label = rng.choice(_ITEM_TYPES)
        noun = rng.choice(_ITEM_NOUNS)
        created = _random_moment(rng, _WINDOW_START, datetime(2025, 12, 31))
        rows.append(
            (
                item_id,
                f"{label.upper()}-{item_id:05d}",
                f"ITEM-{item_id:05d}" if rng.random() < 0.95 else None,
                f"{noun} {label} {rng.choice(['Mk I', 'Mk II', 'Pro', 'Lite', 'XL', 'Größe M'])}",
                item_type,
                _decimal(rng, 1, 2500),
                "T" if rng.random() < 0.05 else "F",
                _stamp(created),
                _stamp(_random_moment(rng, created)),
            )
        )
    return rows


def _transaction_rows(rng: random.Random) -> tuple[list[tuple], list[tuple]]:
    transactions, lines = [], []
    unique_key = 0
    for transaction_id in range(1, TRANSACTION_COUNT + 1):
        code, prefix, statuses = rng.choice(_TRANSACTION_TYPES)
        created = _random_moment(rng, _WINDOW_START, datetime(2026, 11, 1))
        trandate = created.replace(hour=0, minute=0, second=0)
        item_lines = []
        for line_number in range(1, rng.randint(1, 3) + 1):
            quantity = rng.randint(1, 40)
            rate = _decimal(rng, 1, 900)
            item_lines.append(
                (line_number, rng.randint(1, ITEM_COUNT), quantity, rate, round(quantity * rate, 2))
            )
        total = round(sum(line[4] for line in item_lines), 2)
        memo = rng.choice(_MEMOS)
        transactions.append(
            (
                transaction_id,
                f"{prefix}{10000 + transaction_id}",
                f"TXN-{transaction_id:07d}" if rng.random() < 0.85 else None,
                code,
                rng.randint(1, CUSTOMER_COUNT),
                _stamp(trandate),
                rng.choice(statuses),
                rng.choice([1, 1, 1, 2, 3]),
                total,
                memo,
                _stamp(created),
                _stamp(_random_moment(rng, created, created + timedelta(days=30))),
            )
        )
        unique_key += 1
        lines.append((transaction_id, 0, unique_key, None, None, None, total, memo, 0, "T"))
        for line_number, item_id, quantity, rate, amount in item_lines:
            unique_key += 1
            lines.append(
                (
                    transaction_id,
                    line_number,
                    unique_key,
                    item_id,
                    quantity,
                    rate,
                    amount,
                    None,
                    line_number,
                    "F",
                )
            )
    return transactions, lines


def _remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _insert_sql(table: str, columns: int) -> str:
    return f"INSERT INTO {table} VALUES ({', '.join('?' * columns)})"  # noqa: S608 - constant table names


def create_database(path: str, *, seed: int = 42) -> None:
    """Create the demo account's database at ``path``, replacing any file there.

    The same seed always gives identical data. The database is left in WAL mode so readers and a writer
    can work at once.

    :param path: file to create.
    :param seed: seed of the pseudo-random generator.
    """
    rng = random.Random(seed)
    customers = _customer_rows(rng)
    items = _item_rows(rng)
    transactions, lines = _transaction_rows(rng)
    _remove_database(path)
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(_SCHEMA)
        with connection:
            connection.executemany("INSERT INTO subsidiary VALUES (?, ?, ?, ?)", _SUBSIDIARIES)
            connection.executemany("INSERT INTO currency VALUES (?, ?, ?)", _CURRENCIES)
            connection.executemany(_insert_sql("customer", 16), customers)
            connection.executemany(_insert_sql("item", 9), items)
            connection.executemany(_insert_sql('"transaction"', 12), transactions)
            connection.executemany(_insert_sql("transactionline", 10), lines)
        connection.executescript(_INDEXES)
        connection.execute("ANALYZE")
    finally:
        connection.close()


_GENERATED_TABLE = """
CREATE TABLE {table} (
    id INTEGER PRIMARY KEY, entityid TEXT NOT NULL, externalid TEXT, companyname TEXT, email TEXT,
    isinactive TEXT NOT NULL, balance DECIMAL, startdate NSDATE, datecreated NSDATETIME NOT NULL,
    lastmodifieddate NSDATETIME NOT NULL)
"""
# Every column is a function of the row's id and a multiplicative hash of it, so the table is
# deterministic; lastmodifieddate takes 200,000 distinct values, so about 5 rows share each one.
_GENERATED_ROWS = """
WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < ?),
h(id, k) AS (SELECT id, (id * 2654435761) % 4294967296 FROM n)
INSERT INTO {table}
SELECT id,
       'BIG' || id,
       CASE WHEN k % 10 = 0 THEN NULL ELSE 'BIG-' || printf('%08d', id) END,
       CASE k % 7 WHEN 0 THEN 'Zoë Ångström GmbH ' || id ELSE 'Company ' || (k % 9973) || ' Ltd.' END,
       'contact' || id || '@example.com',
       CASE WHEN k % 13 = 0 THEN 'T' ELSE 'F' END,
       (k % 10000000) / 100.0,
       date('2024-01-01', '+' || (k % 1000) || ' days') || ' 00:00:00',
       datetime('2025-01-01', '+' || (k % 31536000) || ' seconds'),
       datetime('2025-01-01', '+' || (((k >> 7) % 200000) * 150) || ' seconds')
FROM h
"""


def generate_table(path: str, table: str, rows: int) -> None:
    """Create (or replace) a large customer-like table for paging and volume tests.

    ``id`` runs densely from 1 to ``rows``. One million rows take a few seconds.

    :param path: the emulator's database.
    :param table: lower-case table name; the demo account's own tables cannot be replaced.
    :param rows: number of rows, at least 0.
    :raises ValueError: for a bad table name or row count.
    """
    if not _TABLE_NAME.match(table) or table in _CORE_TABLES:
        raise ValueError(f"table name {table!r} is not allowed for a generated table")
    if rows < 0:
        raise ValueError("rows must be at least 0")
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(_GENERATED_TABLE.format(table=table))
        with connection:
            if rows:
                connection.execute(_GENERATED_ROWS.format(table=table), (rows,))
        # A narrow index on id makes counting a range of ids (key-ordered paging) cheap.
        connection.execute(f"CREATE INDEX {table}_id ON {table} (id)")
        connection.execute(f"CREATE INDEX {table}_lastmodifieddate ON {table} (lastmodifieddate)")
        connection.execute(f"CREATE UNIQUE INDEX {table}_externalid ON {table} (externalid)")
        connection.commit()
    finally:
        connection.close()


_CORE_TABLES = frozenset({"subsidiary", "currency", "customer", "item", "transaction", "transactionline"})
