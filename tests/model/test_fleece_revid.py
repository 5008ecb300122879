"""Couchbase Lite's own revision IDs, recomputed from document bodies by a reference model.

Ground truth comes from files recorded against a real Couchbase Lite C 3.2.0: the revision IDs a
query returned (tests/data/query/cases.jsonl, bodies in the query datasets) and the revision IDs
the interop drivers printed or sent while saving, updating, deleting and resolving documents
(tests/data/interop). The encoder's bytes are checked against byte sequences from Fleece's own
encoder tests.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from couchlite.errors import InvalidArgumentError
from tests.model.fleece_reference import EMPTY_DICT, SharedKeys, cbl_rev_id, revision_digest_body

DATA = Path(__file__).resolve().parents[1] / "data"
QUERY = DATA / "query"
INTEROP = DATA / "interop"


# -- the query datasets ------------------------------------------------------------------------


@cache
def _dataset(name: str) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted((QUERY / name).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            body = json.loads(line)
            docs[body.pop("_id")] = body
    return docs


def _dataset_lines(name: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for line in (QUERY / name / "_default.jsonl").read_text(encoding="utf-8").splitlines():
        body = json.loads(line)
        out.append((body.pop("_id"), body))
    return out


def _query_rev_ids() -> list[tuple[str, str, str, str]]:
    """(case id, dataset, document ID, revision ID) for every revisionID a case expects."""
    found = []
    for line in (QUERY / "cases.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        for row in case.get("expected") or ():
            if "revisionID" in row:
                found.append((case["id"], case["dataset"], row["id"], row["revisionID"]))
    return found


QUERY_REV_IDS = _query_rev_ids()


def test_the_query_cases_list_revision_ids() -> None:
    assert len(QUERY_REV_IDS) >= 4
    assert {doc_id for _, _, doc_id, _ in QUERY_REV_IDS} >= {
        "name_1",
        "name_2",
        "name_50",
        "name_100",
    }


@pytest.mark.parametrize(("case", "dataset", "doc_id", "rev_id"), QUERY_REV_IDS)
def test_first_revision_of_a_dataset_document(
    case: str, dataset: str, doc_id: str, rev_id: str
) -> None:
    assert cbl_rev_id(None, False, _dataset(dataset)[doc_id]) == rev_id


@pytest.mark.parametrize("reverse", [False, True], ids=["file-order", "reversed"])
def test_a_whole_import_keeps_the_ids_in_either_order(reverse: bool) -> None:
    # one key table for the whole database, as CBL had: all bodies share one set of keys, so
    # the first one saved fixes the table and every later one encodes as if it were first
    lines = _dataset_lines("names")
    if reverse:
        lines.reverse()
    keys = SharedKeys()
    got = {doc_id: cbl_rev_id(None, False, body, shared_keys=keys) for doc_id, body in lines}
    for _, dataset, doc_id, rev_id in QUERY_REV_IDS:
        if dataset == "names":
            assert got[doc_id] == rev_id
    assert keys.keys[:3] == ("birthday", "collection", "contact")


# -- the interop recordings --------------------------------------------------------------------


@cache
def _header(name: str) -> dict[str, Any]:
    with (INTEROP / f"{name}.jsonl").open(encoding="utf-8") as lines:
        header: dict[str, Any] = json.loads(lines.readline())
    return header


def _stored(name: str, side: str, doc_id: str, rev_id: str) -> dict[str, Any]:
    for doc in _header(name)["databases_after"][side]:
        if doc["id"] == doc_id and doc["rev"] == rev_id:
            body: dict[str, Any] = doc["body"]
            return body
    raise LookupError(f"{name}: no {doc_id} {rev_id} on the {side} side")


def _sent_tombstone(name: str, doc_id: str) -> str:
    for line in (INTEROP / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[1:]:
        props = json.loads(line).get("decoded", {}).get("properties") or {}
        if props.get("Profile") == "rev" and props.get("id") == doc_id and props.get("deleted"):
            rev: str = props["rev"]
            return rev
    raise LookupError(f"{name}: no tombstone of {doc_id} was sent")


def _options(cmd: list[str]) -> dict[str, str]:
    return dict(zip(cmd[2::2], cmd[3::2], strict=True))


#: Sessions that reused the databases of the ones before them, in order.
CHAINS = [
    ["01-push-basic"],
    ["02-pull-basic"],
    ["03-pushpull-update-delete.setup", "03-pushpull-update-delete"],
    ["04-conflict.setup", "04-conflict", "04-conflict.followup"],
    ["05-blob-push", "05-blob-pull"],
    ["06-delta.setup", "06-delta-pull", "06-delta-push"],
    ["07-named-collection"],
    ["08-large-doc"],
    ["09-auth-failure"],
]


def _interop_cases() -> list[Any]:
    cases = []
    for chain in CHAINS:
        for side in ("active", "passive"):
            if any(
                step["side"] == side and step["cmd"][1] in ("put", "delete")
                for name in chain
                for step in _header(name).get("setup_steps", ())
            ):
                cases.append(pytest.param(chain, side, id=f"{chain[0][:2]}-{side}"))
    return cases


@pytest.mark.parametrize(("chain", "side"), _interop_cases())
def test_revisions_saved_through_the_interop_drivers(chain: list[str], side: str) -> None:
    keys = SharedKeys()
    current: dict[str, str] = {}
    checked = 0
    for name in chain:
        header = _header(name)
        for step in header.get("setup_steps", ()):
            cmd = step["cmd"]
            if step["side"] != side or cmd[1] not in ("put", "delete"):
                continue
            options = _options(cmd)
            doc_id = options["--id"]
            parent = current.get(doc_id)
            if cmd[1] == "delete":
                rev = _sent_tombstone(name, doc_id)
                assert cbl_rev_id(parent, True, None, shared_keys=keys) == rev
            else:
                rev = step["out"][0]["rev"]
                text = options.get("--json", "")
                whole = bool(text) and "...<" not in text and "--blob-key" not in options
                body = json.loads(text) if whole else _stored(name, side, doc_id, rev)
                assert cbl_rev_id(parent, False, body, shared_keys=keys) == rev, (name, doc_id)
            current[doc_id] = rev
            checked += 1
        # documents the session brought in: their keys entered the table as they were stored
        produced = set(current.values())
        for doc in header["databases_after"][side]:
            if doc["rev"] not in produced:
                revision_digest_body(doc["body"], keys)
                current[doc["id"]] = doc["rev"]
    assert checked


def test_the_shared_key_table_follows_the_database() -> None:
    # the passive saved p-1 {owner, n} first, so "new" came third: with a fresh table it would
    # sort between n and owner and give another digest
    body = json.loads(
        _options(_header("03-pushpull-update-delete")["setup_steps"][2]["cmd"])["--json"]
    )
    expected = "1-7093cf0ddc6ca2a1c16cf22ac9d77c1fb4137afd"
    assert cbl_rev_id(None, False, body, shared_keys=SharedKeys(["n", "owner"])) == expected
    assert cbl_rev_id(None, False, body) != expected


def test_a_conflict_resolution_revision() -> None:
    # CBL's default resolver kept the local body and put it on top of the remote branch
    remote = _header("04-conflict")["databases_after"]["passive"][0]["rev"]
    resolved = _header("04-conflict.followup")["databases_after"]["active"][0]
    keys = SharedKeys(["by", "v", "extra"])
    assert cbl_rev_id(remote, False, resolved["body"], shared_keys=keys) == resolved["rev"]


def test_a_deletion_digests_an_empty_dict() -> None:
    parent = "1-0a2eb8e2f248b57ce39123b704a529ce11c992c9"
    tombstone = _sent_tombstone("03-pushpull-update-delete", "a-2")
    assert cbl_rev_id(parent, True, None) == tombstone
    assert cbl_rev_id(parent, True, {}) == tombstone
    assert cbl_rev_id(parent, False, None) != tombstone


def test_a_large_body_uses_wide_collections() -> None:
    doc = _header("08-large-doc")["databases_after"]["active"][0]
    data = revision_digest_body(doc["body"])
    assert len(data) > 0x7FFE
    # 6,400 items: a wide array (its pointers reach back past 32 KB) whose count spills into a
    # varint (6400 - 2047 = 4353)
    assert bytes.fromhex("6FFF 8122") in data
    assert cbl_rev_id(None, False, doc["body"]) == doc["rev"]


def test_unsigned_integers_and_inline_wide_slots() -> None:
    # a blob's length (3520) is a 2-byte unsigned int sitting inline in a wide dict; a signed
    # or out-of-line int would digest differently
    doc = _header("05-blob-push")["databases_after"]["active"][0]
    assert doc["body"]["attachment"]["length"] == 3520
    assert cbl_rev_id(None, False, doc["body"]) == doc["rev"]
    data = revision_digest_body(doc["body"])
    assert bytes.fromhex("19c00d00") in data


def test_integral_floats_stay_floats() -> None:
    # prices such as 5.0 are stored as floats: turning them into ints changes the digest
    doc = _header("06-delta.setup")["databases_after"]["passive"][0]
    prices = [item["price"] for item in doc["body"]["items"]]
    assert 5.0 in prices and all(isinstance(p, float) for p in prices)
    assert cbl_rev_id(None, False, doc["body"]) == doc["rev"]
    as_ints = dict(doc["body"])
    as_ints["items"] = [
        {**item, "price": int(item["price"]) if item["price"].is_integer() else item["price"]}
        for item in doc["body"]["items"]
    ]
    assert cbl_rev_id(None, False, as_ints) != doc["rev"]


# -- the encoder, byte for byte ----------------------------------------------------------------

#: Values and their encoding, from Fleece's Tests/EncoderTests.cc (no shared keys involved).
FLEECE_VECTORS: list[tuple[Any, str]] = [
    (None, "3000"),
    (False, "3400"),
    (True, "3800"),
    (0, "0000"),
    (128, "0080"),
    (1234, "04D2"),
    (-1234, "0B2E"),
    (2047, "07FF"),
    (-2048, "0800"),
    (-2049, "11FF F700 8002"),
    (-12345678, "13B2 9E43 FF00 8003"),
    (-0x1122334455667788, "1778 8899 AABB CCDD EE00 8005"),
    (0xCCBBAA9988776655, "1F55 6677 8899 AABB CC00 8005"),
    (2**64 - 1, "1FFF FFFF FFFF FFFF FF00 8005"),
    (math.pi, "2800 182D 4454 FB21 0940 8005"),
    ("", "4000"),
    ("a", "4161"),
    ("ab", "4261 6200 8002"),
    ("abcdefghijklmn", "4E61 6263 6465 6667 6869 6A6B 6C6D 6E00 8008"),
    ("abcdefghijklmno", "4F0F 6162 6364 6566 6768 696A 6B6C 6D6E 6F00 8009"),
    ("abcdefghijklmnop", "4F10 6162 6364 6566 6768 696A 6B6C 6D6E 6F70 8009"),
    ("müßchop", "496D C3BC C39F 6368 6F70 8005"),
    ([], "6000"),
    ([None], "6001 3000 8002"),
    (["a", "hello"], "4568 656C 6C6F 6002 4161 8005 8003"),
    (["a", "hello", "a", "hello"], "4568 656C 6C6F 6004 4161 8005 4161 8007 8005"),
    ({}, "7000"),
    ({"f": 42}, "7001 4166 002A 8003"),
    ({"o-o": 42}, "436F 2D6F 7001 8003 002A 8003"),
]


@pytest.mark.parametrize(("value", "expected"), FLEECE_VECTORS, ids=lambda v: repr(v)[:24])
def test_encoder_vectors(value: Any, expected: str) -> None:
    unshared = SharedKeys(max_count=0)
    assert revision_digest_body(value, unshared) == bytes.fromhex(expected)


def test_integer_keys_from_the_shared_key_table() -> None:
    # Fleece's test writes integer keys 0, 1 and 2047 directly; here they come from a full table
    keys = SharedKeys([f"k{i}" for i in range(2048)])
    data = revision_digest_body({"k2047": -1, "k1": 42, "k0": 23}, keys)
    assert data == bytes.fromhex("7003 0000 0017 0001 002A 07FF 0FFF 8007")


def test_shared_keys_sort_before_string_keys() -> None:
    keys = SharedKeys(["zeta"])
    data = revision_digest_body({"@a": 1, "zeta": 2}, keys)
    # "@a" is not eligible: it stays a string key, written first, and sorts after key 0
    assert data == bytes.fromhex("4240 6100 7002 0000 0002 8005 0001 8005")
    assert keys.keys == ("zeta",)


@pytest.mark.parametrize(
    ("key", "eligible"),
    [
        ("name", True),
        ("o-o", True),
        ("snake_case_16chr", True),
        ("", True),
        ("seventeen_chars_x", False),
        ("@type", False),
        ("with space", False),
        ("café", False),
    ],
)
def test_which_keys_can_be_shared(key: str, eligible: bool) -> None:
    keys = SharedKeys()
    assert (keys.encode_and_add(key.encode()) == 0) is eligible
    assert len(keys) == int(eligible)


def test_the_key_table_is_bounded_and_copies() -> None:
    keys = SharedKeys(max_count=2)
    assert [keys.encode_and_add(k) for k in (b"a", b"b", b"c", b"a")] == [0, 1, None, 0]
    clone = keys.copy()
    assert clone.keys == ("a", "b")
    with pytest.raises(ValueError, match="cannot be a shared key"):
        SharedKeys(["not ok"])


def test_keys_are_assigned_depth_first_in_sorted_order() -> None:
    keys = SharedKeys()
    revision_digest_body({"b": {"d": 1, "c": 2}, "a": [{"e": None}]}, keys)
    assert keys.keys == ("a", "e", "b", "c", "d")


def test_floats() -> None:
    unshared = SharedKeys(max_count=0)
    # exact in 32 bits: stored so, flagged as standing for a double
    assert revision_digest_body(0.5, unshared) == bytes.fromhex("2400 0000 003F 8003")
    assert revision_digest_body(2.0, unshared) == bytes.fromhex("2400 0000 0040 8003")
    assert revision_digest_body(0.1, unshared)[:2] == b"\x28\x00"
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError):
            revision_digest_body(bad)


def test_a_long_pointer_widens_its_collection() -> None:
    unshared = SharedKeys(max_count=0)
    data = revision_digest_body(["hi", "x" * 0x8000], unshared)
    header = data.index(b"\x68\x02")  # an array of 2, wide
    assert data[header + 2 : header + 4] == b"\x80\x00"  # a 4-byte pointer
    narrow = revision_digest_body(["hi", "x" * 100], unshared)
    assert b"\x60\x02" in narrow


def test_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        revision_digest_body({1: "x"})
    with pytest.raises(TypeError):
        revision_digest_body({"a": {1, 2}})
    with pytest.raises(ValueError):
        revision_digest_body(10**400)


def test_revision_id_shape() -> None:
    assert EMPTY_DICT == b"\x70\x00"
    first = cbl_rev_id(None, False, {"n": 1})
    assert first == "1-6b1ccd815504bdc118033214b67018360704b84f"  # 09-auth-failure's doc-x
    assert cbl_rev_id(first, False, {"n": 2}).startswith("2-")
    with pytest.raises(InvalidArgumentError):
        cbl_rev_id("not-a-rev", False, {"n": 1})
