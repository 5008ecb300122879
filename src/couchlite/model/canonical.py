"""Canonical JSON: the one byte form of a document body.

A body is stored, hashed into its revision ID and sent to peers in the same form: UTF-8 JSON with
no insignificant white space, object keys sorted by code point (which is also UTF-8 byte order),
integers as integers, floats in their shortest round-trip form, no escaping of non-ASCII text.
Fleece (Couchbase Lite's own encoding) sorts dictionary keys too, so bodies read back from either
look alike.

Only what JSON can represent round-trips: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``,
``int`` (64-bit, as Fleece), finite ``float``, ``bool`` and ``None``; aware ``datetime`` and
``date`` values are written as the ISO-8601 strings Couchbase Lite stores dates as
(``model.dates``). Anything else -- a set, an arbitrary object, a naive datetime, NaN or infinity,
a huge int -- is refused with an ``InvalidArgumentError`` that names the path of the offending
value (``address.geo[1]``).

The fast path is one call into orjson; the slow walk runs only to find the path of an error, or
when ``null`` appears in the output (orjson writes NaN as ``null``, so we must look).

JSON text received from elsewhere (a peer) is held to the same rules by :func:`check_json_text`
before anything parses it into Python values: orjson would read an integer beyond 64 bits as a
float (so the stored body would differ from the one its sender hashed), and a body nested deeper
than the local API accepts would fail later, deep inside code that walks it recursively.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from couchlite import _tuning
from couchlite.errors import InvalidArgumentError
from couchlite.model.dates import format_date

# Datetimes and dataclasses are not JSON: hand them to ``default`` (or refuse them) instead of
# letting orjson stringify them, so that the result never depends on which path ran.
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
#: orjson's nesting limit; deeper (or cyclic) values are refused
MAX_DEPTH = _tuning.MAX_JSON_DEPTH
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
#: For the quick scan of JSON text: every digit becomes ``0``, every ``[`` or ``{`` becomes ``[``,
#: anything else a space -- so one ``count`` bounds the nesting and one ``find`` spots a run of
#: 19 digits (``2**63`` has 19), the only integers that may fall outside 64 bits. A run inside a
#: string, or a float's, only costs the exact check.
_SCAN = bytes(
    0x30 if 0x30 <= i <= 0x39 else 0x5B if i in (0x5B, 0x7B) else 0x20 for i in range(256)
)
_LONG_RUN = b"0" * 19
#: Brackets only, one kind (``{}`` become ``[]``): removing every ``[]`` takes one pass per level
_BRACKETS = bytes(0x5B if i == 0x7B else 0x5D if i == 0x7D else i for i in range(256))
_NOT_BRACKETS = bytes(i for i in range(256) if i not in b"[]{}")


def encode_date(value: Any) -> str:
    """``default`` for orjson: a ``datetime`` or ``date`` as its ISO-8601 string (``TypeError``
    for anything else). A custom ``default`` given to :func:`canonical_json` ends with it."""
    if isinstance(value, dt.date):
        return format_date(value)
    raise TypeError


def canonical_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Encode ``value`` canonically; ``default`` converts extra types (e.g. blobs) to JSON data,
    falling back to :func:`encode_date` (which is the default)."""
    try:
        out = orjson.dumps(
            value, default=encode_date if default is None else default, option=_SORTED
        )
    except orjson.JSONEncodeError as exc:
        # orjson gives no path: walk to find it, then fall back to orjson's own message.
        find_invalid_value(value, default)
        raise InvalidArgumentError(f"value cannot be represented as JSON: {exc}") from exc
    if out.find(b"null") >= 0:  # (cheaper than ``in``, which first tries its operand as an int)
        find_invalid_value(value, default)
    return out


