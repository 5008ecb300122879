"""Canonical JSON: the one byte form of a document body.

A body is stored, hashed into its revision ID and sent to peers in the same form: UTF-8 JSON with
no insignificant white space, object keys sorted by code point (which is also UTF-8 byte order),
integers as integers, floats in their shortest round-trip form, no escaping of non-ASCII text.
Fleece (Couchbase Lite's own encoding) sorts dictionary keys too, so bodies read back from either
look alike.

Only what JSON can represent round-trips: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``,
``int`` (64-bit, as Fleece), finite ``float``, ``bool`` and ``None``. Anything else -- a set, an
arbitrary object, NaN or infinity, a huge int -- is refused with an ``InvalidArgumentError`` that
names the path of the offending value (``address.geo[1]``).

The fast path is one call into orjson; the slow walk runs only to find the path of an error, or
when ``null`` appears in the output (orjson writes NaN as ``null``, so we must look).
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from couchlite.errors import InvalidArgumentError

# Datetimes and dataclasses are not JSON: hand them to ``default`` (or refuse them) instead of
# letting orjson stringify them, so that the result never depends on which path ran.
_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
#: orjson's nesting limit; deeper (or cyclic) values are refused
_MAX_DEPTH = 254
_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


def canonical_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Encode ``value`` canonically; ``default`` converts extra types (e.g. blobs) to JSON data."""
    try:
        out = orjson.dumps(value, default=default, option=_SORTED)
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
            if not _INT64_MIN <= item <= _UINT64_MAX:
                raise InvalidArgumentError(f"integer out of 64-bit range at {_show(path)}")
            continue
        if type(item) is float:  # orjson refuses float subclasses
            if not math.isfinite(item):
                raise InvalidArgumentError(
                    f"{item!r} cannot be represented in JSON at {_show(path)}"
                )
            continue
        if depth >= _MAX_DEPTH:
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


def _show(path: str) -> str:
    return repr(path) if path else "the top level"


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON (raises ``InvalidArgumentError`` on malformed input)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(f"malformed JSON: {exc}") from exc


def canonicalize(data: bytes | bytearray | memoryview | str) -> bytes:
    """Re-encode JSON text received from elsewhere in canonical form."""
    return canonical_json(loads(data))
