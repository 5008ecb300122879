"""Properties of JSON deltas: create/apply round trips on random JSON, and fuzzed deltas."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from couchlite.model.jsondelta import CorruptDeltaError, apply_delta, create_delta

pytestmark = pytest.mark.timeout(120)

FAST = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# JSON text: no surrogates (not encodable as UTF-8); long strings too, so string edits happen
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=50, max_size=150
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=25,
)


def _wire(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _same(a: Any, b: Any) -> bool:
    # exact equality, types included (1 vs 1.0 vs True, 0.0 vs -0.0)
    options = orjson.OPT_SORT_KEYS
    return orjson.dumps(a, option=options) == orjson.dumps(b, option=options)


@FAST
@given(json_values, json_values)
def test_round_trip_on_random_pairs(old: Any, new: Any) -> None:
    delta = _wire(create_delta(old, new))
    assert _same(apply_delta(old, delta), new)


def _mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """A copy of ``value`` with a few random edits: what a document's next revision looks like."""
    if isinstance(value, dict):
        out = {
            k: _mutate(v, data, depth + 1) if data.draw(st.booleans()) else v
            for k, v in value.items()
        }
        if out and data.draw(st.booleans()):
            out.pop(data.draw(st.sampled_from(sorted(out))))
        if data.draw(st.booleans()):
            out[data.draw(text)] = data.draw(json_values)
        return out
    if isinstance(value, list):
        out_list = [_mutate(v, data, depth + 1) if data.draw(st.booleans()) else v for v in value]
        if data.draw(st.booleans()):
            out_list.append(data.draw(scalars))
        elif out_list and data.draw(st.booleans()):
            out_list.pop()
        return out_list
    if isinstance(value, str) and value and data.draw(st.booleans()):
        at = data.draw(st.integers(min_value=0, max_value=len(value)))
        return value[:at] + data.draw(text) + value[at + data.draw(st.integers(0, 5)) :]
    return data.draw(scalars) if data.draw(st.booleans()) else value


@FAST
@given(st.dictionaries(text, json_values, max_size=8), st.data())
def test_round_trip_on_mutations_of_a_document(doc: dict[str, Any], data: st.DataObject) -> None:
    new = _mutate(doc, data)
    delta = _wire(create_delta(doc, new))
    assert _same(apply_delta(doc, delta), new)
    if _same(doc, new):
        assert delta == {}


@FAST
@given(st.integers(min_value=1, max_value=120), json_values, json_values)
def test_round_trip_deeply_nested(depth: int, old_leaf: Any, new_leaf: Any) -> None:
    old, new = old_leaf, new_leaf
    for i in range(depth):
        old = {"k": old} if i % 3 else [0, old]
        new = {"k": new} if i % 3 else [0, new]
    assert _same(apply_delta(old, _wire(create_delta(old, new))), new)


@FAST
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=60, max_size=300),
    st.data(),
)
def test_round_trip_unicode_string_edits(old: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(old)))
    cut = data.draw(st.integers(min_value=0, max_value=10))
    new = old[:at] + data.draw(text) + old[at + cut :]
    delta = _wire(create_delta({"s": old}, {"s": new}))
    assert apply_delta({"s": old}, delta) == {"s": new}


@FAST
@given(json_values, json_values)
def test_apply_either_succeeds_or_raises_the_typed_error(old: Any, delta: Any) -> None:
    # any JSON value as a delta: a result, or CorruptDeltaError -- never another exception
    with contextlib.suppress(CorruptDeltaError):
        apply_delta(old, delta)


@FAST
@given(st.text(alphabet="0123456789=-+|xé", max_size=30))
def test_fuzzed_string_edits_raise_the_typed_error(ops: str) -> None:
    old = "abcdé"
    assume(ops)
    try:
        result = apply_delta(old, [ops, 0, 2])
    except CorruptDeltaError:
        return
    assert isinstance(result, str)
