"""The SQL++ scalar function library of Couchbase Lite 3.2, over decoded SQL++ values.

Each function takes and returns decoded values (MISSING, ``None`` for null, ``bool``, ``int``,
``float``, ``str``, ``list``, ``dict``) and never raises for a value of the wrong kind. The rule,
unless Couchbase Lite observably does otherwise (noted where it does): a MISSING argument gives
MISSING, else a null one gives null, else one of the wrong kind gives null. Numbers are never NaN
or infinite: such a result is null. Booleans count as the numbers 1 and 0 where Couchbase Lite
hands them to SQLite as integers (math functions, equality with numbers).

Couchbase Lite's garbage is not reproduced: ``ARRAY_MIN``/``ARRAY_MAX`` order any values by the
query collation instead of reading them as doubles, ``TONUMBER`` of a non-number string is null,
and calls Couchbase Lite rejects at run time (``TRIM(s, chars)``, ``ROUND('x')``) get N1QL's
answer. :data:`FUNCTIONS` is the table the query parser checks calls against (arity included);
aggregates, ``MATCH``/``RANK``, ``META`` and the operators live elsewhere.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import regex

from couchlite import _tuning
from couchlite.query import _dates
from couchlite.query._args import (
    _ABSENT,
    _INT64,
    _collation_key,
    _double,
    _equal,
    _finite,
    _gated,
    _is_number,
)
from couchlite.query.values import MISSING, truth

__all__ = ["FUNCTIONS", "KNOWN_UNSUPPORTED", "FunctionSpec"]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One SQL++ function: its upper-case name, how many arguments it takes, its code."""

    name: str
    min_args: int
    max_args: int | None  # None: any number
    fn: Callable[..., Any]
    deterministic: bool = True


# -- arrays ---------------------------------------------------------------------------------------
# Couchbase Lite's LENGTH/COUNT/SUM/AVG of anything but an array (MISSING and null included) are 0.


def _items(value: Any) -> list[Any]:
    return [item for item in value if item is not MISSING] if type(value) is list else []


def _numbers(array: Any) -> list[float]:
    return [float(item) for item in _items(array) if _is_number(item)]


def _array_sum(array: Any) -> float | None:
    total = 0.0
    for number in _numbers(array):
        total += number  # in order, as Couchbase Lite adds
    return _finite(total)


def _array_avg(array: Any) -> float | None:
    numbers, total = _numbers(array), _array_sum(array)
    return total / len(numbers) if total is not None and numbers else total  # none: 0.0


def _array_extreme(pick: Callable[..., Any]) -> Callable[[Any], Any]:
    def extreme(array: Any) -> Any:
        values = [item for item in _items(array) if item is not None]
        if not values:
            return None
        found = pick(values, key=_collation_key)
        return float(found) if _is_number(found) else found  # Couchbase Lite answers a double

    return extreme


def _array_ifnull(array: Any) -> Any:
    return next((item for item in _items(array) if item is not None), None)


def _array_contains(array: Any, value: Any) -> Any:
    if array is MISSING or value is MISSING:
        return MISSING
    if type(array) is not list or value is None:
        return None
    return any(_equal(item, value) for item in _items(array))


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def extreme(*values: Any) -> Any:
        if any(value is MISSING for value in values):
            return MISSING
        return pick(values, key=_collation_key)

    return extreme


# -- conditionals ---------------------------------------------------------------------------------


def _first(skip: Callable[[Any], bool], otherwise: Any) -> Callable[..., Any]:
    return lambda *values: next((value for value in values if not skip(value)), otherwise)


@_gated
def _missingif(a: Any, b: Any) -> Any:
    return MISSING if _equal(a, b) else a


@_gated
def _nullif(a: Any, b: Any) -> Any:
    return None if _equal(a, b) else a


# -- math -----------------------------------------------------------------------------------------


