"""The passive side's refusals: read-only, pull-disabled, mode and collection errors,
checkpoint errors -- each answered exactly as LiteCore answers (notes §4.1-§4.4, §11.4)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from couchlite import CouchliteError
from couchlite.blip import BlipErrorReply
from couchlite.errors import ErrorDomain
from couchlite.replicator.types import ReplicatorType

from .helpers import connected, open_db, put, replicate, run, snapshot


def test_read_only_passive_refuses_pushes(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        put(a.default_collection(), "x", {"v": 1})
        put(b.default_collection(), "y", {"v": 2})
        before = snapshot(b.default_collection())
        for kind in (ReplicatorType.PUSH, ReplicatorType.PUSH_AND_PULL):
            with pytest.raises(CouchliteError) as info:
                run(replicate(a, b, kind, allow_push=False))
            assert info.value.domain is ErrorDomain.WEBSOCKET and info.value.code == 403
        assert snapshot(b.default_collection()) == before
        # pulling from a read-only peer is fine
        run(replicate(a, b, ReplicatorType.PULL, allow_push=False))
        assert a.default_collection().get("y") is not None
    finally:
        a.close()
        b.close()


def test_pull_disabled_passive_refuses_sub_changes(tmp_path: Path) -> None:
    a, b = open_db(tmp_path, "a"), open_db(tmp_path, "b")
    try:
        with pytest.raises(CouchliteError) as info:
            run(replicate(a, b, ReplicatorType.PULL, allow_pull=False))
        assert info.value.code == 403
    finally:
        a.close()
        b.close()


async def _error(conn, props, body=b"") -> tuple[str, int, str]:
    with pytest.raises(BlipErrorReply) as info:
        await conn.request(props, body)
    return info.value.error_domain, info.value.code, info.value.message


def test_mode_and_collection_errors(tmp_path: Path) -> None:
    b = open_db(tmp_path, "b")
    items = b.create_collection("items", "store")

    async def main() -> None:
        # only a named collection shared: a legacy first message is refused
        async with connected(b, [items]) as pair:
            err = await _error(pair.active, {"Profile": "getCheckpoint", "client": "c"})
            assert err == ("BLIP", 400, "This server is not configured for 3.0 client support")
        async with connected(b, [items]) as pair:
            body = {"checkpoint_ids": ["c1", "c2"], "collections": ["store.items", "nope"]}
            reply = await pair.active.request({"Profile": "getCollections"}, orjson.dumps(body))
            assert reply.json() == [{}, None]
            assert (await _error(pair.active, {"Profile": "getCollections"}, orjson.dumps(body)))[
                :2
            ] == ("BLIP", 400)
            for props, code in (
                ({"Profile": "proposeChanges"}, 400),  # no collection property
                ({"Profile": "proposeChanges", "collection": "7"}, 400),  # out of range
                ({"Profile": "proposeChanges", "collection": "x"}, 400),
                ({"Profile": "proposeChanges", "collection": "1"}, 404),  # unknown collection
            ):
                domain, got, _ = await _error(pair.active, props, b"[]")
                assert (domain, got) == ("HTTP", code)
            ok = await pair.active.request(
                {"Profile": "proposeChanges", "collection": "0"},
                b'[["d","1-' + b"aa" * 20 + b'",""]]',
            )
            assert ok.json() == [] and ok.properties == {"maxHistory": "50", "blobs": "true"}
        async with connected(b, [items]) as pair:
            body = {"checkpoint_ids": ["c1"], "collections": []}
            err = await _error(pair.active, {"Profile": "getCollections"}, orjson.dumps(body))
            assert err[:2] == ("BLIP", 400)

    try:
        run(main())
    finally:
        b.close()


def test_checkpoint_errors_and_revisions(tmp_path: Path) -> None:
    b = open_db(tmp_path, "b")

    async def main() -> None:
        async with connected(b) as pair:
            conn = pair.active
            assert await _error(conn, {"Profile": "getCheckpoint"}) == (
                "BLIP",
                400,
                "missing checkpoint ID",
            )
            assert (await _error(conn, {"Profile": "getCheckpoint", "client": "cp"}))[:2] == (
                "HTTP",
                404,
            )
            reply = await conn.request(
                {"Profile": "setCheckpoint", "client": "cp", "rev": ""}, b'{"local":1}'
            )
            assert reply.properties == {"rev": "1-cc"}
            assert (
                await _error(
                    conn, {"Profile": "setCheckpoint", "client": "cp", "rev": "7-cc"}, b"{}"
                )
            )[:2] == ("HTTP", 409)
            reply = await conn.request(
                {"Profile": "setCheckpoint", "client": "cp", "rev": "1-cc"}, b'{"local":2}'
            )
            assert reply.properties == {"rev": "2-cc"}
            got = await conn.request({"Profile": "getCheckpoint", "client": "cp"})
            assert got.properties == {"rev": "2-cc"} and got.json() == {"local": 2}
            # the legacy client now cannot switch to getCollections
            body = orjson.dumps({"checkpoint_ids": ["cp"], "collections": ["_default"]})
            assert (await _error(conn, {"Profile": "getCollections"}, body))[:2] == ("BLIP", 400)
            # and must not use the collection property
            assert (await _error(conn, {"Profile": "subChanges", "collection": "0"}))[:2] == (
                "HTTP",
                400,
            )
        async with connected(b) as pair:
            body = orjson.dumps({"checkpoint_ids": ["cp"], "collections": ["_default._default"]})
            reply = await pair.active.request({"Profile": "getCollections"}, body)
            assert reply.json() == [{"local": 2, "rev": "2-cc", "_rev": "2-cc"}]

    try:
        run(main())
    finally:
        b.close()


def test_rev_conflicting_with_noconflicts_is_409(tmp_path: Path) -> None:
    b = open_db(tmp_path, "b")
    put(b.default_collection(), "d", {"v": 1})
    current = b.default_collection().get("d").revision_id

    async def main() -> None:
        async with connected(b) as pair:
            props = {
                "Profile": "rev",
                "id": "d",
                "rev": "2-" + "ab" * 20,
                "sequence": "1",
                "noconflicts": "1",
                "history": "1-" + "cd" * 20,
            }
            # announced (legacy "changes"), so requested; then it conflicts in the store
            await pair.active.request(
                {"Profile": "changes"}, orjson.dumps([[1, "d", props["rev"]]])
            )
            err = await _error(pair.active, props, b'{"v":2}')
            assert err[:2] == ("HTTP", 409)

    try:
        run(main())
        assert b.default_collection().get("d").revision_id == current
    finally:
        b.close()


def test_get_attachment_serves_only_digests_it_sent(tmp_path: Path) -> None:
    from couchlite import Blob, MutableDocument

    b = open_db(tmp_path, "b")
    b.default_collection().save(MutableDocument("d", {"f": Blob("text/plain", b"secret")}))
    digest = b.default_collection().get("d")["f"].digest

    async def main() -> None:
        async with connected(b) as pair:
            props = {"Profile": "getAttachment", "digest": digest, "compress": "true"}
            assert await _error(pair.active, props) == ("LiteCore", 7, "No such blob")
            assert (await _error(pair.active, {"Profile": "getAttachment"}))[:2] == (
                "LiteCore",
                9,
            )

    try:
        run(main())
    finally:
        b.close()
