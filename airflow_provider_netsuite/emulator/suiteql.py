"""SuiteQL for the emulator: Oracle-flavoured queries checked, rewritten and run on SQLite.

A query is tokenised and parsed with sqlglot (Oracle dialect), checked against SuiteQL's rules (SELECT only,
no ``WITH``, no date literals and no date compared with plain text, ``||`` and not ``+`` for text, ANSI
and Oracle joins not mixed, no square brackets, at most 1000 ``IN`` arguments, known tables), rewritten
for SQLite and run there. Oracle functions SQLite lacks (``TO_CHAR``, ``TO_DATE``, ``TO_TIMESTAMP``,
``SYSDATE``, Oracle's null-tolerant ``||``) are SQLite functions registered on each connection, and so
are ``+`` and ``-``: they add numbers (text only when it is a number) or a date and days, the operands
typed from the query. ``BUILTIN.DF`` becomes a lookup of the referenced record's name.

Values come back as NetSuite renders them: strings, ``T``/``F`` booleans, dates in the user's date format
with the time dropped, null values left out, keys in lower case and ``"links": []`` first in every item.
Whether NetSuite leaves nulls out or sends ``null`` is UNCONFIRMED, and the date format is a user
preference: both are engine parameters (``omit_nulls``, default true; ``date_format``, default
``M/D/YYYY``), set by the server from ``RuntimeConfig.omit_nulls`` and ``RuntimeConfig.date_format``.

Emulator choices where NetSuite's behaviour is not documented: an unaliased expression is named ``expr1``,
``expr2`` ... in order; rows that tie on a top-level ``ORDER BY`` come in a new random order on each
request (NetSuite's order of tied rows is not stable between pages); a ``ROWNUM`` limit is applied after
the query's own ``ORDER BY`` (Oracle applies it before sorting); errors without a documented wording (bad
format strings, wrong parameter counts) use the documented prefix followed by the emulator's own words.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp
from sqlglot.dialects.oracle import Oracle
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

from airflow_provider_netsuite.emulator.dataset import ACCOUNT_TIME_ZONE

log = logging.getLogger(__name__)

DETAIL_PREFIX = "Invalid search query. Detailed unprocessed description follows. "
UNSUPPORTED_SEARCH = DETAIL_PREFIX + "Invalid or unsupported search."
MAX_IN_ARGUMENTS = 1000
_CACHE_SIZE = 512
_DAY_CACHE_SIZE = 100_000

# Oracle functions SQLite lacks, renamed before parsing so sqlglot keeps their format strings verbatim.
_RENAMED_FUNCTIONS = {"TO_CHAR": "NS_TO_CHAR", "TO_DATE": "NS_TO_DATE", "TO_TIMESTAMP": "NS_TO_TIMESTAMP"}
_DATE_FUNCTIONS = frozenset({"NS_TO_DATE", "NS_TO_TIMESTAMP", "NS_SYSDATE", "NS_DATE_ADD"})
# Text Oracle converts to a number for arithmetic.
_NUMBER_TEXT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
# Arguments sqlglot sets on an ANSI join (a comma join has none of them).
_ANSI_JOIN_PARTS = ("side", "kind", "on", "using", "method")
_FORBIDDEN_NODES = (exp.With, exp.CTE, exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Command)
_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")
_STAMP_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2}))?$")

# Display value of a reference column for BUILTIN.DF: column name -> (table, SQL of the display value).
_DISPLAY_VALUES = {
    "entity": (
        "customer",
        "COALESCE(df.companyname, TRIM(COALESCE(df.firstname, '') || ' ' || "
        "COALESCE(df.lastname, '')), df.entityid)",
    ),
    "item": ("item", "df.itemid"),
    "currency": ("currency", "df.name"),
    "subsidiary": ("subsidiary", "df.name"),
    "transaction": ("transaction", "df.tranid"),
}

# User date-format preferences the engine can render, NetSuite's notation.
DATE_FORMATS: dict[str, Callable[[str, str, str], str]] = {
    "M/D/YYYY": lambda y, m, d: f"{int(m)}/{int(d)}/{y}",
    "D/M/YYYY": lambda y, m, d: f"{int(d)}/{int(m)}/{y}",
    "MM/DD/YYYY": lambda y, m, d: f"{m}/{d}/{y}",
    "DD/MM/YYYY": lambda y, m, d: f"{d}/{m}/{y}",
    "DD.MM.YYYY": lambda y, m, d: f"{d}.{m}.{y}",
    "YYYY-MM-DD": lambda y, m, d: f"{y}-{m}-{d}",
}


class SuiteQLError(Exception):
    """A query NetSuite would refuse, with the ``detail`` and ``o:errorCode`` of its error body.

    :param detail: the ``detail`` text, worded as NetSuite words it.
    :param status: HTTP status of the response.
    :param code: the ``o:errorCode``.
    """

    def __init__(self, detail: str, status: int = 400, code: str = "INVALID_PARAMETER") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code


class _FunctionError(Exception):
    """Raised inside a registered SQLite function; carries the ``detail`` for the client."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Stamp(str):
    """Raw text of a date or datetime column, marked so the engine renders it in the user's format."""

    __slots__ = ()


# Called by SQLite for every date cell: ``_Stamp(raw, encoding="utf-8")`` decodes in C, with no Python frame.
_to_stamp = functools.partial(_Stamp, encoding="utf-8")

sqlite3.register_converter("NSDATE", _to_stamp)
sqlite3.register_converter("NSDATETIME", _to_stamp)


# --- Oracle format models -------------------------------------------------------------------------------