def _math(op: Callable[..., float]) -> Callable[..., Any]:
    """A function of doubles as a SQL++ one: a domain error or overflow is null."""

    @_gated
    def function(*args: Any) -> Any:
        numbers = [_double(arg) for arg in args]
        if None in numbers:
            return None
        try:
            return _finite(op(*numbers))
        except (ValueError, OverflowError, ZeroDivisionError):
            return None

    return function


def _round_half(to_even: bool) -> Callable[[float], float]:
    """Rounding to an integer, ties away from zero (C's ``round``) or to even."""

    def op(x: float) -> float:
        floor = math.floor(x)
        diff = x - floor
        up = diff > 0.5 or (diff == 0.5 and (floor % 2 == 1 if to_even else x > 0))
        return float(floor + up)

    return op


def _to_digits(op: Callable[[float], float]) -> Callable[..., Any]:
    # Scaled as Couchbase Lite scales (x * 10^n, rounded, / 10^n), so results agree to the bit.
    @_gated
    def function(value: Any, digits: Any = _ABSENT) -> Any:
        x = _double(value)
        if x is None:
            return None
        if digits is _ABSENT:
            return op(x)
        places = _double(digits)
        if places is None:
            return None
        try:
            scale = 10.0 ** int(places)
        except OverflowError:
            return x  # finer than any double: nothing to round
        if scale == 0.0:
            return 0.0
        scaled = x * scale
        return op(scaled) / scale if math.isfinite(scaled) else x

    return function


@_gated
def _sign(value: Any) -> Any:
    x = _double(value)
    if x is None:
        return None
    return 1 if x > 0 else -1 if x < 0 else 0


@_gated
def _idiv(a: Any, b: Any) -> Any:
    # Couchbase Lite truncates both operands to integers first: IDIV(7.9, 2) is 3.
    x, y = _double(a), _double(b)
    if x is None or y is None or not (abs(x) < _INT64 and abs(y) < _INT64):
        return None
    numerator, denominator = int(x), int(y)
    if denominator == 0:
        return None
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator < 0) == (denominator < 0) else -quotient


# -- patterns -------------------------------------------------------------------------------------

_MAX_CACHED_PATTERN: Final = 1024  # longer patterns are compiled per call, never kept
_DOLLAR = re.compile(r"\$(\$|&|`|'|[0-9]{1,2})")


def _compile(pattern: str) -> Any:
    # ECMAScript's classes (\d, \w, \s, \b) are ASCII, as Couchbase Lite's std::regex has them.
    # ``regex`` rather than ``re``: its matching takes a timeout, so that a pattern that
    # backtracks without end ("(a+)+b") costs a bounded time, in a query or an index alike
    try:
        return regex.compile(pattern, regex.ASCII | regex.VERSION0)
    except (regex.error, RecursionError, OverflowError, ValueError):
        return None


_compile_cached = functools.lru_cache(maxsize=256)(_compile)


def _regex(pattern: str) -> Any:
    return _compile(pattern) if len(pattern) > _MAX_CACHED_PATTERN else _compile_cached(pattern)


@_gated
def _search(text: Any, pattern: Any) -> Any:
    """The first match of ``pattern`` in ``text``; MISSING, None or False for no usable call."""
    if type(text) is not str or type(pattern) is not str:
        return None
    compiled = _regex(pattern)
    if compiled is None:
        return None
    try:
        return compiled.search(text, timeout=_tuning.QUERY_REGEX_TIMEOUT_S) or False
    except TimeoutError:
        return None


def _regexp_contains(text: Any, pattern: Any) -> Any:
    # REGEXP_LIKE too: Couchbase Lite searches for the pattern rather than matching it whole
    match = _search(text, pattern)
    return match if match is None or match is MISSING else match is not False


def _regexp_position(text: Any, pattern: Any) -> Any:
    match = _search(text, pattern)
    if match is None or match is MISSING:
        return match
    return -1 if match is False else match.start()


