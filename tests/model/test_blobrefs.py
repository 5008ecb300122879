"""The one blob-reference scanner: both forms, valid digests only, cheap and deep-safe."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from couchlite.model.blobrefs import (
    blob_digests,
    blob_digests_of,
    digests_in_value,
    is_valid_digest,
    may_reference_blobs,
    raw_digest,
)


def digest(data: bytes) -> str:
    return "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


A, B, C = digest(b"a"), digest(b"b"), digest(b"c")


def blob(d: str) -> dict[str, object]:
    return {"@type": "blob", "digest": d, "length": 1, "content_type": "text/plain"}


def test_modern_blobs_anywhere() -> None:
    body = {"photo": blob(A), "list": [1, {"deep": [blob(B)]}], "again": blob(A)}
    assert blob_digests(orjson.dumps(body)) == [A, B]


def test_legacy_attachments_at_top_level() -> None:
    body = {
        "_attachments": {
            "a.txt": {"digest": A, "length": 1, "stub": True, "revpos": 1},
            "blob_/photo": {"digest": B, "content_type": "image/png"},
            "broken": {"length": 3},
            "not-a-dict": 7,
        },
        "photo": blob(B),
    }
    assert sorted(blob_digests(orjson.dumps(body))) == sorted([A, B])


def test_nested_attachments_key_is_not_legacy() -> None:
    body = {"inner": {"_attachments": {"a": {"digest": A}}}}
    assert blob_digests(orjson.dumps(body)) == []


def test_a_blob_dict_is_not_looked_into() -> None:
    body = {"x": {"@type": "blob", "digest": A, "meta": {"@type": "blob", "digest": B}}}
    assert blob_digests(orjson.dumps(body)) == [A]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha1-",
        "md5-" + A[5:],
        A[:-1],
        A + "=",
        "sha1-" + "!" * 28,
        "sha1-" + base64.b64encode(b"x" * 19).decode(),
        7,
        None,
    ],
)
def test_invalid_digests_name_no_blob(bad: object) -> None:
    assert not is_valid_digest(bad)
    body = orjson.dumps(
        {"b": {"@type": "blob", "digest": bad}, "_attachments": {"a": {"digest": bad}}}
    )
    assert blob_digests(body) == []


def test_one_spelling_per_digest() -> None:
    # base64 ignores the unused low bits of the last character: "...I=" and "...J=" decode to
    # the same 20 bytes, but only the canonical spelling is a digest
    assert raw_digest(A) is not None
    text = A[5:]
    last = text[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    other = alphabet[alphabet.index(last) ^ 1]
    twin = "sha1-" + text[:-2] + other + "="
    assert base64.b64decode(twin[5:]) == base64.b64decode(text)
    assert not is_valid_digest(twin)


def test_escaped_key_is_still_found() -> None:
    body = b'{"f":{"@type":"bl\\u006fb","\\u0064igest":"' + A.encode() + b'"}}'
    assert b'"digest"' not in body
    assert may_reference_blobs(body)
    assert blob_digests(body) == [A]


def test_bodies_without_the_key_are_not_parsed() -> None:
    assert not may_reference_blobs(b'{"a":"not json at all')
    assert blob_digests(b'{"a": [1, 2') == []  # (would not decode)
    assert blob_digests(b'not json, but has "digest"') == []
    assert blob_digests(None) == []


def test_deep_bodies_do_not_recurse() -> None:
    value: object = blob(C)
    for _ in range(5000):
        value = {"a": [value]}
    assert digests_in_value(value) == [C]
    text = b'{"a":' * 1000 + orjson.dumps(blob(C)) + b"}" * 1000
    assert blob_digests(text) in ([C], [])  # orjson may refuse that depth: never RecursionError


def test_blob_digests_of_many_bodies() -> None:
    bodies = [orjson.dumps({"x": blob(A)}), None, b"{}", orjson.dumps({"y": [blob(B)]})]
    assert blob_digests_of(bodies) == {A, B}
