"""The TXT record: what a listener puts in it, and what a browser makes of anything it gets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from couchlite import _tuning
from couchlite.discovery import DiscoveredPeer, DiscoveryError
from couchlite.discovery.txt import build_txt, decode_txt, peer_id_for, read_txt

FP = "ab" * 32


def _record(**overrides: object) -> dict[str, str]:
    fields: dict[str, object] = {
        "peer_id": peer_id_for("0123456789abcdef0123456789abcdef"),
        "database": "laptop",
        "collections": ["_default._default", "demo.notes"],
        "tls": True,
        "fingerprint": FP,
        "auth": "password",
        "protocols": ["BLIP_3+CBMobile_3", "BLIP_3+CBMobile_2"],
    }
    fields.update(overrides)
    return build_txt(**fields)  # type: ignore[arg-type]


def _wire(txt: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in txt.items()}


def test_a_record_round_trips() -> None:
    txt = _record()
    assert txt["v"] == "1" and txt["tls"] == "1" and txt["fp"] == FP
    peer = DiscoveredPeer.from_record("Laptop", ["127.0.0.1"], 4984, decode_txt(_wire(txt)))
    assert peer.database == "laptop"
    assert peer.collections == ("_default._default", "demo.notes")
    assert peer.collections_complete
    assert peer.tls and peer.fingerprint == FP and peer.auth == "password"
    assert peer.protocols == ("BLIP_3+CBMobile_3", "BLIP_3+CBMobile_2")
    assert peer.peer_id == txt["id"] and len(txt["id"]) == 32
    assert peer.url == "wss://127.0.0.1:4984/laptop"
    assert peer.endpoint().url == "wss://127.0.0.1:4984/laptop"


def test_the_peer_id_is_stable_per_database_and_reveals_no_uuid() -> None:
    uuid = "0123456789abcdef0123456789abcdef"
    assert peer_id_for(uuid) == peer_id_for(uuid)
    assert peer_id_for(uuid) != peer_id_for("f" * 32)
    assert uuid not in peer_id_for(uuid)


def test_without_tls_there_is_no_fingerprint_and_the_url_is_ws() -> None:
    txt = _record(tls=False, fingerprint=None, auth="none")
    assert "fp" not in txt and txt["tls"] == "0"
    peer = DiscoveredPeer.from_record("p", ["::1", "10.0.0.1"], 80, decode_txt(_wire(txt)))
    assert not peer.tls and peer.fingerprint is None
    assert peer.addresses == ("10.0.0.1", "::1")  # IPv4 first
    assert peer.url == "ws://10.0.0.1:80/laptop"


def test_ipv6_and_odd_database_names_make_valid_urls() -> None:
    txt = _record(database="my db/1")
    peer = DiscoveredPeer.from_record("p", ["fe80::1%eth0"], 443, decode_txt(_wire(txt)))
    assert peer.url == "wss://[fe80::1%25eth0]:443/my%20db%2F1"


def test_collections_that_do_not_fit_end_with_a_star() -> None:
    many = [f"scope{i}.collection{i}" for i in range(40)]
    txt = _record(collections=many)
    assert len(f"cols={txt['cols']}".encode()) <= _tuning.DISCOVERY_TXT_MAX_ENTRY
    assert txt["cols"].endswith(",*")
    fields = read_txt(txt)
    assert not fields.collections_complete
    assert fields.collections == tuple(many[: len(fields.collections)])


def test_a_record_that_cannot_fit_is_refused_at_start() -> None:
    with pytest.raises(DiscoveryError, match="'db'"):
        _record(database="é" * 200)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"v": "2"}, "version"),
        ({"v": None}, "version"),
        ({"db": ""}, "database"),
        ({"db": " padded"}, "database"),
        ({"tls": "yes"}, "tls"),
        ({"tls": None}, "tls"),
    ],
)
def test_unusable_records_are_refused(change: dict[str, str | None], why: str) -> None:
    txt: dict[str, str] = _record()
    for key, value in change.items():
        if value is None:
            txt.pop(key)
        else:
            txt[key] = value
    with pytest.raises(DiscoveryError, match=why):
        read_txt(txt)


def test_malformed_optional_fields_read_as_unknown() -> None:
    txt = _record()
    txt.update(fp="not-hex", auth="kerberos", id="NOT A HEX ID", proto="a b,BLIP_3+CBMobile_3")
    txt["cols"] = "good.one,bad name,.x,good.one,*"
    fields = read_txt(txt)
    assert fields.fingerprint is None and fields.auth == "unknown" and fields.peer_id is None
    assert fields.protocols == ("BLIP_3+CBMobile_3",)
    assert fields.collections == ("good.one",) and not fields.collections_complete


def test_decoding_drops_what_is_oversized_undecodable_or_repeated() -> None:
    raw: dict[bytes, bytes | None] = {
        b"v": b"1",
        b"DB": b"laptop",  # keys are case-insensitive (RFC 6763 6.6)
        b"db": b"other",  # a repeat: the first counts
        b"tls": b"0",
        b"big": b"x" * 300,
        b"\xff": b"1",
        b"bin": b"\xff\xfe",
        b"ctl": b"a\x00b",
        b"flag": None,
    }
    decoded = decode_txt(raw)
    assert decoded == {"v": "1", "db": "laptop", "tls": "0", "flag": ""}


def test_decoding_stops_at_the_record_bound() -> None:
    raw = {f"k{i}".encode(): b"y" * 200 for i in range(20)}
    decoded = decode_txt(raw)
    size = sum(len(k) + 1 + len(v) + 1 for k, v in decoded.items())
    assert size <= _tuning.DISCOVERY_TXT_MAX_RECORD
    assert len(decoded) < 20


@pytest.mark.parametrize(
    ("name", "addresses", "port"),
    [
        ("", ["127.0.0.1"], 1),
        ("x" * 64, ["127.0.0.1"], 1),
        ("bad\nname", ["127.0.0.1"], 1),
        ("p", [], 1),
        ("p", ["not-an-address", "224.0.0.251", "0.0.0.0"], 1),
        ("p", ["127.0.0.1"], 0),
        ("p", ["127.0.0.1"], 70000),
    ],
)
def test_unusable_services_are_refused(name: str, addresses: list[str], port: int) -> None:
    with pytest.raises(DiscoveryError):
        DiscoveredPeer.from_record(name, addresses, port, _record())


def test_addresses_are_bounded_and_deduplicated() -> None:
    addresses = ["127.0.0.1"] * 5 + [f"10.0.{i // 250}.{i % 250}" for i in range(100)]
    peer = DiscoveredPeer.from_record("p", addresses, 1, _record())
    assert len(peer.addresses) == _tuning.DISCOVERY_MAX_ADDRESSES
    assert peer.addresses.count("127.0.0.1") == 1


_text = st.one_of(st.binary(max_size=300), st.none())


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=20), _text, max_size=40),
    st.text(max_size=80),
    st.lists(st.text(max_size=45), max_size=30),
    st.integers(min_value=-5, max_value=70000),
)
def test_hostile_records_never_crash_the_parser(
    raw: dict[bytes, bytes | None], name: str, addresses: list[str], port: int
) -> None:
    decoded = decode_txt(raw)
    assert len(decoded) <= _tuning.DISCOVERY_TXT_MAX_ENTRIES
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in decoded.items())
    try:
        peer = DiscoveredPeer.from_record(name, addresses, port, decoded)
    except DiscoveryError:
        return
    assert peer.database and 0 < peer.port < 65536
    assert 0 < len(peer.addresses) <= _tuning.DISCOVERY_MAX_ADDRESSES
    assert len(peer.collections) <= _tuning.DISCOVERY_MAX_COLLECTIONS
    assert peer.fingerprint is None or len(peer.fingerprint) == 64
    assert peer.auth in ("none", "password", "cert", "unknown")
    assert peer.endpoint().url.startswith(("ws://", "wss://"))


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "v": st.sampled_from(["1", "2", "", "1 "]),
            "db": st.text(max_size=60),
            "tls": st.sampled_from(["0", "1", "2"]),
            "fp": st.text(alphabet="0123456789abcdefABCDEF:", max_size=100),
            "cols": st.text(max_size=250),
            "auth": st.text(max_size=10),
            "proto": st.text(max_size=100),
            "id": st.text(alphabet="0123456789abcdefg", max_size=70),
        }
    )
)
def test_plausible_records_parse_or_are_refused_with_a_typed_error(txt: dict[str, str]) -> None:
    wire = {k.encode(): v.encode() for k, v in txt.items()}
    try:
        peer = DiscoveredPeer.from_record("p", ["127.0.0.1"], 5, decode_txt(wire))
    except DiscoveryError:
        return
    assert peer.tls == (txt["tls"] == "1")
    assert peer.peer_id is None or peer.peer_id == txt["id"]
