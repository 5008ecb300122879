"""Properties of canonical JSON: round trip, determinism, agreement with the stdlib."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from couchlite.model.canonical import canonical_json, canonicalize, loads

SETTINGS = settings(max_examples=150, deadline=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Equality with floats compared by value (and -0.0 == 0.0), types kept apart."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and math.isclose(a, b, rel_tol=0.0, abs_tol=0.0)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def shuffled(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = [(k, shuffled(v, rnd)) for k, v in value.items()]
        rnd.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    return value


@SETTINGS
@given(json_values)
def test_round_trip(value: Any) -> None:
    assert same(loads(canonical_json(value)), value)


@SETTINGS
@given(json_values, st.randoms(use_true_random=False))
def test_independent_of_insertion_order(value: Any, rnd: random.Random) -> None:
    assert canonical_json(shuffled(value, rnd)) == canonical_json(value)


@SETTINGS
@given(json_values)
def test_fixed_point_and_matches_stdlib_structure(value: Any) -> None:
    out = canonical_json(value)
    assert canonicalize(out) == out
    # the standard library reads the same data; keys come out sorted by code point
    parsed = json.loads(out.decode("utf-8"))
    assert same(parsed, value)

    def check_sorted(v: Any) -> None:
        if isinstance(v, dict):
            assert list(v) == sorted(v)
            for child in v.values():
                check_sorted(child)
        elif isinstance(v, list):
            for child in v:
                check_sorted(child)

    check_sorted(parsed)


def _outside_strings(text: str) -> str:
    """The characters of JSON ``text`` that are not inside string literals."""
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            out.append(ch)
    return "".join(out)


@SETTINGS
@given(json_values)
def test_no_insignificant_whitespace_and_unescaped_utf8(value: Any) -> None:
    text = canonical_json(value).decode("utf-8")
    assert not any(ch.isspace() for ch in _outside_strings(text))
    assert "\\u" not in text.replace("\\\\", "") or any(
        ord(ch) < 0x20 or ch == "\x7f" for ch in _strings_of(value)
    )


def _strings_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join([*value.keys(), *(_strings_of(v) for v in value.values())])
    if isinstance(value, list):
        return "".join(_strings_of(v) for v in value)
    return ""
