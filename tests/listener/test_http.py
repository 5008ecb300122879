"""The listener's HTTP behaviour: routing statuses, authentication, sub-protocols, headers.

Refusals are checked with plain ``http.client`` requests (the listener runs on the library's
loop thread); upgrades with the ``websockets`` client and couchlite's own ``connect_channel``.
"""

from __future__ import annotations

import asyncio
import base64
import threading

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from couchlite import (
    AuthenticationError,
    Database,
    ListenerPasswordAuthenticator,
    UrlEndpointListener,
)
from couchlite.listener.handshake import parse_basic_credentials
from couchlite.transport.websocket import HandshakeRefused, connect_channel
from tests.listener.conftest import StubRegistry
from tests.listener.helpers import UPGRADE_HEADERS, http_get, plain_config
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(30)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def listener(db: Database, stub_sessions: StubRegistry):
    with UrlEndpointListener(plain_config(db)) as running:
        yield running


def test_routing_statuses(listener: UrlEndpointListener) -> None:
    port = listener.port
    assert port is not None
    cases = [
        ("/test/_blipsync", {}, 403, b"No upgrade available"),
        ("/test/_blipsync", {"Connection": "keep-alive"}, 403, b"No upgrade available"),
        ("/other/_blipsync", UPGRADE_HEADERS, 404, b"No such database"),
        ("/other/_blipsync", {}, 404, b"No such database"),
        ("/", {}, 404, b"Not found"),
        ("/test", UPGRADE_HEADERS, 404, b"Not found"),
        ("/test/", UPGRADE_HEADERS, 404, b"Not found"),
        ("/test/_blipsync/more", UPGRADE_HEADERS, 404, b"Not found"),
        ("/_blipsync", UPGRADE_HEADERS, 404, b"Not found"),
    ]
    for path, headers, status, body in cases:
        result = http_get(port, path, headers)
        assert (result.status, result.body) == (status, body), path
        assert (result.header("Server") or "").startswith("CouchbaseLite/"), path
        assert result.header("Date")


def test_upgrade_with_query_string_and_case_insensitive_headers(
    listener: UrlEndpointListener,
) -> None:
    port = listener.port
    headers = dict(UPGRADE_HEADERS, Connection="keep-alive, upgrade", Upgrade="WebSocket")
    result = http_get(port, "/test/_blipsync?client=x", headers)  # type: ignore[arg-type]
    assert result.status == 101
    assert result.header("Sec-WebSocket-Protocol") == "BLIP_3+CBMobile_3"
    assert result.header("Upgrade") == "websocket"
    assert (result.header("Server") or "").startswith("CouchbaseLite/")


def test_subprotocol_selection(listener: UrlEndpointListener) -> None:
    url = f"{listener.urls[0]}/_blipsync"

    async def main() -> None:
        for offered, chosen in [
            (["BLIP_3+CBMobile_3", "BLIP_3+CBMobile_2"], "BLIP_3+CBMobile_3"),
            (["BLIP_3+CBMobile_2", "BLIP_3+CBMobile_3"], "BLIP_3+CBMobile_2"),
            (["BLIP_3+CBMobile_2"], "BLIP_3+CBMobile_2"),
            (["BLIP_3+CBMobile_4", "BLIP_3+CBMobile_3"], "BLIP_3+CBMobile_3"),
        ]:
            channel = await connect_channel(url, subprotocols=offered)
            assert channel.subprotocol == chosen
            await channel.close()
        # nothing we speak: a clear 4xx before any WebSocket exists
        with pytest.raises(HandshakeRefused) as info:
            await connect_channel(url, subprotocols=["BLIP_3+CBMobile_4"])
        assert info.value.status == 400
        assert "sub-protocol" in str(info.value)
        with pytest.raises(InvalidStatus) as raw:
            async with ws_connect(url, proxy=None, compression=None):
                pass
        assert raw.value.response.status_code == 400

    run(main())


