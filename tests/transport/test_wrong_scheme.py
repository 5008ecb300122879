"""The wrong scheme for a listener (wss:// to ws://, ws:// to wss://) says so, and no error of
the transport has an empty message.

Real servers and listeners on 127.0.0.1; the replicator tests go through the public API.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidURI

from couchlite import (
    AsyncReplicator,
    AsyncUrlEndpointListener,
    CouchliteError,
    Database,
    DatabaseConfiguration,
    NetworkCode,
    NetworkError,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    TLSError,
    UrlEndpointListenerConfiguration,
)
from couchlite.tls.identity import TLSIdentity
from couchlite.transport.boundary import classify, describe, os_error, translate_connect_error
from couchlite.transport.websocket import WebSocketChannel, connect_channel, serve_channels
from tests.transport.helpers import run

pytestmark = pytest.mark.timeout(60)


async def _echo(channel: WebSocketChannel) -> None:
    while True:
        await channel.send(await channel.recv())


@pytest.fixture(scope="module")
def identity() -> TLSIdentity:
    return TLSIdentity.create_anonymous(label=None)


def _trusting(identity: TLSIdentity) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=identity.certificates_pem().decode("ascii"))
    context.check_hostname = False
    return context


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database("scheme", DatabaseConfiguration(directory=tmp_path))
    try:
        yield database
    finally:
        database.close()


# --- wss:// against a ws:// server ----------------------------------------------------------


def test_wss_to_a_ws_server_is_a_tls_error_saying_it_is_not_tls(
    identity: TLSIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with await serve_channels(_echo, "127.0.0.1", 0) as plain:
            with pytest.raises(TLSError) as info:
                await connect_channel(
                    f"wss://127.0.0.1:{plain.port}/db/_blipsync",
                    ssl=_trusting(identity),
                    open_timeout=5,
                )
            error = info.value
            assert error.code == NetworkCode.TLS_HANDSHAKE_FAILED and not error.is_transient
            assert f"the server at 127.0.0.1:{plain.port} does not speak TLS" in str(error)
            assert "ws:// listener" in str(error)
            # the server is unharmed: a ws:// client still gets through
            channel = await connect_channel(f"ws://127.0.0.1:{plain.port}/db/_blipsync")
            await channel.send(b"ping")
            assert await channel.recv() == b"ping"
            await channel.close()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_wss_to_a_server_that_just_hangs_up_says_so_and_stays_transient(
    identity: TLSIdentity,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(NetworkError) as info:
                await connect_channel(
                    f"wss://127.0.0.1:{port}/db/_blipsync", ssl=_trusting(identity), open_timeout=5
                )
        finally:
            server.close()
            await server.wait_closed()
        error = info.value
        # A busy listener refusing a socket before TLS looks the same: worth retrying.
        assert error.code == NetworkCode.CONNECTION_RESET and error.is_transient
        assert "closed the connection during the TLS handshake" in str(error)
        assert "ws:// listener" in str(error)

    run(main())


# --- ws:// against a wss:// server ----------------------------------------------------------


def test_ws_to_a_wss_server_suggests_wss(identity: TLSIdentity) -> None:
    async def main() -> None:
        async with await serve_channels(
            _echo, "127.0.0.1", 0, ssl=identity.server_ssl_context()
        ) as secure:
            port = secure.port
            with pytest.raises(NetworkError) as info:
                await connect_channel(f"ws://127.0.0.1:{port}/db/_blipsync", open_timeout=5)
        error = info.value
        assert error.code == NetworkCode.NETWORK_RESET
        assert f"the server at 127.0.0.1:{port} closed the connection" in str(error)
        assert "wss:// listener" in str(error)

    run(main())


# --- the same through the public API: a replicator and a real listener ----------------------


async def _replicate_once(db: Database, url: str) -> CouchliteError | None:
    config = ReplicatorConfiguration(url, max_attempts=1)
    config.add_collection(db.default_collection())
    replicator = AsyncReplicator(config)
    await replicator.start()
    status = await replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=30)
    return status.error


def _against_listener(db: Database, tmp_path: Path, *, tls: bool) -> CouchliteError | None:
    """Replicate once with the other scheme than the listener's: the error it stops with."""
    remote = Database("remote", DatabaseConfiguration(directory=tmp_path / "remote"))
    config = UrlEndpointListenerConfiguration(
        collections=[remote.default_collection()],
        network_interface="127.0.0.1",
        disable_tls=not tls,
    )

    async def main() -> CouchliteError | None:
        async with AsyncUrlEndpointListener(config) as listener:
            url = listener.urls[0]
            assert url.startswith("wss://" if tls else "ws://")
            wrong = "ws://" + url.removeprefix("wss://") if tls else "wss://" + url[len("ws://") :]
            return await _replicate_once(db, wrong)

    try:
        return run(main(), timeout=40)
    finally:
        remote.close()


def test_a_replicator_with_wss_against_a_ws_listener_reports_a_tls_error(
    db: Database, tmp_path: Path
) -> None:
    error = _against_listener(db, tmp_path, tls=False)
    assert isinstance(error, TLSError)
    assert error.code == NetworkCode.TLS_HANDSHAKE_FAILED
    assert "does not speak TLS" in str(error) and "ws://" in str(error)


def test_a_replicator_with_ws_against_a_wss_listener_says_it_may_be_tls(
    db: Database, tmp_path: Path
) -> None:
    error = _against_listener(db, tmp_path, tls=True)
    assert isinstance(error, NetworkError)
    assert "wss:// listener" in str(error)


# --- no empty messages ----------------------------------------------------------------------

SILENT_EXCEPTIONS: list[BaseException] = [
    ConnectionResetError(),
    ConnectionRefusedError(),
    OSError(),
    OSError(errno.EHOSTUNREACH, ""),
    TimeoutError(),
    EOFError(),
    RuntimeError(),
    InvalidMessage(),
    InvalidHandshake(),
    InvalidURI("", ""),
    ssl.SSLError(),
    Exception(),
]


@pytest.mark.parametrize("exc", SILENT_EXCEPTIONS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("url", ["ws://127.0.0.1:1/db/_blipsync", "wss://127.0.0.1:1/db/_blipsync"])
def test_a_silent_exception_never_makes_an_empty_message(exc: BaseException, url: str) -> None:
    for error in (translate_connect_error(exc, url), classify(exc, url)):
        text = str(error)
        assert text.strip() and not text.rstrip().endswith(":"), repr(error)
        assert text.startswith(url) or url in text or "invalid URL" in text, text
    if isinstance(exc, OSError | TimeoutError):
        assert not str(os_error(exc, url)).rstrip().endswith(":")


def test_describe_falls_back_to_the_class_name_and_the_cause() -> None:
    assert describe(ConnectionResetError()) == "ConnectionResetError"
    assert describe(OSError(errno.ECONNRESET, "Connection reset by peer")) == (
        "Connection reset by peer"
    )
    try:
        try:
            raise EOFError("connection closed while reading")
        except EOFError as inner:
            raise InvalidMessage() from inner
    except InvalidMessage as outer:
        assert describe(outer) == "InvalidMessage (EOFError: connection closed while reading)"


def test_a_couchlite_error_with_an_empty_message_says_what_it_is() -> None:
    assert str(NetworkError("")) == "NetworkError (Network error 13)"
    assert str(TLSError("  ", code=NetworkCode.TLS_CERT_EXPIRED)) == "TLSError (Network error 7)"
    assert str(CouchliteError("it broke")) == "it broke"