_MODEL_TOKEN = re.compile(
    r'"[^"]*"|YYYY|YY|MONTH|MON|MM|MI|DDD|DD|DAY|DY|HH24|HH12|HH|SS|FF[1-9]?|AM|PM|FM|[-/,.;: ]',
    re.IGNORECASE,
)
_MONTHS = [
    "JANUARY",
    "FEBRUARY",
    "MARCH",
    "APRIL",
    "MAY",
    "JUNE",
    "JULY",
    "AUGUST",
    "SEPTEMBER",
    "OCTOBER",
    "NOVEMBER",
    "DECEMBER",
]
_DAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


def _model_tokens(model: str) -> list[str]:
    """Split an Oracle date format model into its elements; raise for anything unknown."""
    tokens, position = [], 0
    while position < len(model):
        match = _MODEL_TOKEN.match(model, position)
        if not match:
            raise _FunctionError(f"{DETAIL_PREFIX}Search error occurred: Invalid date format '{model}'.")
        tokens.append(match.group())
        position = match.end()
    return tokens


def _in_model_case(word: str, element: str) -> str:
    """Return a month or day name in the case of its format element (``MON``, ``Mon`` or ``mon``)."""
    if element.isupper():
        return word
    return word.capitalize() if element[0].isupper() else word.lower()


def _render_element(element: str, moment: datetime, fill: bool) -> str:
    upper = element.upper()
    simple = {
        "YYYY": f"{moment.year:04d}",
        "YY": f"{moment.year % 100:02d}",
        "MM": f"{moment.month:02d}",
        "DD": f"{moment.day:02d}",
        "DDD": f"{moment.timetuple().tm_yday:03d}",
        "HH24": f"{moment.hour:02d}",
        "HH": f"{(moment.hour % 12) or 12:02d}",
        "HH12": f"{(moment.hour % 12) or 12:02d}",
        "MI": f"{moment.minute:02d}",
        "SS": f"{moment.second:02d}",
    }
    if upper in simple:
        return simple[upper]
    if upper in ("MONTH", "DAY"):
        name = _MONTHS[moment.month - 1] if upper == "MONTH" else _DAYS[moment.weekday()]
        return _in_model_case(name if fill else name.ljust(9), element)
    if upper in ("MON", "DY"):
        name = _MONTHS[moment.month - 1] if upper == "MON" else _DAYS[moment.weekday()]
        return _in_model_case(name[:3], element)
    if upper in ("AM", "PM"):
        return "PM" if moment.hour >= 12 else "AM"
    if upper.startswith("FF"):
        return "0" * int(upper[2:] or 6)
    return element.strip('"')


def _format_moment(moment: datetime, model: str) -> str:
    fill, parts = False, []
    for element in _model_tokens(model):
        if element.upper() == "FM":
            fill = not fill
            continue
        parts.append(_render_element(element, moment, fill))
    return "".join(parts)


def _element_pattern(element: str) -> str:
    upper = element.upper()
    numeric = {
        "YYYY": r"(?P<year>\d{4})",
        "YY": r"(?P<yy>\d{2})",
        "MM": r"(?P<month>\d{1,2})",
        "DD": r"(?P<day>\d{1,2})",
        "HH24": r"(?P<hour>\d{1,2})",
        "HH": r"(?P<hour12>\d{1,2})",
        "HH12": r"(?P<hour12>\d{1,2})",
        "MI": r"(?P<minute>\d{1,2})",
        "SS": r"(?P<second>\d{1,2})",
    }
    if upper in numeric:
        return numeric[upper]
    if upper in ("MON", "MONTH"):
        return r"(?P<monthname>[A-Za-z]+)"
    if upper in ("DY", "DAY"):
        return r"[A-Za-z]+"
    if upper in ("AM", "PM"):
        return r"(?P<meridian>[AaPp][Mm])"
    if upper.startswith("FF"):
        return r"\d{1,9}"
    if upper == "FM" or upper == "DDD":
        return "" if upper == "FM" else r"\d{1,3}"
    return re.escape(element.strip('"'))


def _parse_moment(text: str, model: str) -> datetime:
    """Parse ``text`` with an Oracle format model, as ``TO_DATE``/``TO_TIMESTAMP`` do."""
    pattern = "".join(_element_pattern(element) for element in _model_tokens(model))
    try:
        match = re.fullmatch(r"\s*" + pattern + r"\s*", text)
    except re.error:
        match = None
    failure = f"{DETAIL_PREFIX}Search error occurred: The value '{text}' does not match the format '{model}'."
    if not match:
        raise _FunctionError(failure)
    found = {key: value for key, value in match.groupdict().items() if value is not None}
    try:
        return _moment_from_parts(found)
    except (ValueError, KeyError) as error:
        raise _FunctionError(failure) from error


def _moment_from_parts(found: dict[str, str]) -> datetime:
    today = datetime.now()
    year = int(found["year"]) if "year" in found else 2000 + int(found["yy"]) if "yy" in found else today.year
    if "monthname" in found:
        month = [name[: len(found["monthname"])] for name in _MONTHS].index(found["monthname"].upper()) + 1
    else:
        month = int(found.get("month", today.month))
    hour = int(found.get("hour", 0))
    if "hour12" in found:
        hour = int(found["hour12"]) % 12 + (12 if found.get("meridian", "AM").upper() == "PM" else 0)
    return datetime(
        year, month, int(found.get("day", 1)), hour, int(found.get("minute", 0)), int(found.get("second", 0))
    )