def _expand(template: str, match: Any) -> str:
    """ECMAScript's replacement syntax: ``$&``, ``$1``…``$99``, ``$```, ``$'``, ``$$``."""
    groups = match.re.groups

    def one(token: re.Match[str]) -> str:
        code = token[1]
        if code == "$":
            return "$"
        if code == "&":
            return str(match[0])
        if code == "`":
            return str(match.string[: match.start()])
        if code == "'":
            return str(match.string[match.end() :])
        index, rest = int(code), ""
        if len(code) == 2 and index > groups:
            index, rest = int(code[0]), code[1]
        if 1 <= index <= groups:
            return (match[index] or "") + rest
        return token[0]

    return _DOLLAR.sub(one, template)


@_gated
def _regexp_replace(text: Any, pattern: Any, replacement: Any, count: Any = _ABSENT) -> Any:
    if type(text) is not str or type(pattern) is not str or type(replacement) is not str:
        return None
    limit = -1
    if count is not _ABSENT:
        number = _double(count)
        if number is None:
            return None
        limit = int(number) if abs(number) < _INT64 else -1
    compiled = _regex(pattern)
    if compiled is None:
        return None
    if limit == 0:
        return text
    try:
        return compiled.sub(
            lambda m: _expand(replacement, m),
            text,
            count=max(limit, 0),
            timeout=_tuning.QUERY_REGEX_TIMEOUT_S,
        )
    except TimeoutError:
        return None


# -- strings --------------------------------------------------------------------------------------

# Couchbase Lite's whitespace (ISO 30112's POSIX spaces): no-break spaces are not among them
_SPACES: Final = (
    "\t\n\v\f\r \u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
)


def _format_double(x: float) -> str:
    """A double as Couchbase Lite writes one (Swift's shortest form: ``2.0``, ``1e-05``)."""
    if 1e16 <= abs(x) <= 2.0**54:
        return f"{int(x)}.0"  # Swift stays positional up to 2^54, where Python switches at 1e16
    return repr(x)


def _to_text(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None or type(value) is bool:
        return json.dumps(value)
    if type(value) is float:
        return _format_double(value)
    if type(value) is int:
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _concat(*values: Any) -> Any:
    if any(value is MISSING for value in values):
        return MISSING
    return "".join(_to_text(value) for value in values)


@_gated
def _contains(text: Any, part: Any) -> Any:
    return type(text) is str and type(part) is str and part in text  # false for non-strings


def _string_fn(op: Callable[[str], Any]) -> Callable[[Any], Any]:
    @_gated
    def function(value: Any) -> Any:
        return op(value) if type(value) is str else None

    return function


def _trim(side: str) -> Callable[..., Any]:
    def strip(text: str, chars: str) -> str:
        if side == "left":
            return text.lstrip(chars)
        return text.rstrip(chars) if side == "right" else text.strip(chars)

    @_gated
    def trim_chars(value: Any, chars: Any) -> Any:
        return strip(value, chars) if type(value) is str and type(chars) is str else None

    def function(value: Any, chars: Any = _ABSENT) -> Any:
        if chars is _ABSENT:
            # Couchbase Lite hands anything but a string back untouched (MISSING and null too)
            return strip(value, _SPACES) if type(value) is str else value
        return trim_chars(value, chars)

    return function


# -- types ----------------------------------------------------------------------------------------


_TYPE_NAMES: Final[dict[type, str]] = {
    **{bool: "boolean", int: "number", float: "number"},
    **{str: "string", list: "array", dict: "object"},
}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), "null")


def _type_test(*names: str) -> Callable[[Any], Any]:
    return _gated(lambda value: _type_name(value) in names)


@_gated
def _type(value: Any) -> Any:
    return _type_name(value)


@_gated
def _toarray(value: Any) -> Any:
    return value if type(value) is list else [value]


@_gated
def _toobject(value: Any) -> Any:
    return value if type(value) is dict else {}


