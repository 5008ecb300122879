"""How SQL++ values live inside SQLite while a query runs.

SQL++ has more kinds of value than SQLite, and its ordering of mixed types is Couchbase Lite's:
MISSING first, then numbers, strings, ``null``, ``false``, ``true``, arrays, objects. Each value
is held as the SQLite value whose built-in comparison gives exactly that order, so ``ORDER BY``,
``GROUP BY``, ``DISTINCT``, ``MIN``/``MAX``, comparisons and expression indexes all run in C:

* MISSING is SQL ``NULL`` (which SQLite sorts first and three-valued logic propagates);
* numbers are ``INTEGER``/``REAL``, strings ``TEXT`` (compared by code point, as ``BINARY``);
* ``null``, booleans, arrays and objects are ``BLOB``s whose first byte orders the kinds:
  ``00`` null, ``01`` false, ``02`` true, ``03`` array, ``04`` object; an array or object goes on
  with its number of items (4 bytes, big-endian: as in Couchbase Lite, where they compare by
  their Fleece encoding, a shorter one sorts first) and its JSON (keys sorted, so that equal
  objects are equal blobs).

Document bodies are stored as JSON bytes (``{...}``), which :func:`path_value` reads directly.
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson

__all__ = [
    "FALSE",
    "MISSING",
    "NULL",
    "TRUE",
    "Missing",
    "decode",
    "encode",
    "parse_container",
    "path_value",
    "truth",
]


class Missing:
    """The SQL++ MISSING value: what a path that leads nowhere evaluates to (a singleton)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = Missing()

NULL: Final = b"\x00"
FALSE: Final = b"\x01"
TRUE: Final = b"\x02"
_ARRAY: Final = 0x03
_OBJECT: Final = 0x04
_HEADER: Final = 5  # the kind, then the number of items (big-endian: fewer sorts first)
_BRACE: Final = 0x7B  # "{": a stored document body
_BRACKET: Final = 0x5B  # "[": a JSON array (e.g. a json_each value)

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

#: SQLite's kinds of value, as the sqlite3 module hands them over
SqlValue = int | float | str | bytes | None


def encode(value: Any) -> SqlValue:
    """The SQLite value holding the SQL++ value ``value`` (plain Python data, or MISSING)."""
    if value is None:
        return NULL
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else float(value)
    if isinstance(value, float):
        # NaN and infinities have no JSON form; SQL++ turns them into null
        return value if math.isfinite(value) else NULL
    if isinstance(value, (list, tuple)):
        return b"\x03" + len(value).to_bytes(4, "big") + orjson.dumps(list(value))
    if isinstance(value, dict):
        return (
            b"\x04"
            + len(value).to_bytes(4, "big")
            + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        )
    if value is MISSING:
        return None
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def decode(value: SqlValue) -> Any:
    """The SQL++ value an SQLite value holds (MISSING for ``NULL``)."""
    if value is None:
        return MISSING
    if type(value) is not bytes:
        return value
    if not value:
        return MISSING
    tag = value[0]
    if tag == 0:
        return None
    if tag == 1:
        return False
    if tag == 2:
        return True
    if tag in (_ARRAY, _OBJECT):
        return orjson.loads(memoryview(value)[_HEADER:])
    if tag in (_BRACE, _BRACKET):
        return orjson.loads(value)
    return MISSING


def parse_container(value: SqlValue) -> Any:
    """The array or object that ``value`` holds (a body, or an encoded array or object),
    or MISSING when it holds something else (a path into a scalar leads nowhere)."""
    if type(value) is not bytes or not value:
        return MISSING
    tag = value[0]
    if tag in (_BRACE, _BRACKET):
        return orjson.loads(value)
    if tag in (_ARRAY, _OBJECT):
        return orjson.loads(memoryview(value)[_HEADER:])
    return MISSING


def path_value(root: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` (keys and array indexes) inside ``root``, or MISSING."""
    value = root
    for step in path:
        if type(step) is str:
            if type(value) is not dict:
                return MISSING
            value = value.get(step, MISSING)
            if value is MISSING:
                return MISSING
        else:
            if type(value) is not list:
                return MISSING
            assert isinstance(step, int)
            index = step if step >= 0 else len(value) + step
            if not 0 <= index < len(value):
                return MISSING
            value = value[index]
    return value


def truth(value: Any) -> bool | None:
    """SQL++ truthiness (None for MISSING): false, null, 0, "" and empty containers are false."""
    if value is MISSING:
        return None
    if value is None or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return False