def find_invalid_value(value: Any, default: Callable[[Any], Any] | None = None) -> None:
    """Raise ``InvalidArgumentError`` naming the first value JSON cannot represent, if any."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if item is None or isinstance(item, (str, bool)):
            continue
        if isinstance(item, int) and not isinstance(item, enum.Enum):
            _check_int(item, path)
            continue
        if type(item) is float:  # orjson refuses float subclasses
            if not math.isfinite(item):
                raise InvalidArgumentError(
                    f"{item!r} cannot be represented in JSON at {_show(path)}"
                )
            continue
        if depth >= MAX_DEPTH:
            # also ends the walk of a cyclic structure
            raise InvalidArgumentError(f"value nested too deeply (or cyclic) at {_show(path)}")
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InvalidArgumentError(
                        f"dictionary key {key!r} at {_show(path)} is not a string"
                    )
                stack.append((f"{path}.{key}" if path else key, child, depth + 1))
            continue
        if isinstance(item, list) or type(item) is tuple:  # orjson refuses tuple subclasses
            stack.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(item))
            continue
        # what orjson serializes natively, without asking ``default``
        if isinstance(item, enum.Enum):
            stack.append((path, item.value, depth + 1))
            continue
        if isinstance(item, uuid.UUID):
            continue
        if isinstance(item, dt.date):
            format_date(item, path)  # (refuses a naive datetime, naming the path)
            continue
        if default is not None:
            try:
                converted = default(item)
            except TypeError:
                converted = _UNSUPPORTED
            if converted is not _UNSUPPORTED:
                stack.append((path, converted, depth + 1))
                continue
        raise InvalidArgumentError(
            f"a {type(item).__name__} at {_show(path)} cannot be represented in JSON"
        )


_UNSUPPORTED = object()


def _int_fits(value: int) -> bool:
    """The integers a body may hold, from the local API or a peer: 64 bits, as Fleece."""
    return _INT64_MIN <= value <= _UINT64_MAX


def _check_int(value: int, path: str) -> None:
    if not _int_fits(value):
        raise InvalidArgumentError(f"integer out of 64-bit range at {_show(path)}")


def _parse_int(text: str) -> int:
    """``json.loads`` hook: each integer literal of JSON text, checked as the local API does."""
    try:
        value = int(text)
    except ValueError:  # beyond Python's digit limit for int(): far beyond 64 bits
        value = _UINT64_MAX + 1
    if not _int_fits(value):
        raise InvalidArgumentError(f"integer out of 64-bit range: {text[:40]}")
    return value


def check_json_text(data: bytes | bytearray | memoryview) -> None:
    """Raise ``InvalidArgumentError`` unless JSON text received from elsewhere holds only what
    the local API accepts: nesting within :data:`MAX_DEPTH` and integers within 64 bits.

    Cheap for the usual body (about half a microsecond for 200 bytes): one ``translate``, one
    ``count`` and one ``find``; the exact checks run only when a body has more brackets than the
    depth limit (then a scan of the brackets alone, and a parse only if that cannot decide), or
    a run of 19 digits (then a parse that checks every integer).
    Malformed JSON is refused too when an exact check parses it (otherwise the caller's parser
    refuses it).
    """
    raw = bytes(data) if not isinstance(data, bytes) else data
    scan = raw.translate(_SCAN)
    if scan.count(b"[") > MAX_DEPTH and not _shallow(raw):
        try:
            value = orjson.loads(raw)
            orjson.dumps(value)  # orjson's limit is the local API's (canonical_json)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgumentError(f"malformed or too deeply nested JSON: {exc}") from None
        except orjson.JSONEncodeError:
            raise InvalidArgumentError(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    if scan.find(_LONG_RUN) >= 0:
        try:
            json.loads(raw, parse_int=_parse_int)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"malformed JSON: {exc}") from None
        except UnicodeDecodeError:
            raise InvalidArgumentError("malformed JSON: not UTF-8") from None


def _show(path: str) -> str:
    if len(path) > 200:  # (a path 254 levels deep would make an unreadable message)
        path = "..." + path[-200:]
    return repr(path) if path else "the top level"


def _shallow(raw: bytes) -> bool:
    """Whether the brackets of ``raw`` nest at most :data:`MAX_DEPTH` deep, found by removing
    the innermost pairs level by level (``False`` also when brackets inside strings unbalance
    them: the exact check then decides)."""
    brackets = raw.translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        inner = brackets.replace(b"[]", b"")
        if not inner:
            return True
        if len(inner) == len(brackets):
            return False
        brackets = inner
    return False


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON (raises ``InvalidArgumentError`` on malformed input). Text from a peer goes
    through :func:`check_json_text` first, or big integers come back as floats."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(f"malformed JSON: {exc}") from exc


def canonicalize(data: bytes | bytearray | memoryview | str) -> bytes:
    """Re-encode JSON text received from elsewhere in canonical form (refused, as
    :func:`check_json_text` refuses it, if the local API could not hold it)."""
    check_json_text(data.encode() if isinstance(data, str) else data)
    return canonical_json(loads(data))