def _moment_from_value(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    match = _STAMP_TEXT.match(value)
    if not match:
        return None
    return datetime(*(int(part) for part in match.groups() if part is not None))


def _format_number(value: float | int, model: str) -> str:
    digits = model.upper().replace("FM", "")
    if not re.fullmatch(r"[90,]*(\.[90]*)?", digits):
        raise _FunctionError(f"{DETAIL_PREFIX}Search error occurred: Invalid number format '{model}'.")
    decimals = len(digits.partition(".")[2])
    grouping = "," if "," in digits else ""
    return f"{value:{grouping}.{decimals}f}"


# --- SQLite functions --------------------------------------------------------------------------------

_state = threading.local()


def _reporting(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a SQLite function so the engine can report its error, which SQLite itself swallows."""

    def wrapper(*args: Any) -> Any:
        try:
            return function(*args)
        except _FunctionError as error:
            _state.function_error = error.detail
            raise

    return wrapper


def _to_char(value: Any, model: str | None = None) -> str | None:
    if value is None:
        return None
    if model is None:
        return _render_value(value, _default_date)
    moment = _moment_from_value(value)
    if moment is not None:
        return _format_moment(moment, model)
    if isinstance(value, (int, float)):
        return _format_number(value, model)
    raise _FunctionError(f"{DETAIL_PREFIX}Search error occurred: The value '{value}' is not a date.")


def _to_date(value: Any, model: str | None = None) -> str | None:
    if value is None:
        return None
    if model is None:
        moment = _moment_from_value(value) or _parse_moment(str(value), "MM/DD/YYYY")
    else:
        moment = _parse_moment(str(value), model)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _to_timestamp(value: Any, model: str | None = None) -> str | None:
    if value is None:
        return None
    moment = _parse_moment(str(value), model or "YYYY-MM-DD HH24:MI:SS")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _operand_number(value: Any) -> int | float | None:
    """Return an arithmetic operand as Oracle converts it: a number, ``None`` for null or ``''``.

    :raises _FunctionError: "invalid number" for text that is not a number (SuiteQL concatenates with ``||``).
    """
    if value is None or isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    if not text:
        return None  # Oracle's empty string is null
    if not _NUMBER_TEXT.match(text):
        raise _FunctionError(
            f"{DETAIL_PREFIX}Search error occurred: Invalid number: '{value}'. "
            "Text is concatenated with ||, not + or -."
        )
    number = float(text) if any(mark in text for mark in ".eE") else int(text)
    return _storable(number)


def _storable(number: int | float) -> int | float:
    """Return ``number`` as SQLite can hold it: integers beyond 64 bits become floats."""
    if isinstance(number, int) and not -(2**63) <= number < 2**63:
        return float(number)
    return number


def _add(left: Any, right: Any) -> int | float | None:
    left, right = _operand_number(left), _operand_number(right)
    return None if left is None or right is None else _storable(left + right)


def _subtract(left: Any, right: Any) -> int | float | None:
    left, right = _operand_number(left), _operand_number(right)
    return None if left is None or right is None else _storable(left - right)


def _date_add(date: Any, days: Any) -> str | None:
    """Add a number of days (a fraction too) to a date, as Oracle's ``date + n`` does."""
    moment, days = _moment_from_value(date), _operand_number(days)
    if moment is None or days is None:
        return None
    return (moment + timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


def _date_difference(left: Any, right: Any) -> int | float | None:
    """Return ``left - right`` of two dates in days, as Oracle does."""
    first, second = _moment_from_value(left), _moment_from_value(right)
    if first is None or second is None:
        return None
    days = (first - second).total_seconds() / 86400
    return int(days) if days.is_integer() else days


def _concat(left: Any, right: Any) -> str | None:
    """Concatenate as Oracle does: a null operand counts as an empty string."""
    if left is None and right is None:
        return None
    return _render_value(left, _default_date) + _render_value(right, _default_date)


# --- value rendering ----------------------------------------------------------------------------------


def _default_date(stamp: str) -> str:
    return f"{int(stamp[5:7])}/{int(stamp[8:10])}/{stamp[0:4]}"


def _render_float(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.15g}"
    if "e" in text:
        text = f"{value:.15f}".rstrip("0").rstrip(".")
    return text


def _render_number(value: float | int) -> str:
    return _render_float(value) if type(value) is float else str(value)


def _render_value(value: Any, render_date: Callable[[str], str]) -> str:
    """Render one column value as NetSuite sends it; ``None`` becomes an empty string."""
    if value is None:
        return ""
    kind = type(value)
    if kind is str:
        return value
    if kind is _Stamp:
        return render_date(value)
    if kind is int:
        return str(value)
    if kind is float:
        return _render_float(value)
    if kind is bytes:
        return value.decode(errors="replace")
    return str(value)


# --- translation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
    """Tables of the database: table name -> column name -> declared type (all lower-case)."""

    version: int
    tables: dict[str, dict[str, str]]


@dataclass(frozen=True)
class _Plan:
    """A translated query: SQLite text for a page and for the count, plus what errors and rendering need."""

    page_sql: str
    count_sql: str
    placeholders: int
    scope: dict[str, str]
    date_keys: frozenset[str]


def _tokenize(query: str) -> list:
    try:
        return Oracle().tokenize(query)
    except SqlglotError as error:
        raise SuiteQLError(UNSUPPORTED_SEARCH) from error


def _check_tokens(tokens: Sequence) -> None:
    """Refuse square brackets and date literals, which SuiteQL does not accept."""
    for index, token in enumerate(tokens):
        if token.token_type in (TokenType.L_BRACKET, TokenType.R_BRACKET):
            raise SuiteQLError(UNSUPPORTED_SEARCH)
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        is_literal = following is not None and following.token_type == TokenType.STRING
        if token.text.upper() in ("DATE", "TIMESTAMP") and is_literal:
            raise SuiteQLError(UNSUPPORTED_SEARCH)


def _check_joins(tree: exp.Expression) -> None:
    """Refuse a ``FROM`` list that mixes ANSI joins (``JOIN ... ON``) with Oracle's comma joins."""
    for select in tree.find_all(exp.Select):
        joins = select.args.get("joins") or []
        ansi = [any(join.args.get(part) for part in _ANSI_JOIN_PARTS) for join in joins]
        if any(ansi) and not all(ansi):
            raise SuiteQLError(UNSUPPORTED_SEARCH)


def _check_text_arithmetic(tree: exp.Expression) -> None:
    """Refuse ``+`` or ``-`` on a text literal that is not a number: SuiteQL concatenates with ``||``.

    Text that only the data holds (a column, a concatenation) is refused when the query runs (``NS_ADD``).
    """
    for node in tree.find_all(exp.Add, exp.Sub):
        for operand in (node.this, node.expression):
            operand = operand.unnest()
            text = operand.this if isinstance(operand, exp.Literal) and operand.is_string else None
            if text and not _NUMBER_TEXT.match(text.strip()):
                raise SuiteQLError(
                    f"{DETAIL_PREFIX}Search error occurred: Invalid number: '{text}'. "
                    "Text is concatenated with ||, not + or -."
                )


def _check_date_comparisons(tree: exp.Expression, schema: _Schema) -> None:
    """Refuse a date compared with plain text: SuiteQL filters dates with ``TO_DATE``/``TO_TIMESTAMP``."""
    cache: dict[int, frozenset[str]] = {}
    for node, side, other in _compared_pairs(tree):
        other = other.unnest()
        if not (isinstance(other, exp.Literal) and other.is_string and other.this):
            continue  # '' is null in Oracle: comparing with it is valid and matches nothing
        if _is_date_valued(side, _visible_date_names(node, schema, cache)):
            raise SuiteQLError(
                f"{DETAIL_PREFIX}Search error occurred: '{side.sql('oracle')}' is a date and "
                f"'{other.this}' is text; compare it with TO_DATE('{other.this}', '<format>') or "
                "TO_TIMESTAMP(..., '<format>')."
            )


def _compared_pairs(tree: exp.Expression) -> Iterator[tuple[exp.Expression, exp.Expression, exp.Expression]]:
    """Yield ``(comparison, operand, what it is compared with)``, both ways round, for every comparison,
    ``BETWEEN`` and ``IN`` list."""
    for node in tree.find_all(exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Between, exp.In):
        if isinstance(node, exp.Between):
            pairs = [(node.this, node.args.get(bound)) for bound in ("low", "high")]
        elif isinstance(node, exp.In):
            pairs = [(node.this, value) for value in node.expressions]
        else:
            pairs = [(node.this, node.expression)]
        for left, right in pairs:
            if left is not None and right is not None:
                yield node, left, right
                yield node, right, left


# --- date typing: which expressions hold dates ----------------------------------------------------------


def _date_names(select: exp.Select, schema: _Schema) -> frozenset[str]:
    """Return the names of the date-valued columns a ``SELECT`` can read from its ``FROM`` and joins.

    A table contributes its columns declared as dates; a derived table (a subquery) its date-valued
    outputs, so a text alias such as ``TO_CHAR(d, ...) AS d`` is not taken for a date.
    """
    from_ = select.args.get("from_") or select.args.get("from")
    sources = ([from_.this] if from_ else []) + [join.this for join in select.args.get("joins") or []]
    names: set[str] = set()
    for source in sources:
        if isinstance(source, exp.Table):
            columns = schema.tables.get(source.name.lower(), {})
            names.update(column for column, kind in columns.items() if kind.startswith("nsdate"))
        elif isinstance(source, exp.Subquery):
            names.update(_output_date_names(source.this, schema))
    return frozenset(names)


def _visible_date_names(
    node: exp.Expression, schema: _Schema, cache: dict[int, frozenset[str]]
) -> frozenset[str]:
    """Return :func:`_date_names` of the ``SELECT`` around ``node``, kept per ``SELECT`` in ``cache``."""
    select = node.find_ancestor(exp.Select)
    if select is None:
        return frozenset()
    if id(select) not in cache:
        cache[id(select)] = _date_names(select, schema)
    return cache[id(select)]


def _output_date_names(query: exp.Expression, schema: _Schema) -> frozenset[str]:
    """Return the output names of a query whose values are dates (``*`` passes its sources' on)."""
    query = query.unnest()
    while isinstance(query, exp.SetOperation):
        query = query.this.unnest()
    if not isinstance(query, exp.Select):
        return frozenset()
    visible = _date_names(query, schema)
    names: set[str] = set()
    for projection in query.expressions:
        value = projection.this if isinstance(projection, exp.Alias) else projection
        if _is_star(value):
            names.update(visible)
        elif _is_date_valued(value, visible):
            names.add(projection.alias_or_name.lower())
    return frozenset(names)


def _is_star(node: exp.Expression) -> bool:
    return isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star))


def _is_date_valued(node: exp.Expression, names: frozenset[str]) -> bool:
    """Tell whether an expression holds a date, given the date-valued column names in its scope."""
    node = node.unnest()
    if isinstance(node, exp.Column):
        return not _is_star(node) and node.name.lower() in names
    if isinstance(node, (exp.CurrentTimestamp, exp.CurrentDate)):
        return True
    if isinstance(node, exp.Add):
        return _is_date_valued(node.this, names) != _is_date_valued(node.expression, names)
    if isinstance(node, exp.Sub):
        return _is_date_valued(node.this, names) and not _is_date_valued(node.expression, names)
    if isinstance(node, exp.Anonymous):
        return node.name.upper() in _DATE_FUNCTIONS
    if isinstance(node, (exp.Max, exp.Min)):
        return _is_date_valued(node.this, names)
    if isinstance(node, exp.Coalesce):
        return any(_is_date_valued(argument, names) for argument in (node.this, *node.expressions))
    return False


def _rewrite_arithmetic(tree: exp.Expression, schema: _Schema) -> None:
    """Replace ``+`` and ``-`` by functions that add as Oracle does: numbers, or dates and days.

    Operands are typed from the query (a date column, ``SYSDATE``, ``TO_DATE``...), not from the values,
    so text that looks like a date is still refused as "invalid number".
    """
    cache: dict[int, frozenset[str]] = {}
    for node in reversed(list(tree.find_all(exp.Add, exp.Sub, bfs=False))):  # innermost first
        visible = _visible_date_names(node, schema, cache)
        left, right = node.this, node.expression
        left_date, right_date = _is_date_valued(left, visible), _is_date_valued(right, visible)
        if isinstance(node, exp.Add):
            if left_date and right_date:
                raise SuiteQLError(UNSUPPORTED_SEARCH)
            if left_date or right_date:
                date, days = (left, right) if left_date else (right, left)
                node.replace(_call("NS_DATE_ADD", date, days))
            else:
                node.replace(_call("NS_ADD", left, right))
        elif left_date and right_date:
            node.replace(_call("NS_DATE_DIFFERENCE", left, right))
        elif left_date:
            node.replace(_call("NS_DATE_ADD", left, exp.Neg(this=exp.Paren(this=right))))
        elif right_date:
            raise SuiteQLError(UNSUPPORTED_SEARCH)
        else:
            node.replace(_call("NS_SUBTRACT", left, right))


def _call(name: str, *arguments: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(arguments))


def _rename_functions(query: str, tokens: Sequence) -> str:
    """Rename Oracle date functions (``TO_CHAR`` ...) so the parser keeps their arguments verbatim."""
    edits = []
    for index, token in enumerate(tokens[:-1]):
        name = token.text.upper()
        if name in _RENAMED_FUNCTIONS and tokens[index + 1].token_type == TokenType.L_PAREN:
            edits.append((token.start, token.end + 1, _RENAMED_FUNCTIONS[name]))
    for start, end, replacement in reversed(edits):
        query = query[:start] + replacement + query[end:]
    return query


def _parse(query: str) -> exp.Expression:
    tokens = _tokenize(query)
    if not tokens:
        raise SuiteQLError(UNSUPPORTED_SEARCH)
    _check_tokens(tokens)
    try:
        tree = sqlglot.parse_one(_rename_functions(query, tokens), read="oracle")
    except SqlglotError as error:
        raise SuiteQLError(UNSUPPORTED_SEARCH) from error
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    if not isinstance(tree, (exp.Select, exp.SetOperation)) or tree.find(*_FORBIDDEN_NODES):
        raise SuiteQLError(UNSUPPORTED_SEARCH)
    return tree


def _check_tables(tree: exp.Expression, schema: _Schema) -> dict[str, str]:
    """Check every table exists; return the tables in scope, alias to table name."""
    scope: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if table.args.get("db") or table.args.get("catalog") or name not in schema.tables:
            raise SuiteQLError(f"{DETAIL_PREFIX}Invalid search type: {table.name}.")
        scope.setdefault((table.alias or table.name).lower(), name)
    return scope


def _describe_scope(scope: dict[str, str]) -> str:
    """Return the tables in scope as NetSuite lists them: ``{c=customer, t=transaction}``."""
    return "{" + ", ".join(f"{alias}={name}" for alias, name in scope.items()) + "}"


def _unknown_identifier(name: str, scope: dict[str, str]) -> SuiteQLError:
    return SuiteQLError(
        f"{DETAIL_PREFIX}Search error occurred: Unknown identifier '{name}'. "
        f"Available identifiers are: {_describe_scope(scope)}."
    )


_keyword_lock = threading.Lock()
_keyword_probe = sqlite3.connect(":memory:", check_same_thread=False)


@functools.lru_cache(maxsize=4096)
def _is_sqlite_keyword(name: str) -> bool:
    """Tell whether SQLite refuses ``name`` as a bare identifier (``transaction`` is one such word)."""
    with _keyword_lock:
        try:
            _keyword_probe.execute(f"SELECT {name} FROM (SELECT 1 AS x)")  # noqa: S608 - name is a plain word
        except sqlite3.OperationalError as error:
            return "no such column" not in str(error)
    return False


def _check_shape(tree: exp.Expression) -> int:
    """Refuse named binds and oversized ``IN`` lists; return the number of ``?`` parameters."""
    placeholders = 0
    for node in tree.find_all(exp.Placeholder, exp.In):
        if isinstance(node, exp.In) and len(node.expressions) > MAX_IN_ARGUMENTS:
            raise SuiteQLError(UNSUPPORTED_SEARCH)
        if isinstance(node, exp.Placeholder):
            if node.this:
                raise SuiteQLError(UNSUPPORTED_SEARCH)
            placeholders += 1
    return placeholders


def _quote_identifiers(tree: exp.Expression, scope: dict[str, str], schema: _Schema) -> None:
    """Quote a name only where SQLite needs it (keywords such as ``transaction``).

    SQLite reads a quoted name it cannot resolve as a string literal, so Oracle's quoted identifiers are
    unquoted, and a keyword column that no table in scope has is refused here.
    """
    visible = {column for table in scope.values() for column in schema.tables[table]}
    for identifier in list(tree.find_all(exp.Identifier)):
        if not _SIMPLE_NAME.match(identifier.name):
            continue
        if isinstance(identifier.parent, (exp.Alias, exp.TableAlias)):
            continue
        keyword = _is_sqlite_keyword(identifier.name)
        identifier.set("quoted", keyword)
        column = identifier.parent
        if keyword and isinstance(column, exp.Column) and column.this is identifier:
            if identifier.name.lower() not in visible:
                raise _unknown_identifier(identifier.name, scope)


def _rownum_limit(condition: exp.Expression) -> int | None:
    """Return N for ``ROWNUM <= N``, ``ROWNUM < N``, ``ROWNUM = 1`` (either way round), else ``None``."""
    if not isinstance(condition, (exp.LTE, exp.LT, exp.EQ, exp.GTE, exp.GT)):
        return None
    left, right = condition.this, condition.expression
    flipped = _is_rownum(right)
    column, bound = (right, left) if flipped else (left, right)
    if not _is_rownum(column) or not (isinstance(bound, exp.Literal) and bound.is_int):
        return None
    value = int(bound.this)
    kind = type(condition)
    if (kind is exp.LTE and not flipped) or (kind is exp.GTE and flipped):
        return value
    if (kind is exp.LT and not flipped) or (kind is exp.GT and flipped):
        return value - 1
    if kind is exp.EQ and value == 1:
        return 1
    return None


def _is_rownum(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and not node.table and node.name.upper() == "ROWNUM"


def _rewrite_rownum(tree: exp.Expression) -> None:
    """Turn ``WHERE ... AND ROWNUM <= N`` into ``LIMIT N``; other uses of ROWNUM number the rows."""
    for select in list(tree.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None:
            continue
        kept, limit = [], None
        for condition in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
            bound = _rownum_limit(condition)
            if bound is None:
                kept.append(condition)
            else:
                limit = bound if limit is None else min(limit, bound)
        if limit is None:
            continue
        select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
        select.limit(max(limit, 0), copy=False)
    for column in list(tree.find_all(exp.Column)):
        if _is_rownum(column):
            column.replace(sqlglot.parse_one("ROW_NUMBER() OVER ()", read="sqlite"))


def _display_value(argument: exp.Expression) -> exp.Expression:
    """Return the ``BUILTIN.DF`` expression for ``argument``: the referenced record's name, or the value."""
    reference = _DISPLAY_VALUES.get(argument.name.lower()) if isinstance(argument, exp.Column) else None
    if reference is None:
        return exp.cast(argument, "TEXT")
    table, display = reference
    template = f'(SELECT {display} FROM "{table}" AS df WHERE df.id = x)'  # noqa: S608 - constants only
    lookup = sqlglot.parse_one(template, read="sqlite")
    lookup.find(exp.EQ).set("expression", argument.copy())
    return lookup


def _rewrite_functions(tree: exp.Expression) -> None:
    """Replace Oracle constructs SQLite lacks with registered functions or equivalent SQL."""
    for node in list(tree.find_all(exp.Dot, exp.CurrentTimestamp, exp.CurrentDate, exp.DPipe)):
        if isinstance(node, exp.Dot):
            function = node.expression
            if node.this.name.upper() != "BUILTIN":
                continue
            if not (isinstance(function, exp.Anonymous) and function.name.upper() == "DF"):
                raise SuiteQLError(UNSUPPORTED_SEARCH)
            if len(function.expressions) != 1:
                raise SuiteQLError(UNSUPPORTED_SEARCH)
            node.replace(_display_value(function.expressions[0]))
        elif isinstance(node, exp.DPipe):
            node.replace(exp.Anonymous(this="NS_CONCAT", expressions=[node.this, node.expression]))
        else:
            node.replace(exp.Anonymous(this="NS_SYSDATE", expressions=[]))


def _name_outputs(tree: exp.Expression, schema: _Schema) -> frozenset[str]:
    """Name unaliased expressions ``expr1``, ``expr2``...; return the output keys that hold dates."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return frozenset()
    visible, date_keys, counter = _date_names(select, schema), set(), 0
    for projection in list(select.expressions):
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if _is_star(inner):
            date_keys.update(visible)
            continue
        if isinstance(projection, (exp.Column, exp.Alias)):
            key = projection.alias_or_name.lower()
        else:
            counter += 1
            key = f"expr{counter}"
            projection.replace(exp.alias_(projection.copy(), key))
        if _is_date_valued(inner, visible):
            date_keys.add(key)
    return frozenset(date_keys)


def _count_tree(tree: exp.Expression) -> exp.Expression:
    """Return the query without its ``ORDER BY`` when that cannot change the number of rows."""
    order = tree.args.get("order")
    if order is None or tree.args.get("limit") or tree.args.get("offset") or order.find(exp.Placeholder):
        return tree
    counted = tree.copy()
    counted.set("order", None)
    return counted


def _shuffle_ties(tree: exp.Select) -> exp.Select:
    """Return the query with rows that tie on its ``ORDER BY`` put in a new random order on every run.

    NetSuite pages stably only over a unique sort order; tied rows come back in a different order from
    one page request to the next, so offset paging over a non-unique order duplicates and skips rows.
    """
    shuffled = tree.copy()
    shuffled.order_by(exp.Anonymous(this="RANDOM", expressions=[]), append=True, copy=False)
    return shuffled


def _to_sqlite(tree: exp.Expression) -> str:
    try:
        return tree.sql(dialect="sqlite", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as error:
        raise SuiteQLError(UNSUPPORTED_SEARCH) from error


def translate(query: str, schema: _Schema) -> _Plan:
    """Check a SuiteQL query and translate it to SQLite; raise :class:`SuiteQLError` as NetSuite would."""
    tree = _parse(query)
    scope = _check_tables(tree, schema)
    placeholders = _check_shape(tree)
    _check_joins(tree)
    _check_text_arithmetic(tree)
    _check_date_comparisons(tree, schema)
    _quote_identifiers(tree, scope, schema)
    _rewrite_rownum(tree)
    _rewrite_arithmetic(tree, schema)
    _rewrite_functions(tree)
    date_keys = _name_outputs(tree, schema)
    sql = _to_sqlite(tree)
    pageable = isinstance(tree, exp.Select) and not any(
        tree.args.get(key) for key in ("limit", "offset", "fetch")
    )
    if pageable and tree.args.get("order") is not None:
        sql = _to_sqlite(_shuffle_ties(tree))
    # The SQL below is generated by sqlglot from a checked, SELECT-only tree, never pasted from the request.
    page_sql = f"{sql} LIMIT ? OFFSET ?" if pageable else f"SELECT * FROM ({sql}) LIMIT ? OFFSET ?"  # noqa: S608
    count_sql = f"SELECT COUNT(*) FROM ({_to_sqlite(_count_tree(tree))})"  # noqa: S608
    return _Plan(page_sql, count_sql, placeholders, scope, date_keys)


def _bind(value: Any) -> Any:
    """Bind a request parameter: canonical numeric strings become numbers, as Oracle would convert them."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, str):
        if re.fullmatch(r"-?(0|[1-9]\d{0,17})", value):
            return int(value)
        if re.fullmatch(r"-?(0|[1-9]\d*)\.\d*[1-9]", value):
            return float(value)
    if value is not None and not isinstance(value, (str, int, float)):
        raise SuiteQLError(UNSUPPORTED_SEARCH)
    return value


# --- the engine ---------------------------------------------------------------------------------------


class _DayTexts(dict):
    """Dates already rendered, by their ``YYYY-MM-DD`` day: a date column is rendered with dict lookups."""

    def __init__(self, render: Callable[[str], str]) -> None:
        super().__init__()
        self._render = render

    def __missing__(self, day: str) -> str:
        if len(self) >= _DAY_CACHE_SIZE:
            self.clear()
        text = self[day] = self._render(day)
        return text


class SuiteQLEngine:
    """Run SuiteQL queries against the emulator's SQLite database, from many threads at once.

    Each thread gets its own read-only connection. ``totalResults`` is cached per query, parameters and
    data version; the version moves whenever any other connection commits (SQLite's ``data_version``) or
    :meth:`invalidate` is called.

    :param db_path: the database made by :func:`~airflow_provider_netsuite.emulator.dataset.create_database`.
    :param date_format: the user's date-format preference, a key of :data:`DATE_FORMATS`.
    :param time_zone: the account's time zone, used by ``SYSDATE``.
    :param omit_nulls: leave null values out of an item (the default); false sends them as ``None``.
    """

    def __init__(
        self,
        db_path: str,
        *,
        date_format: str = "M/D/YYYY",
        time_zone: str = ACCOUNT_TIME_ZONE,
        omit_nulls: bool = True,
    ) -> None:
        if date_format not in DATE_FORMATS:
            raise ValueError(f"unsupported date format {date_format!r}; use one of {sorted(DATE_FORMATS)}")
        self.db_path = db_path
        self.omit_nulls = omit_nulls
        self._render_date_parts = DATE_FORMATS[date_format]
        self._day_texts = _DayTexts(self._render_date)
        self._zone = ZoneInfo(time_zone)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0
        self._counts: dict[tuple, tuple[int, int]] = {}
        self._plans: dict[tuple[str, int], _Plan] = {}
        self._schema: _Schema | None = None

    def invalidate(self) -> None:
        """Forget cached result counts and the schema; call after changing the database."""
        with self._lock:
            self._generation += 1
            self._counts.clear()
            self._plans.clear()
            self._schema = None

    def close(self) -> None:
        """Close every connection the engine opened."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def execute(
        self, query: str, params: list | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Run a query and return one page of items and the total number of results.

        :param query: the SuiteQL text (``q`` of the request).
        :param params: values for the ``?`` placeholders, in order.
        :param limit: page size; the caller has validated it.
        :param offset: rows to skip; the caller has validated it.
        :raises SuiteQLError: for a query NetSuite would refuse.
        """
        connection = self._connection()
        plan = self._plan(query, connection)
        bound = [_bind(value) for value in params or []]
        if len(bound) != plan.placeholders:
            raise SuiteQLError(UNSUPPORTED_SEARCH)
        _state.function_error = None
        try:
            total = self._total(connection, plan, bound)
            cursor = connection.execute(plan.page_sql, [*bound, limit, offset])
            rows = cursor.fetchall()
        except sqlite3.Error as error:
            raise self._translate_error(error, plan) from None
        keys = [column[0].lower() for column in cursor.description]
        return self._items(keys, rows, plan.date_keys), total

    def _items(self, keys: list[str], rows: list[tuple], date_keys: frozenset[str]) -> list[dict[str, Any]]:
        """Shape rows as NetSuite's items, a column at a time: the loops over cells run in C where they can.

        Every value is rendered as text, ``"links": []`` comes first, null values are left out (or sent as
        ``None`` when ``omit_nulls`` is off).
        """
        if not rows:
            return []
        if len(set(keys)) < len(keys) or "links" in keys:
            return self._items_by_cell(keys, rows, date_keys)
        columns = [
            self._column_texts(column, key in date_keys)
            for key, column in zip(keys, zip(*rows, strict=True), strict=True)
        ]
        names = ("links", *keys)
        links = [[] for _ in rows]
        items = [dict(zip(names, values, strict=True)) for values in zip(links, *columns, strict=True)]
        if self.omit_nulls:
            for key, texts in zip(keys, columns, strict=True):
                if None in texts:
                    for item, text in zip(items, texts, strict=True):
                        if text is None:
                            del item[key]
        return items

    def _column_texts(self, column: tuple, is_date: bool) -> Sequence[Any]:
        """Render one column's values as NetSuite's text; ``None`` stays ``None``."""
        kinds = set(map(type, column))
        kinds.discard(type(None))
        if not kinds or (kinds == {str} and not is_date):
            return column
        if kinds == {int}:
            return [None if value is None else str(value) for value in column]
        if kinds <= {int, float}:  # NUMERIC affinity stores 12.5 as a float and 12.0 as an integer
            return [None if value is None else _render_number(value) for value in column]
        if kinds == {_Stamp}:
            days = self._day_texts
            return [None if value is None else days[value[:10]] for value in column]
        return [None if value is None else self._render_cell(value, is_date) for value in column]

    def _render_cell(self, value: Any, is_date: bool) -> str:
        if is_date and type(value) is str and _STAMP_TEXT.match(value):
            value = _Stamp(value)
        return _render_value(value, self._render_date)

    def _items_by_cell(
        self, keys: list[str], rows: list[tuple], date_keys: frozenset[str]
    ) -> list[dict[str, Any]]:
        """Shape rows cell by cell, for results that name a column twice (a later non-null value wins) or
        name one ``links`` (the item keeps ``"links": []`` when the column is null).
        """
        items = []
        for row in rows:
            item: dict[str, Any] = {"links": []}
            for key, value in zip(keys, row, strict=True):
                if value is None:
                    if not self.omit_nulls:
                        item[key] = None
                    continue
                item[key] = self._render_cell(value, key in date_keys)
            items.append(item)
        return items

    def _render_date(self, stamp: str) -> str:
        return self._render_date_parts(stamp[0:4], stamp[5:7], stamp[8:10])

    def _total(self, connection: sqlite3.Connection, plan: _Plan, bound: list) -> int:
        key = (plan.count_sql, tuple(bound))
        generation = self._generation
        cached = self._counts.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        total = connection.execute(plan.count_sql, bound).fetchone()[0]
        with self._lock:
            if len(self._counts) >= _CACHE_SIZE:
                self._counts.clear()
            self._counts[key] = (generation, total)
        return total

    def _plan(self, query: str, connection: sqlite3.Connection) -> _Plan:
        schema = self._current_schema(connection)
        key = (query, schema.version)
        plan = self._plans.get(key)
        if plan is None:
            plan = translate(query, schema)
            with self._lock:
                if len(self._plans) >= _CACHE_SIZE:
                    self._plans.clear()
                self._plans[key] = plan
        return plan

    def _current_schema(self, connection: sqlite3.Connection) -> _Schema:
        version = connection.execute("PRAGMA schema_version").fetchone()[0]
        schema = self._schema
        if schema is not None and schema.version == version:
            return schema
        tables: dict[str, dict[str, str]] = {}
        names = connection.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        ).fetchall()
        for (name,) in names:
            if name.startswith("sqlite_"):
                continue
            columns = connection.execute(f'PRAGMA table_info("{name}")').fetchall()
            tables[name.lower()] = {column[1].lower(): (column[2] or "").lower() for column in columns}
        schema = _Schema(version, tables)
        self._schema = schema
        return schema

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._open()
            self._local.connection = connection
            self._local.data_version = connection.execute("PRAGMA data_version").fetchone()[0]
            # Writes made before this connection existed cannot be seen in its data_version.
            self._bump_generation()
            return connection
        data_version = connection.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self._local.data_version:
            self._local.data_version = data_version
            self._bump_generation()
        return connection

    def _bump_generation(self) -> None:
        with self._lock:
            self._generation += 1
            self._counts.clear()

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.db_path,
            detect_types=sqlite3.PARSE_DECLTYPES,
            check_same_thread=False,
            timeout=30,
            cached_statements=256,
        )
        connection.execute("PRAGMA query_only = ON")
        connection.create_function("NS_TO_CHAR", -1, _reporting(_to_char), deterministic=True)
        connection.create_function("NS_TO_DATE", -1, _reporting(_to_date), deterministic=True)
        connection.create_function("NS_TO_TIMESTAMP", -1, _reporting(_to_timestamp), deterministic=True)
        connection.create_function("NS_CONCAT", 2, _reporting(_concat), deterministic=True)
        connection.create_function("NS_ADD", 2, _reporting(_add), deterministic=True)
        connection.create_function("NS_SUBTRACT", 2, _reporting(_subtract), deterministic=True)
        connection.create_function("NS_DATE_ADD", 2, _reporting(_date_add), deterministic=True)
        connection.create_function("NS_DATE_DIFFERENCE", 2, _reporting(_date_difference), deterministic=True)
        connection.create_function("NS_SYSDATE", 0, self._sysdate)
        with self._lock:
            self._connections.append(connection)
        log.debug("Opened SuiteQL connection to %s", self.db_path)
        return connection

    def _sysdate(self) -> str:
        return datetime.now(self._zone).strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def _translate_error(error: sqlite3.Error, plan: _Plan) -> SuiteQLError:
        function_error = getattr(_state, "function_error", None)
        if function_error:
            _state.function_error = None
            return SuiteQLError(function_error)
        message = str(error)
        column = re.match(r"no such column: (.+)$", message)
        if column:
            return _unknown_identifier(column.group(1), plan.scope)
        table = re.match(r"no such table: (.+)$", message)
        if table:
            return SuiteQLError(f"{DETAIL_PREFIX}Invalid search type: {table.group(1)}.")
        log.debug("SuiteQL query failed in SQLite: %s", message)
        return SuiteQLError(UNSUPPORTED_SEARCH)


def run_sql(db_path: str, sql: str) -> list[dict[str, Any]]:
    """Run plain SQLite SQL and return the rows as dicts of Python values (ground truth for tests).

    :param db_path: the emulator's database.
    :param sql: SQLite SQL, run as is.
    """
    connection = sqlite3.connect(db_path)
    try:
        cursor = connection.execute(sql)
        keys = [column[0] for column in cursor.description or []]
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
