"""What the functions of the SQL++ library share: how MISSING and null arguments decide a
result before a function looks at them, and how values are read as numbers, compared and
ordered."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Final

from couchlite.query.values import MISSING, encode

_OK: Final = object()  # "no argument is MISSING or null"
_ABSENT: Final = object()  # an optional argument not given
_INT64: Final = 2**63


def _gate(*args: Any) -> Any:
    """MISSING if an argument is MISSING, else None if one is null, else ``_OK``."""
    result: Any = _OK
    for arg in args:
        if arg is MISSING:
            return MISSING
        if arg is None:
            result = None
    return result


def _gated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` behind the rule: MISSING if an argument is MISSING, else null if one is null."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        gate = _gate(*args)
        return fn(*args) if gate is _OK else gate

    return call


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _double(value: Any) -> float | None:
    """A numeric argument (booleans are 1 and 0) as a double, or None."""
    numeric = type(value) is float or (type(value) in (int, bool) and abs(value) < 1e308)
    return float(value) if numeric else None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _equal(a: Any, b: Any) -> bool:
    """SQL++ equality of two values that are not MISSING (numbers by value)."""
    if a is None or b is None:
        return a is b
    if type(a) in (int, float, bool) and type(b) in (int, float, bool):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)
    return bool(a == b)


def _collation_key(value: Any) -> tuple[Any, ...]:
    """Orders values as the query engine does: numbers, strings, null, false, true, arrays,
    objects; containers by their encoding (so ``ARRAY_MAX`` agrees with ``MAX`` over rows)."""
    if _is_number(value):
        return (0, value)
    if type(value) is str:
        return (1, value)
    if value is None:
        return (2,)
    if type(value) is bool:
        return (4 if value else 3,)
    return (5 if type(value) is list else 6, encode(value))