def test_plain_http_request_on_the_upgrade_path_with_upgrade_is_switched(
    listener: UrlEndpointListener,
) -> None:
    # A hand-made upgrade (as LiteCore sends it, interop fact 1) gets the 101 LiteCore expects.
    result = http_get(listener.port, "/test/_blipsync", UPGRADE_HEADERS)  # type: ignore[arg-type]
    assert result.status == 101
    assert result.header("Connection") == "Upgrade"
    assert result.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class TestPasswordAuthentication:
    @pytest.fixture(params=["sync", "async"])
    def secured(self, request, db: Database, stub_sessions: StubRegistry):
        seen: list[tuple[str, str, str]] = []

        if request.param == "sync":

            def check(user: str, password: str) -> bool:
                seen.append((user, password, threading.current_thread().name))
                return (user, password) == ("alice", "s3cret:ü")

        else:

            async def check(user: str, password: str) -> bool:  # type: ignore[misc]
                await asyncio.sleep(0)
                seen.append((user, password, threading.current_thread().name))
                return (user, password) == ("alice", "s3cret:ü")

        config = plain_config(db, authenticator=ListenerPasswordAuthenticator(check))
        with UrlEndpointListener(config) as listener:
            yield listener, seen

    def test_missing_wrong_and_malformed_credentials_get_401(self, secured) -> None:
        listener, seen = secured
        port = listener.port
        attempts = [
            None,
            _basic("alice", "wrong"),
            _basic("bob", "s3cret:ü"),
            "Basic !!!not-base64!!!",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic ",
            "Bearer abc",
            "alice:s3cret",
        ]
        for value in attempts:
            headers = dict(UPGRADE_HEADERS)
            if value is not None:
                headers["Authorization"] = value
            result = http_get(port, "/test/_blipsync", headers)
            assert result.status == 401, value
            assert result.reason == "Unauthorized"
            assert result.header("WWW-Authenticate") == 'Basic charset="UTF-8"'
            assert result.header("Content-Length") == "0"
            assert result.body == b""
        # only well-formed credentials reach the callback
        assert [(u, p) for u, p, _t in seen] == [("alice", "wrong"), ("bob", "s3cret:ü")]

    def test_auth_runs_before_routing(self, secured) -> None:
        listener, _seen = secured
        for path in ["/other/_blipsync", "/nowhere"]:
            assert http_get(listener.port, path, UPGRADE_HEADERS).status == 401
        good = dict(UPGRADE_HEADERS, Authorization=_basic("alice", "s3cret:ü"))
        assert http_get(listener.port, "/other/_blipsync", good).status == 404

    def test_right_credentials_connect(self, secured) -> None:
        listener, seen = secured
        url = f"{listener.urls[0]}/_blipsync"

        async def main() -> None:
            channel = await connect_channel(
                url, headers={"Authorization": _basic("alice", "s3cret:ü")}
            )
            assert channel.subprotocol == "BLIP_3+CBMobile_3"
            await channel.close()
            with pytest.raises(AuthenticationError):
                await connect_channel(url, headers={"Authorization": _basic("alice", "nope")})

        run(main())
        assert seen[0][:2] == ("alice", "s3cret:ü")

    def test_sync_callbacks_run_off_the_event_loop(self, secured, request) -> None:
        listener, seen = secured
        headers = dict(UPGRADE_HEADERS, Authorization=_basic("alice", "x"))
        http_get(listener.port, "/test/_blipsync", headers)
        thread = seen[-1][2]
        if request.node.callspec.params["secured"] == "sync":
            assert thread != "couchlite-loop"
        else:
            assert thread == "couchlite-loop"


def test_failing_or_odd_callbacks_refuse(db: Database, stub_sessions: StubRegistry, caplog) -> None:
    def broken(user: str, password: str) -> bool:
        raise RuntimeError("lookup failed")

    for check in [broken, lambda u, p: 1, lambda u, p: None, lambda u, p: "yes"]:
        config = plain_config(db, authenticator=ListenerPasswordAuthenticator(check))
        with UrlEndpointListener(config) as listener:
            headers = dict(UPGRADE_HEADERS, Authorization=_basic("alice", "secret"))
            assert http_get(listener.port, "/test/_blipsync", headers).status == 401
    assert any("lookup failed" in (r.exc_text or "") for r in caplog.records)
    # the password never reaches the logs
    assert not any("secret" in r.getMessage() for r in caplog.records)


def test_callback_returning_an_awaitable(db: Database, stub_sessions: StubRegistry) -> None:
    async def verdict(user: str) -> bool:
        return user == "alice"

    config = plain_config(db, authenticator=ListenerPasswordAuthenticator(lambda u, p: verdict(u)))
    with UrlEndpointListener(config) as listener:
        ok = dict(UPGRADE_HEADERS, Authorization=_basic("alice", "x"))
        bad = dict(UPGRADE_HEADERS, Authorization=_basic("bob", "x"))
        assert http_get(listener.port, "/test/_blipsync", ok).status == 101
        assert http_get(listener.port, "/test/_blipsync", bad).status == 401


def test_parse_basic_credentials() -> None:
    assert parse_basic_credentials(_basic("a", "b:c")) == ("a", "b:c")
    assert parse_basic_credentials("basic " + base64.b64encode(b":").decode()) == ("", "")
    latin1 = "Basic " + base64.b64encode("é:x".encode("latin-1")).decode()
    assert parse_basic_credentials(latin1) == ("é", "x")
    for bad in [
        None,
        "",
        "Basic",
        "Basic a",
        "Digest x",
        "Basic " + base64.b64encode(b"a").decode(),
    ]:
        assert parse_basic_credentials(bad) is None
