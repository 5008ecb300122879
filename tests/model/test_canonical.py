"""Canonical JSON: byte form, validation with paths, the ``default`` hook."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections import namedtuple
from typing import Any

import pytest

from couchlite.errors import InvalidArgumentError, LiteCoreCode
from couchlite.model.canonical import canonical_json, canonicalize, find_invalid_value, loads


class Color(enum.Enum):
    RED = "red"
    BAD = float("nan")


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Blobby:
    def __init__(self, digest: str) -> None:
        self.digest = digest


def blob_default(value: Any) -> Any:
    if isinstance(value, Blobby):
        return {"@type": "blob", "digest": value.digest}
    raise TypeError


# --- the byte form ------------------------------------------------------------------------


def test_keys_sorted_and_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == (
        b'{"a":[1,2,{"c":true,"d":null}],"b":1}'
    )


def test_deterministic_regardless_of_insertion_order() -> None:
    one = {"z": 1, "a": {"y": 2, "b": 3}, "m": [1]}
    two = {"m": [1], "a": {"b": 3, "y": 2}, "z": 1}
    assert list(one) != list(two)
    assert canonical_json(one) == canonical_json(two)


def test_keys_sorted_by_code_point_which_is_utf8_byte_order() -> None:
    keys = ["é", "z", "Z", "a", "\U0001f600", "\uffff", "aa", ""]
    out = canonical_json(dict.fromkeys(keys, 0))
    expected = sorted(keys)
    assert list(json.loads(out)) == expected
    assert expected == sorted(keys, key=lambda k: k.encode())


def test_utf8_unescaped() -> None:
    out = canonical_json({"name": "Zoë 😀 日本"})
    assert out == '{"name":"Zoë 😀 日本"}'.encode()
    assert b"\\u" not in out


def test_control_characters_and_quotes_escaped() -> None:
    out = canonical_json('a\nb"c\\')
    assert out == b'"a\\nb\\"c\\\\"'
    assert b"\n" not in out


def test_scalars() -> None:
    assert canonical_json(None) == b"null"
    assert canonical_json(True) == b"true"
    assert canonical_json(False) == b"false"
    assert canonical_json(0) == b"0"
    assert canonical_json(-5) == b"-5"
    assert canonical_json(1.5) == b"1.5"
    assert canonical_json(0.1) == b"0.1"  # shortest round-trip form
    assert canonical_json("") == b'""'
    assert canonical_json([]) == b"[]"
    assert canonical_json({}) == b"{}"


def test_integers_stay_integers_and_floats_floats() -> None:
    assert loads(canonical_json({"i": 3, "f": 3.0})) == {"i": 3, "f": 3.0}
    assert type(loads(canonical_json(3))) is int
    assert type(loads(canonical_json(3.0))) is float


def test_tuples_encode_as_arrays() -> None:
    assert canonical_json({"t": (1, "a")}) == b'{"t":[1,"a"]}'


def test_64_bit_bounds_accepted() -> None:
    assert canonical_json(-(2**63)) == str(-(2**63)).encode()
    assert canonical_json(2**63 - 1) == str(2**63 - 1).encode()
    assert canonical_json(2**64 - 1) == str(2**64 - 1).encode()


def test_string_containing_null_is_fine() -> None:
    # "null" in the output triggers the slow walk; it must not refuse valid data
    assert canonical_json({"s": "null", "n": None}) == b'{"n":null,"s":"null"}'


# --- refusals, with the path ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": {"b": [0, 1, float("nan")]}}, "'a.b[2]'"),
        ({"a": {"b": [0, 1, float("inf")]}}, "'a.b[2]'"),
        ({"x": [float("-inf")]}, "'x[0]'"),
        ({"a": None, "b": float("nan")}, "'b'"),
        (float("nan"), "the top level"),
        ({"s": {1, 2}}, "'s'"),
        ([0, {"o": object()}], "'[1].o'"),
        ({"big": [2**64]}, "'big[0]'"),
        ({"small": -(2**63) - 1}, "'small'"),
        (2**100, "the top level"),
        ({"a": {"b": frozenset()}}, "'a.b'"),
        ({"a": b"bytes"}, "'a'"),
    ],
)
def test_refused_with_path(value: Any, path: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        canonical_json(value)
    assert path in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.code == LiteCoreCode.INVALID_PARAMETER


@pytest.mark.parametrize("key", [1, None, 1.5, ("t",), b"k"])
def test_non_string_keys_refused(key: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"is not a string") as info:
        canonical_json({"outer": {key: 1}})
    assert "'outer'" in str(info.value)


def test_refusal_message_names_the_type() -> None:
    with pytest.raises(InvalidArgumentError, match=r"a set at 'tags'"):
        canonical_json({"tags": {"x"}})


def test_surrogates_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        canonical_json({"s": "\ud800"})


def test_find_invalid_value_accepts_valid_data() -> None:
    find_invalid_value({"a": [1, 2.5, "x", None, True, {"b": []}]})  # no exception


def test_find_invalid_value_reports_first_problem_path() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'a\[1\]\.b'"):
        find_invalid_value({"a": [0, {"b": {1, 2}}]})


def test_cyclic_structure_refused_not_hanging() -> None:
    # regression: the path-finding walk looped forever on a cycle
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        canonical_json(cyclic)
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        canonical_json({"n": None, "x": looped})


def test_default_returning_itself_does_not_hang() -> None:
    with pytest.raises(InvalidArgumentError):
        canonical_json({"x": Blobby("d")}, default=lambda v: v)


def _nested(depth: int, inner: Any) -> Any:
    for _ in range(depth):
        inner = [inner]
    return inner


def test_deep_nesting_limit_matches_orjson() -> None:
    assert canonical_json(_nested(254, None)).count(b"[") == 254
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        canonical_json(_nested(300, None))


# --- types orjson would otherwise handle on its own -------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2020, 1, 2, 3, 4, 5),  # naive: no instant (aware ones are saved)
        datetime.time(1, 2),
        Point(1, 2),
    ],
)
def test_datetimes_and_dataclasses_refused_whether_or_not_null_appears(value: Any) -> None:
    # regression: orjson stringified these unless a null elsewhere triggered the walk, which
    # refused them -- the outcome depended on unrelated data
    with pytest.raises(InvalidArgumentError, match="'v'"):
        canonical_json({"v": value})
    with pytest.raises(InvalidArgumentError, match="'v'"):
        canonical_json({"n": None, "v": value})


def test_default_hook_sees_datetimes_and_dataclasses() -> None:
    def convert(value: Any) -> Any:
        if isinstance(value, datetime.date):
            return "D:" + value.isoformat()
        if isinstance(value, Point):
            return [value.x, value.y]
        raise TypeError

    assert canonical_json({"d": datetime.date(2020, 1, 2), "p": Point(1, 2)}, convert) == (
        b'{"d":"D:2020-01-02","p":[1,2]}'
    )


def test_enums_and_uuids_encode_consistently() -> None:
    u = uuid.UUID(int=1)
    plain = canonical_json({"c": Color.RED, "u": u})
    with_null = canonical_json({"c": Color.RED, "u": u, "z": None})
    assert plain == b'{"c":"red","u":"00000000-0000-0000-0000-000000000001"}'
    assert with_null == plain[:-1] + b',"z":null}'
    with pytest.raises(InvalidArgumentError, match="'c'"):
        canonical_json({"c": Color.BAD})


def test_float_and_tuple_subclasses_refused_with_path() -> None:
    class MyFloat(float):
        pass

    pair = namedtuple("pair", "a b")
    with pytest.raises(InvalidArgumentError, match=r"'x\[0\]'"):
        canonical_json({"x": [MyFloat(1.5)]})
    with pytest.raises(InvalidArgumentError, match=r"'y'"):
        canonical_json({"y": pair(1, 2)})


def test_str_int_dict_list_subclasses_accepted() -> None:
    class S(str):
        pass

    class D(dict):  # type: ignore[type-arg]
        pass

    assert canonical_json(D(b=S("x"), a=[True])) == b'{"a":[true],"b":"x"}'


# --- the default hook -------------------------------------------------------------------------


def test_default_hook_converts_extra_types() -> None:
    out = canonical_json({"att": [Blobby("sha1-abc")]}, blob_default)
    assert out == b'{"att":[{"@type":"blob","digest":"sha1-abc"}]}'


def test_default_hook_output_is_validated_with_path() -> None:
    with pytest.raises(InvalidArgumentError, match=r"'a\.b'"):
        canonical_json({"a": {"b": Blobby("x")}}, lambda v: float("nan"))


def test_default_hook_refusing_gives_path() -> None:
    with pytest.raises(InvalidArgumentError, match=r"a object at 'a\[0\]'"):
        canonical_json({"a": [object()]}, blob_default)


def test_default_hook_not_consulted_for_json_types() -> None:
    calls: list[Any] = []

    def spy(value: Any) -> Any:
        calls.append(value)
        raise TypeError

    assert canonical_json({"a": [1, "x", None, 2.5]}, spy) == b'{"a":[1,"x",null,2.5]}'
    assert calls == []


# --- loads / canonicalize ---------------------------------------------------------------------


def test_loads_accepts_bytes_str_memoryview() -> None:
    assert loads(b'{"a":1}') == {"a": 1}
    assert loads('{"a":1}') == {"a": 1}
    assert loads(memoryview(b"[1]")) == [1]
    assert loads(bytearray(b"[2]")) == [2]


@pytest.mark.parametrize("text", [b"", b"{", b"{'a':1}", b"[1,]", b"NaN", b"\xff"])
def test_loads_malformed(text: bytes) -> None:
    with pytest.raises(InvalidArgumentError, match="malformed JSON"):
        loads(text)


def test_canonicalize_reencodes() -> None:
    assert canonicalize(b'{ "b" : 1,\n "a" : "\\u00e9" }') == '{"a":"é","b":1}'.encode()
    assert canonicalize("[1, 2 ,3]") == b"[1,2,3]"


def test_canonicalize_is_idempotent() -> None:
    once = canonicalize('{"z": [1.0, {"y": null, "x": "\\n"}], "a": -0}')
    assert canonicalize(once) == once
