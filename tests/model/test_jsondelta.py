"""JSON deltas (Fleece JSONDelta format): each form, the error paths, and the real recordings."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from couchlite.blip import BlipProtocol, Message
from couchlite.errors import InvalidArgumentError, LiteCoreCode
from couchlite.model.jsondelta import (
    MIN_STRING_DIFF_BYTES,
    CorruptDeltaError,
    apply_delta,
    apply_string_delta,
    create_delta,
    string_delta,
)
from tests.data import INTEROP

LONG = "alpha hotel oscar victor charlie juliett quebec xray echo lima sierra zulu golf"


def round_trip(old: Any, new: Any) -> Any:
    delta = create_delta(old, new)
    # what goes on the wire is JSON text: the delta must survive it
    delta = orjson.loads(orjson.dumps(delta))
    result = apply_delta(old, delta)
    assert result == new
    assert orjson.dumps(result, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        new, option=orjson.OPT_SORT_KEYS
    )
    return delta


# --- creating: the forms Fleece writes ----------------------------------------------------------


def test_no_change_is_an_empty_object() -> None:
    assert create_delta({"a": 1}, {"a": 1}) == {}
    assert create_delta([], []) == {}
    assert create_delta("x", "x") == {}
    assert apply_delta(7, {}) == 7


def test_dict_key_changes() -> None:
    old = {"age": 8, "grade": 3, "name": {"first": "Bobby", "last": "Briggs"}}
    new = {"age": 18, "name": {"first": "Robert", "last": "Briggs"}}
    assert round_trip(old, new) == {"age": 18, "grade": [], "name": {"first": "Robert"}}


def test_insertions_of_containers_are_wrapped() -> None:
    assert round_trip({}, {"a": [1], "b": {}, "c": None}) == {"a": [[1]], "b": [{}], "c": None}


def test_top_level_replacement_is_wrapped() -> None:
    assert round_trip(1, 2) == [2]
    assert round_trip({"a": 1}, [1]) == [[1]]
    assert round_trip("a", None) == [None]


def test_array_items_and_tail() -> None:
    assert round_trip([1, 2, 3], [1, 5, 3]) == {"1": 5}
    assert round_trip([1, 2, 3], [1, 2, 3, 4]) == {"3-": [4]}
    assert round_trip([1, 2, 3], [1]) == {"1-": []}
    assert round_trip([1, 2, 3], [0, 2]) == {"0": 0, "2-": []}
    assert round_trip([{"a": 1}], [{"a": 2}, [3]]) == {"0": {"a": 2}, "1-": [[3]]}


def test_empty_array_against_non_empty_is_a_replacement() -> None:
    assert round_trip({"a": []}, {"a": [1]}) == {"a": [[1]]}
    assert round_trip({"a": [1]}, {"a": []}) == {"a": [[]]}


def test_types_are_kept_exactly() -> None:
    assert round_trip({"n": 1}, {"n": 1.0}) == {"n": 1.0}
    assert round_trip({"n": 1}, {"n": True}) == {"n": True}
    assert round_trip({"n": 0.0}, {"n": -0.0}) == {"n": -0.0}
    assert round_trip([0], [False]) == {"0": False}


def test_string_edit_format() -> None:
    old = "The fog comes in on little cat feet, the fog comes in on little cat feet."
    new = old.replace("fog", "dog", 1)
    ops = string_delta(old, new)
    assert ops == "4=1-1+d|68="
    assert apply_string_delta(old, ops) == new
    assert round_trip({"s": old}, {"s": new}) == {"s": [ops, 0, 2]}


def test_short_strings_are_replaced() -> None:
    old = "x" * (MIN_STRING_DIFF_BYTES - 2)
    new = old + "y"
    assert string_delta(old, new) is None
    assert round_trip({"s": old}, {"s": new}) == {"s": new}


def test_edit_not_clearly_smaller_is_abandoned() -> None:
    old = "a" * 80
    new = "b" * 80
    assert string_delta(old, new) is None
    assert round_trip({"s": old}, {"s": new}) == {"s": new}


def test_string_edits_count_utf8_bytes_and_keep_characters_whole() -> None:
    old = "héllo wörld, ünïcödé " * 4 + "日本語のテキスト" + "😀" * 3
    new = old.replace("wörld", "wèrld", 1).replace("😀", "😃", 1)
    delta = round_trip({"s": old}, {"s": new})
    ops = delta["s"][0]
    assert delta["s"][1:] == [0, 2]
    # every count is a byte count of whole characters: applying byte-wise decodes cleanly
    assert apply_string_delta(old, ops) == new


def test_insertion_may_contain_the_marker() -> None:
    old = "a|b " * 20
    new = old[:10] + "x|y|z" + old[10:]
    ops = string_delta(old, new)
    assert ops is not None and "5+x|y|z|" in ops
    assert apply_string_delta(old, ops) == new


# --- applying: legacy forms and errors ----------------------------------------------------------


def test_legacy_jsondiffpatch_forms() -> None:
    assert apply_delta({"a": 1, "b": 2}, {"a": [1, 5], "b": [2, 0, 0]}) == {"a": 5}
    assert apply_delta({"a": 1}, {"a": [[1], [2]]}) == {"a": [2]}


def test_apply_does_not_modify_its_inputs() -> None:
    old = {"a": [1, 2], "b": {"c": 1}}
    delta = {"a": {"2-": [3]}, "b": {"c": []}}
    snapshot = json.dumps([old, delta])
    assert apply_delta(old, delta) == {"a": [1, 2, 3], "b": {}}
    assert json.dumps([old, delta]) == snapshot


@pytest.mark.parametrize(
    ("old", "delta"),
    [
        ({"a": 1}, {"b": []}),  # deletion of a missing key
        ({"a": 1}, {"b": [1, 2]}),  # legacy replacement of a missing key
        ({"a": 1}, {"b": [1, 0, 0]}),  # legacy deletion of a missing key
        ({"a": 1}, {"b": {}}),  # {...} over nothing
        ({"a": 1}, {"a": {"x": 1}}),  # {...} over a scalar
        ({"a": 1}, []),  # deleting the whole value
        ({"a": 1}, {"a": [1, 2, 3, 4]}),  # bad array count
        ({"a": 1}, {"a": [1, 0, 7]}),  # unknown mode
        ({"a": 1}, {"a": [1, 0, "2"]}),  # mode is no integer
        ({"a": 1}, {"a": ["1=", 0, 2]}),  # text edit of a number
        ({"a": "abc"}, {"a": ["", 0, 2]}),  # empty text edit
        ({"a": "abc"}, {"a": [3, 0, 2]}),  # text edit is no string
        ({"a": "abc"}, {"a": ["2=", 0, 2]}),  # does not cover the old string
        ({"a": "abc"}, {"a": ["4=", 0, 2]}),  # copies past the end
        ({"a": "abc"}, {"a": ["4-", 0, 2]}),  # skips past the end
        ({"a": "abc"}, {"a": ["3=2+x|", 0, 2]}),  # insertion overruns
        ({"a": "abc"}, {"a": ["3=1+xy", 0, 2]}),  # missing "|"
        ({"a": "abc"}, {"a": ["3*", 0, 2]}),  # unknown op
        ({"a": "abc"}, {"a": ["=3", 0, 2]}),  # count missing
        ({"a": "abc"}, {"a": ["3", 0, 2]}),  # op missing
        ({"a": "é"}, {"a": ["1=1-", 0, 2]}),  # splits a character
        ({"a": [1, 2]}, {"a": {"2": 1}}),  # index out of range
        ({"a": [1, 2]}, {"a": {"x": 1}}),  # not an index
        ({"a": [1, 2]}, {"a": {"01": 1}}),  # not canonical
        ({"a": [1, 2]}, {"a": {"3-": []}}),  # remainder past the end
        ({"a": [1, 2]}, {"a": {"1-": 5}}),  # remainder is no array
        ({"a": [1, 2]}, {"a": {"0-": [], "1-": []}}),  # two remainders
        ({"a": [1, 2]}, {"a": {"1": 5, "0-": []}}),  # index past the remainder
        ({"a": [1, 2]}, {"a": {"0": []}}),  # deleting an array item
    ],
)
def test_malformed_deltas_raise_the_typed_error(old: Any, delta: Any) -> None:
    with pytest.raises(CorruptDeltaError) as caught:
        apply_delta(old, delta)
    assert isinstance(caught.value, InvalidArgumentError)
    assert caught.value.code == LiteCoreCode.CORRUPT_DELTA == 32


def test_deep_nesting_round_trips() -> None:
    old: Any = "leaf"
    new: Any = "leaf2"
    for i in range(200):
        old = {"k": old, "i": i} if i % 2 else [old, i]
        new = {"k": new, "i": i} if i % 2 else [new, i]
    delta = round_trip(old, new)
    assert len(orjson.dumps(delta)) < 2000


# --- compatibility: real Couchbase Lite 3.2 deltas (tests/data/interop) --------------------------


def _revs(name: str) -> tuple[dict[str, Any], list[Message]]:
    lines = [json.loads(line) for line in (INTEROP / name).read_text("utf-8").splitlines() if line]
    decoders = {d: BlipProtocol(strict_numbering=False) for d in ("c2s", "s2c")}
    revs: list[Message] = []
    for record in lines[1:]:
        if "hex" not in record:
            continue
        for message in decoders[record["dir"]].receive_frame(bytes.fromhex(record["hex"])):
            if message.is_request and message.properties.get("Profile") == "rev":
                revs.append(message)
    return lines[0], revs


def test_recorded_deltas_apply_and_ours_match_them() -> None:
    _, (setup_rev,) = _revs("06-delta.setup.jsonl")
    gen1 = setup_rev.json()
    steps = [("06-delta-pull.jsonl", "active"), ("06-delta-push.jsonl", "passive")]
    base = gen1
    for name, receiver in steps:
        header, (rev,) = _revs(name)
        assert rev.properties["deltaSrc"] in rev.properties["history"]
        recorded = rev.json()
        expected = next(
            d["body"] for d in header["databases_after"][receiver] if d["id"] == "delta-doc"
        )
        assert apply_delta(base, recorded) == expected
        ours = create_delta(base, expected)
        assert ours == recorded  # same rules, same delta (string edit included)
        assert apply_delta(base, ours) == expected
        base = expected
