"""``model.legacy``: LiteCore's rules for top-level ``_`` properties."""

from __future__ import annotations

import copy

import orjson
import pytest

from couchlite.errors import InvalidArgumentError
from couchlite.model.legacy import (
    check_local_properties,
    strip_old_meta_body,
    strip_old_meta_properties,
)

A = "sha1-" + "A" * 27 + "="
B = "sha1-" + "B" * 26 + "A="


def _blob(digest: str, **extra: object) -> dict[str, object]:
    return {"@type": "blob", "digest": digest, **extra}


def test_every_top_level_underscore_property_goes() -> None:
    props = {"_id": "x", "_rev": "1-a", "_deleted": True, "_exp": 1, "_x": 2, "a": {"_id": 3}}
    assert strip_old_meta_properties(props) == {"a": {"_id": 3}}


def test_real_attachments_stay_and_stand_ins_go() -> None:
    props = {
        "file": _blob(A, length=3),
        "list": [_blob(B)],
        "_attachments": {
            "real.txt": {"digest": B, "stub": True},
            "no-digest": {"data": "aGk="},
            "blob_1": {"digest": A},
            "blob_/file": {"digest": A, "length": 3},
            "blob_/list/0": {"digest": B},
            "blob_/nowhere": {"digest": A},  # names no blob: a real attachment
            "not-a-dict": 5,
        },
    }
    before = copy.deepcopy(props)
    assert strip_old_meta_properties(props) == {
        "file": _blob(A, length=3),
        "list": [_blob(B)],
        "_attachments": {
            "real.txt": {"digest": B, "stub": True},
            "no-digest": {"data": "aGk="},
            "blob_/nowhere": {"digest": A},
        },
    }
    assert props == before  # the input is not modified


def test_only_stand_ins_means_no_attachments_left() -> None:
    props = {"f": _blob(A), "_attachments": {"blob_/f": {"digest": A}, "x": 1}}
    assert strip_old_meta_properties(props) == {"f": _blob(A)}


def test_stand_in_with_another_digest_updates_its_blob() -> None:
    props = {
        "a/b": {"c~d": [_blob(A, length=1, content_type="text/plain", extra=True)]},
        "_attachments": {"blob_/a~1b/c~0d/0": {"digest": B, "length": 9}},
    }
    before = copy.deepcopy(props)
    assert strip_old_meta_properties(props) == {
        "a/b": {"c~d": [{"@type": "blob", "digest": B, "length": 9, "extra": True}]}
    }
    assert props == before


def test_body_level_strip_leaves_clean_bodies_untouched() -> None:
    clean = b'{"a":"_id","b":1}'
    assert strip_old_meta_body(clean) is clean
    assert strip_old_meta_body(b"[1]") == b"[1]"
    assert orjson.loads(strip_old_meta_body(b'{"\\u005fid":"x","a":1}')) == {"a": 1}


@pytest.mark.parametrize("key", ["_id", "_rev", "_deleted"])
def test_local_check_names_the_key(key: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"'{key}'"):
        check_local_properties({key: 1}, "doc")
    check_local_properties({"_attachments": {}, "_other": 1}, "doc")
