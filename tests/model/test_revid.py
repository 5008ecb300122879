"""Revision IDs: parsing, ordering, generation of new IDs."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from couchlite.errors import InvalidArgumentError, LiteCoreCode
from couchlite.model.revid import (
    check_rev_id,
    compare_rev_ids,
    generation,
    is_valid_rev_id,
    new_rev_id,
    parse_rev_id,
    rev_sort_key,
)

SHA1 = "a" * 40
MD5 = "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("rev_id", "expected"),
    [
        (f"1-{SHA1}", (1, SHA1)),
        (f"1-{MD5}", (1, MD5)),
        (f"42-{'f' * 36}", (42, "f" * 36)),
        (f"9999999999999999-{SHA1}", (9999999999999999, SHA1)),
    ],
)
def test_parse_valid(rev_id: str, expected: tuple[int, str]) -> None:
    assert parse_rev_id(rev_id) == expected
    assert is_valid_rev_id(rev_id)
    check_rev_id(rev_id)
    assert generation(rev_id) == expected[0]


@pytest.mark.parametrize(
    "rev_id",
    [
        f"0-{SHA1}",  # generation 0
        f"01-{SHA1}",  # leading zero
        f"-1-{SHA1}",
        f"+1-{SHA1}",
        f" 1-{SHA1}",
        f"1-{SHA1} ",
        f"1-{SHA1}\n",
        f"1-{'A' * 40}",  # uppercase hex
        f"1-{'a' * 31}",  # too short
        f"1-{'a' * 30}",  # even but too short
        f"1-{'a' * 41}",  # too long
        f"1-{'a' * 42}",
        f"1-{'a' * 33}",  # odd number of hex digits: not whole bytes
        f"1-{'a' * 39}",
        f"1-{'g' * 40}",  # not hex
        f"1_0-{SHA1}",
        f"10000000000000000-{SHA1}",  # 17 digits
        SHA1,  # no generation
        f"1{SHA1}",
        f"1--{SHA1}",
        "1-",
        "",
        "-",
        "1@abcdef",  # version-vector form
    ],
)
def test_parse_invalid(rev_id: str) -> None:
    assert not is_valid_rev_id(rev_id)
    for check in (parse_rev_id, check_rev_id):
        with pytest.raises(InvalidArgumentError, match="invalid revision ID") as info:
            check(rev_id)
        assert info.value.code == LiteCoreCode.BAD_REVISION_ID
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 1, b"1-" + SHA1.encode(), [f"1-{SHA1}"], 1.5])
def test_parse_non_strings(value: Any) -> None:
    assert not is_valid_rev_id(value)
    with pytest.raises(InvalidArgumentError):
        parse_rev_id(value)


def test_generation_falls_back_to_validation() -> None:
    with pytest.raises(InvalidArgumentError):
        generation(SHA1)
    with pytest.raises(InvalidArgumentError):
        generation(f"x-{SHA1}")
    assert generation(f"17-{MD5}") == 17


# --- ordering --------------------------------------------------------------------------------


def test_generation_orders_first() -> None:
    older, newer = f"9-{'f' * 40}", f"10-{'0' * 40}"
    assert compare_rev_ids(older, newer) == -1
    assert compare_rev_ids(newer, older) == 1
    assert rev_sort_key(older) < rev_sort_key(newer)


def test_generation_compared_numerically_not_as_text() -> None:
    ids = [f"{g}-{SHA1}" for g in (10, 9, 100, 2, 1)]
    assert [generation(r) for r in sorted(ids, key=rev_sort_key)] == [1, 2, 9, 10, 100]


def test_equal_generation_compares_digests() -> None:
    low, high = f"3-{'1' * 40}", f"3-{'a' * 40}"
    assert compare_rev_ids(low, high) == -1
    assert compare_rev_ids(high, low) == 1
    assert compare_rev_ids(low, low) == 0
    # text comparison of lowercase hex is byte order of the digest
    assert (bytes.fromhex("1" * 40) < bytes.fromhex("a" * 40)) is (low < high)


def test_sort_key_splits() -> None:
    assert rev_sort_key(f"12-{SHA1}") == (12, SHA1)


def test_compare_is_antisymmetric_and_sorts() -> None:
    ids = [f"{g}-{d * 40}" for g in (1, 2, 3) for d in "0f7"]
    ordered = sorted(ids, key=rev_sort_key)
    for i, a in enumerate(ordered):
        for j, b in enumerate(ordered):
            assert compare_rev_ids(a, b) == (i > j) - (i < j)


# --- new IDs ---------------------------------------------------------------------------------


def test_new_root_revision() -> None:
    rev = new_rev_id(None, False, b'{"a":1}')
    assert is_valid_rev_id(rev)
    gen, digest = parse_rev_id(rev)
    assert gen == 1
    assert len(digest) == 40
    # LiteCore's layout for a root: zero-length parent, deleted byte, body
    assert digest == hashlib.sha1(b"\x00" + b"\x00" + b'{"a":1}').hexdigest()


def test_new_child_digest_layout() -> None:
    parent = f"3-{SHA1}"
    rev = new_rev_id(parent, True, b"{}")
    parent_bin = bytes([3]) + bytes.fromhex(SHA1)
    expected = hashlib.sha1(bytes([len(parent_bin)]) + parent_bin + b"\x01" + b"{}").hexdigest()
    assert rev == f"4-{expected}"


def test_varint_generation_in_parent_encoding() -> None:
    parent = f"300-{MD5}"  # 300 = 0xAC 0x02 as a varint
    parent_bin = b"\xac\x02" + bytes.fromhex(MD5)
    expected = hashlib.sha1(bytes([len(parent_bin)]) + parent_bin + b"\x00" + b"{}").hexdigest()
    assert new_rev_id(parent, False, b"{}") == f"301-{expected}"


def test_new_rev_id_deterministic() -> None:
    parent = f"1-{SHA1}"
    assert new_rev_id(parent, False, b'{"x":1}') == new_rev_id(parent, False, b'{"x":1}')
    assert new_rev_id(None, True, b"{}") == new_rev_id(None, True, b"{}")


def test_new_rev_id_sensitive_to_inputs() -> None:
    base = new_rev_id(f"1-{SHA1}", False, b'{"x":1}')
    variants = {
        new_rev_id(f"1-{'b' * 40}", False, b'{"x":1}'),  # other parent digest
        new_rev_id(f"2-{SHA1}", False, b'{"x":1}'),  # other parent generation
        new_rev_id(f"1-{SHA1}", True, b'{"x":1}'),  # deleted
        new_rev_id(f"1-{SHA1}", False, b'{"x":2}'),  # body
        new_rev_id(None, False, b'{"x":1}'),  # no parent
    }
    assert base not in variants
    assert len(variants) == 5


def test_generation_increments() -> None:
    rev = new_rev_id(None, False, b"{}")
    for expected in range(2, 140):
        rev = new_rev_id(rev, False, b"{}")
        assert generation(rev) == expected
        assert is_valid_rev_id(rev)


def test_new_rev_id_rejects_bad_parent() -> None:
    with pytest.raises(InvalidArgumentError):
        new_rev_id("nonsense", False, b"{}")
    # regression: an odd-length digest used to parse, then crash bytes.fromhex with ValueError
    with pytest.raises(InvalidArgumentError):
        new_rev_id(f"1-{'a' * 33}", False, b"{}")
