"""The TXT record of an advertised listener (schema version 1): building it, and reading one
that came from the network.

=======  ========================================================================
key      value (example)
=======  ========================================================================
v        schema version; a record whose ``v`` is not ``1`` is ignored (``1``)
id       stable peer ID: 32 hex digits derived from the database's UUID
db       database name, the URL path (``laptop``)
cols     served collections, ``scope.collection``, comma-separated; a final ``*``
         means more are served than fit in the record (``demo.notes``)
tls      ``1`` for ``wss://``, ``0`` for ``ws://``
fp       SHA-256 of the server's leaf certificate (DER), 64 lowercase hex digits;
         only with ``tls=1``
auth     ``none``, ``password`` or ``cert`` (a client certificate is required)
proto    BLIP sub-protocols accepted, in order of preference, comma-separated
         (``BLIP_3+CBMobile_3,BLIP_3+CBMobile_2``)
=======  ========================================================================

New keys may be added without changing ``v`` (readers ignore keys they do not know); a change
that would mislead a version-1 reader bumps ``v``.

Everything read here comes from anyone on the network: sizes are bounded
(:data:`~couchlite._tuning.DISCOVERY_TXT_MAX_RECORD` and the others), text that is not UTF-8
or holds control characters is dropped, and a record that cannot describe a reachable peer
raises :class:`~couchlite.errors.DiscoveryError` (which a browser turns into "ignored").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from couchlite._tuning import (
    DISCOVERY_MAX_COLLECTIONS,
    DISCOVERY_TXT_MAX_ENTRIES,
    DISCOVERY_TXT_MAX_ENTRY,
    DISCOVERY_TXT_MAX_RECORD,
)
from couchlite.errors import DiscoveryError
from couchlite.tls.fingerprint import certificate_fingerprint, normalize_fingerprint

TXT_VERSION = "1"
AUTH_KINDS = ("none", "password", "cert")
#: what ``auth`` reads as when a peer sends a value this version does not know
AUTH_UNKNOWN = "unknown"
#: the last ``cols`` item when not every served collection fits in the record
MORE_COLLECTIONS = "*"

_PEER_ID = re.compile(r"[0-9a-f]{8,64}")
_NAME = r"[A-Za-z0-9_%-][A-Za-z0-9_%-]{0,250}"
_COLLECTION = re.compile(rf"{_NAME}\.{_NAME}")
_PROTOCOL = re.compile(r"[A-Za-z0-9_+.\-]{1,64}")
_MAX_PROTOCOLS = 8
_KEY = re.compile(r"[a-z][a-z0-9_]{0,8}")


def peer_id_for(database_uuid: str) -> str:
    """The peer ID advertised for the database whose public UUID is ``database_uuid``.

    A hash, not the UUID itself: stable for as long as the database exists (across restarts,
    ports, addresses and certificates), different for every database, and telling the network
    nothing it could match against the database's other identifiers.
    """
    return hashlib.sha256(f"couchlite peer {database_uuid}".encode()).hexdigest()[:32]


def _entry_size(key: str, value: str) -> int:
    return len(key.encode()) + 1 + len(value.encode())


def _collections_value(collections: Sequence[str]) -> str:
    room = DISCOVERY_TXT_MAX_ENTRY - len("cols=")
    listed: list[str] = []
    for index, name in enumerate(collections):
        rest = len(collections) - index - 1
        tail = f",{MORE_COLLECTIONS}" if rest else ""
        candidate = ",".join([*listed, name])
        if len(listed) >= DISCOVERY_MAX_COLLECTIONS or len((candidate + tail).encode()) > room:
            return ",".join([*listed, MORE_COLLECTIONS])
        listed.append(name)
    return ",".join(listed)


def build_txt(
    *,
    peer_id: str,
    database: str,
    collections: Sequence[str],
    tls: bool,
    fingerprint: str | None,
    auth: str,
    protocols: Sequence[str],
) -> dict[str, str]:
    """The TXT record of a listener; :class:`DiscoveryError` if it cannot be advertised."""
    if auth not in AUTH_KINDS:
        raise DiscoveryError(f"unknown authentication kind {auth!r}")
    txt = {"v": TXT_VERSION, "id": peer_id, "db": database}
    txt["cols"] = _collections_value(collections)
    txt["tls"] = "1" if tls else "0"
    if tls and fingerprint is not None:
        txt["fp"] = fingerprint
    txt["auth"] = auth
    txt["proto"] = ",".join(protocols)
    total = sum(_entry_size(key, value) + 1 for key, value in txt.items())
    if total > DISCOVERY_TXT_MAX_RECORD:
        raise DiscoveryError(f"cannot advertise: the TXT record would be {total} bytes")
    for key, value in txt.items():
        if _entry_size(key, value) > DISCOVERY_TXT_MAX_ENTRY:
            raise DiscoveryError(
                f"cannot advertise: the TXT entry {key!r} would be "
                f"{_entry_size(key, value)} bytes (at most {DISCOVERY_TXT_MAX_ENTRY})"
            )
    return txt


def decode_txt(properties: Mapping[Any, Any]) -> dict[str, str]:
    """The usable entries of a TXT record as received (zeroconf's ``properties``).

    Never raises: entries that are too long, not UTF-8, hold control characters, or have keys
    this schema cannot have are dropped; past the record's bound the rest is dropped too.
    """
    decoded: dict[str, str] = {}
    total = 0
    for count, (raw_key, raw_value) in enumerate(properties.items()):
        if count >= DISCOVERY_TXT_MAX_ENTRIES:
            break
        if not isinstance(raw_key, bytes) or not isinstance(raw_value, bytes | None):
            continue
        value_bytes = raw_value if raw_value is not None else b""
        size = len(raw_key) + 1 + len(value_bytes)
        total += size + 1
        if total > DISCOVERY_TXT_MAX_RECORD:
            break
        if size > DISCOVERY_TXT_MAX_ENTRY:
            continue
        try:
            key = raw_key.decode("ascii").lower()
            value = value_bytes.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not _KEY.fullmatch(key) or not value.isprintable() or key in decoded:
            # RFC 6763 §6.4: of a repeated key only the first counts.
            continue
        decoded[key] = value
    return decoded


class PeerFields:
    """The fields of a version-1 record, checked (see :func:`read_txt`)."""

    __slots__ = (
        "auth",
        "collections",
        "collections_complete",
        "database",
        "fingerprint",
        "peer_id",
        "protocols",
        "tls",
    )

    def __init__(
        self,
        *,
        database: str,
        collections: tuple[str, ...],
        collections_complete: bool,
        tls: bool,
        fingerprint: str | None,
        auth: str,
        protocols: tuple[str, ...],
        peer_id: str | None,
    ) -> None:
        self.database = database
        self.collections = collections
        self.collections_complete = collections_complete
        self.tls = tls
        self.fingerprint = fingerprint
        self.auth = auth
        self.protocols = protocols
        self.peer_id = peer_id


def _collections(value: str) -> tuple[tuple[str, ...], bool]:
    names: list[str] = []
    complete = True
    for item in value.split(",")[: DISCOVERY_MAX_COLLECTIONS + 1]:
        item = item.strip()
        if item == MORE_COLLECTIONS:
            complete = False
        elif _COLLECTION.fullmatch(item) and item not in names:
            names.append(item)
    return tuple(names[:DISCOVERY_MAX_COLLECTIONS]), complete


def read_txt(txt: Mapping[str, str]) -> PeerFields:
    """Check a decoded record; :class:`DiscoveryError` if it cannot describe a peer.

    Required: ``v=1``, ``db``, ``tls``. Anything else that is missing or malformed reads as
    unknown: no fingerprint, no peer ID, ``auth`` ``"unknown"``, no collections or protocols.
    """
    version = txt.get("v")
    if version != TXT_VERSION:
        raise DiscoveryError(f"TXT record version {version!r} is not {TXT_VERSION!r}")
    database = txt.get("db", "")
    if not database or database != database.strip():
        raise DiscoveryError(f"TXT record has no usable database name ({database!r})")
    tls_text = txt.get("tls")
    if tls_text not in ("0", "1"):
        raise DiscoveryError(f"TXT record's tls is {tls_text!r}, not 0 or 1")
    tls = tls_text == "1"
    fingerprint = normalize_fingerprint(txt.get("fp", "")) if tls else None
    auth = txt.get("auth", "")
    collections, complete = _collections(txt.get("cols", ""))
    protocols = tuple(
        p for p in txt.get("proto", "").split(",")[:_MAX_PROTOCOLS] if _PROTOCOL.fullmatch(p)
    )
    peer_id = txt.get("id", "")
    return PeerFields(
        database=database,
        collections=collections,
        collections_complete=complete,
        tls=tls,
        fingerprint=fingerprint,
        auth=auth if auth in AUTH_KINDS else AUTH_UNKNOWN,
        protocols=protocols,
        peer_id=peer_id if _PEER_ID.fullmatch(peer_id) else None,
    )


__all__ = [
    "AUTH_KINDS",
    "AUTH_UNKNOWN",
    "MORE_COLLECTIONS",
    "TXT_VERSION",
    "PeerFields",
    "build_txt",
    "certificate_fingerprint",
    "decode_txt",
    "normalize_fingerprint",
    "peer_id_for",
    "read_txt",
]
