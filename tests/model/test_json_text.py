"""check_json_text: JSON text from a peer held to the local API's rules (nesting, 64-bit
integers) before anything parses it, cheaply for the usual body."""

from __future__ import annotations

import pytest

from couchlite import InvalidArgumentError
from couchlite.model.canonical import MAX_DEPTH, canonical_json, check_json_text


def nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + close * depth


@pytest.mark.parametrize(
    "text",
    [
        b'{"n": 18446744073709551615}',  # 2**64 - 1: Fleece's unsigned range
        b'{"n": -9223372036854775808}',
        b'{"s": "123456789012345678901234567890"}',  # digits inside a string
        b'{"f": 1.2345678901234567890123}',  # a float's digits
        b'{"f": 12345678901234567890123.5}',
        nested(MAX_DEPTH),
        b"[" + b"{}," * 5000 + b"{}]",  # many brackets, shallow
        b'["[[[[[", ' + nested(MAX_DEPTH - 1) + b"]",  # brackets inside a string
        b"",
    ],
)
def test_accepted(text: bytes) -> None:
    check_json_text(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b'{"n": 18446744073709551616}', "64-bit"),
        (b'{"n": -9223372036854775809}', "64-bit"),
        (b"[1, 123456789012345678901234567890]", "64-bit"),
        (b"99999999999999999999", "64-bit"),
        (b'{"n": ' + b"9" * 5000 + b"}", "64-bit"),
        (nested(MAX_DEPTH + 1), "deep"),
        (nested(MAX_DEPTH + 1, b'{"a":', b"}").replace(b"}", b"1}", 1), "deep"),
        (nested(5000), "deep"),
        (b'["]]]]", ' + nested(MAX_DEPTH) + b"]", "deep"),
    ],
)
def test_refused(text: bytes, why: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_json_text(text)
    assert why in str(info.value) or (why == "deep" and "nested" in str(info.value))
    assert len(str(info.value)) < 400


def test_same_limits_as_the_local_api() -> None:
    # what a local save accepts, a peer may send, and the reverse
    value: list[object] = []
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    check_json_text(canonical_json(value))
    with pytest.raises(InvalidArgumentError):
        canonical_json([value])
    with pytest.raises(InvalidArgumentError):
        check_json_text(b"[" + canonical_json(value) + b"]")
    for n in (2**64 - 1, -(2**63)):
        check_json_text(canonical_json({"n": n}))
    for n in (2**64, -(2**63) - 1):
        with pytest.raises(InvalidArgumentError):
            canonical_json({"n": n})
        with pytest.raises(InvalidArgumentError):
            check_json_text(b'{"n": %d}' % n)