@_gated
def _toatom(value: Any) -> Any:
    while type(value) in (list, dict):  # one-element containers unwrap, all the way down
        if len(value) != 1:
            return None
        value = value[0] if type(value) is list else next(iter(value.values()))
    return value


@_gated
def _toboolean(value: Any) -> Any:
    return truth(value)


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@_gated
def _tonumber(value: Any) -> Any:
    if type(value) is bool:
        return int(value)
    if _is_number(value):
        return value
    if type(value) is not str:
        return None
    text = value.strip(" \t\n\v\f\r")
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return _finite(float(text))
    return None


@_gated
def _tostring(value: Any) -> Any:
    return None if type(value) in (list, dict) else _to_text(value)


# -- the table ------------------------------------------------------------------------------------


_spec = FunctionSpec
_SPECS: Final = [
    # (a function that may read the local time zone is not deterministic: SQLite then keeps it
    # out of expression indexes, which a change of zone would leave wrong)
    # arrays
    _spec("ARRAY_AVG", 1, 1, _array_avg),
    _spec("ARRAY_CONTAINS", 2, 2, _array_contains),
    _spec("ARRAY_COUNT", 1, 1, lambda array: sum(item is not None for item in _items(array))),
    _spec("ARRAY_IFNULL", 1, 1, _array_ifnull),
    _spec("ARRAY_LENGTH", 1, 1, lambda array: len(_items(array))),
    _spec("ARRAY_MAX", 1, 1, _array_extreme(max)),
    _spec("ARRAY_MIN", 1, 1, _array_extreme(min)),
    _spec("ARRAY_OF", 0, None, lambda *values: _items(list(values))),  # MISSING items vanish
    _spec("ARRAY_SUM", 1, 1, _array_sum),
    # comparison
    _spec("GREATEST", 2, None, _extreme(max)),
    _spec("LEAST", 2, None, _extreme(min)),
    # conditionals
    _spec("IFMISSING", 2, None, _first(lambda value: value is MISSING, MISSING)),
    _spec("IFMISSINGORNULL", 2, None, _first(lambda value: value in (None, MISSING), None)),
    _spec("IFNULL", 2, None, _first(lambda value: value is None, None)),  # may answer MISSING
    _spec("MISSINGIF", 2, 2, _missingif),
    _spec("NULLIF", 2, 2, _nullif),
    # dates
    _spec("DATE_ADD_MILLIS", 3, 3, _dates.date_add_millis),
    _spec("DATE_ADD_STR", 3, 4, _dates.date_add_str),
    _spec("DATE_DIFF_MILLIS", 3, 3, _dates.date_diff_millis),
    _spec("DATE_DIFF_STR", 3, 3, _dates.date_diff_str, deterministic=False),
    _spec("MILLIS_TO_STR", 1, 2, _dates.millis_to_str, deterministic=False),
    _spec("MILLIS_TO_TZ", 2, 3, _dates.millis_to_tz),
    _spec("MILLIS_TO_UTC", 1, 2, _dates.millis_to_utc),
    _spec("STR_TO_MILLIS", 1, 1, _dates.str_to_millis, deterministic=False),
    _spec("STR_TO_TZ", 2, 3, _dates.str_to_tz, deterministic=False),
    _spec("STR_TO_UTC", 1, 2, _dates.str_to_utc, deterministic=False),
    # math
    _spec("ABS", 1, 1, _math(abs)),
    _spec("ACOS", 1, 1, _math(math.acos)),
    _spec("ASIN", 1, 1, _math(math.asin)),
    _spec("ATAN", 1, 1, _math(math.atan)),
    _spec("ATAN2", 2, 2, _math(math.atan2)),
    _spec("CEIL", 1, 1, _math(lambda x: float(math.ceil(x)))),
    _spec("COS", 1, 1, _math(math.cos)),
    _spec("DEGREES", 1, 1, _math(lambda x: x * 180 / math.pi)),
    _spec("DIV", 2, 2, _math(lambda x, y: x / y)),
    _spec("E", 0, 0, lambda: math.e),
    _spec("EXP", 1, 1, _math(math.exp)),
    _spec("FLOOR", 1, 1, _math(lambda x: float(math.floor(x)))),
    _spec("IDIV", 2, 2, _idiv),
    _spec("LN", 1, 1, _math(math.log)),
    _spec("LOG", 1, 1, _math(math.log10)),
    _spec("PI", 0, 0, lambda: math.pi),
    _spec("POWER", 2, 2, _math(math.pow)),
    _spec("RADIANS", 1, 1, _math(lambda x: x * math.pi / 180)),
    _spec("ROUND", 1, 2, _to_digits(_round_half(False))),
    _spec("ROUND_EVEN", 1, 2, _to_digits(_round_half(True))),
    _spec("SIGN", 1, 1, _sign),
    _spec("SIN", 1, 1, _math(math.sin)),
    _spec("SQRT", 1, 1, _math(math.sqrt)),
    _spec("TAN", 1, 1, _math(math.tan)),
    _spec("TRUNC", 1, 2, _to_digits(lambda x: float(math.trunc(x)))),
    # patterns
    _spec("REGEXP_CONTAINS", 2, 2, _regexp_contains),
    _spec("REGEXP_LIKE", 2, 2, _regexp_contains),
    _spec("REGEXP_POSITION", 2, 2, _regexp_position),
    _spec("REGEXP_REPLACE", 3, 4, _regexp_replace),
    # strings
    _spec("CONCAT", 2, None, _concat),
    _spec("CONTAINS", 2, 2, _contains),
    _spec("LENGTH", 1, 1, _string_fn(len)),
    _spec("LOWER", 1, 1, _string_fn(str.lower)),
    _spec("LTRIM", 1, 2, _trim("left")),
    _spec("RTRIM", 1, 2, _trim("right")),
    _spec("TRIM", 1, 2, _trim("both")),
    _spec("UPPER", 1, 1, _string_fn(str.upper)),
    # types
    _spec("ISARRAY", 1, 1, _type_test("array")),
    _spec("ISATOM", 1, 1, _type_test("boolean", "number", "string")),
    _spec("ISBOOLEAN", 1, 1, _type_test("boolean")),
    _spec("ISNUMBER", 1, 1, _type_test("number")),
    _spec("ISOBJECT", 1, 1, _type_test("object")),
    _spec("ISSTRING", 1, 1, _type_test("string")),
    _spec("TYPE", 1, 1, _type),
    _spec("TOARRAY", 1, 1, _toarray),
    _spec("TOATOM", 1, 1, _toatom),
    _spec("TOBOOLEAN", 1, 1, _toboolean),
    _spec("TONUMBER", 1, 1, _tonumber),
    _spec("TOOBJECT", 1, 1, _toobject),
    _spec("TOSTRING", 1, 1, _tostring),
]


def _table() -> dict[str, FunctionSpec]:
    table = {spec.name: spec for spec in _SPECS}
    for spec in _SPECS:  # Couchbase Lite's other spellings: IS_ARRAY, TO_STRING, TYPENAME, …
        if spec.name[:2] in ("IS", "TO") or spec.name == "TYPE":
            alias = "TYPENAME" if spec.name == "TYPE" else f"{spec.name[:2]}_{spec.name[2:]}"
            table[alias] = FunctionSpec(alias, spec.min_args, spec.max_args, spec.fn)
    return table


#: every scalar function Couchbase Lite 3.2 accepts, by upper-case name
FUNCTIONS: Final[dict[str, FunctionSpec]] = _table()

#: N1QL functions Couchbase Lite rejects when the query is created (observed)
KNOWN_UNSUPPORTED: Final[frozenset[str]] = frozenset({"ARRAY_DISTINCT", "IFINF", "IFNAN", "SUBSTR"})
