"""Raw BLIP peers over real WebSockets: :func:`raw_client` (a misbehaving client) and
:func:`hostile_listener` (a misbehaving server), both handing out :class:`RawPeer` objects.

Part of the harness of ``peers.py`` (which re-exports everything here).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from couchlite.blip import BlipProtocol, Message
from couchlite.blip.errors import BlipError

SUBPROTOCOL = "BLIP_3+CBMobile_3"
#: Bound on a raw peer's wait for one reply.
REPLY_TIMEOUT_S = 10.0
#: Largest WebSocket message a raw peer accepts (the test's own memory is not under test).
RAW_MAX_SIZE = 256 * 1024 * 1024


class PeerClosed(ConnectionError):
    """The connection closed while a reply was awaited."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code} {reason!r})")
        self.code = code
        self.reason = reason


class RawPeer:
    """One WebSocket connection with a real :class:`BlipProtocol` for encoding and decoding.

    A background task reads every incoming WebSocket message: binary ones go through the
    protocol (replies resolve :meth:`request`, requests queue for :meth:`next_request`, ACKs are
    answered), text ones are kept in :attr:`texts`. If the other side breaks BLIP, decoding
    stops and :attr:`protocol_error` says why; the connection is still watched for its close.
    """

    def __init__(self, ws: Any, **protocol_options: Any) -> None:
        self.ws = ws
        self.protocol = BlipProtocol(**protocol_options)
        self.protocol_error: BlipError | None = None
        self.texts: list[str] = []
        self.frames_received = 0
        self.requests_dropped = 0
        self._requests: asyncio.Queue[Message] = asyncio.Queue(maxsize=10_000)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    # --- state ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return bool(self.ws.state is State.OPEN)

    @property
    def close_code(self) -> int | None:
        code = self.ws.close_code
        return int(code) if code is not None else None

    @property
    def close_reason(self) -> str:
        return str(self.ws.close_reason or "")

    @property
    def request_path(self) -> str | None:
        request = getattr(self.ws, "request", None)
        return request.path if request is not None else None

    async def closed(self, timeout: float = REPLY_TIMEOUT_S) -> tuple[int | None, str]:
        """Wait (bounded: ``TimeoutError``) until the connection is closed; its close code
        (1006 for an abrupt end) and reason."""
        assert self._reader is not None
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        return self.close_code, self.close_reason

    # --- reading ----------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                try:
                    data = await self.ws.recv()
                except ConnectionClosed:
                    return
                if isinstance(data, str):
                    self.texts.append(data)
                    continue
                self.frames_received += 1
                if self.protocol_error is not None:
                    continue
                try:
                    messages = self.protocol.receive_frame(data)
                except BlipError as exc:
                    self.protocol_error = exc
                    continue
                for message in messages:
                    self._dispatch(message)
                await self._flush()
        finally:
            failure = PeerClosed(self.close_code, self.close_reason)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(failure)
                    # Marks it retrieved: nobody may be waiting for this reply any more.
                    future.exception()
            self._pending.clear()

    def _dispatch(self, message: Message) -> None:
        if message.is_request:
            try:
                self._requests.put_nowait(message)
            except asyncio.QueueFull:
                self.requests_dropped += 1
            return
        future = self._pending.pop(message.number, None)
        if future is not None and not future.done():
            future.set_result(message)

    async def next_request(self, timeout: float = REPLY_TIMEOUT_S) -> Message:
        """The next request the other side sent (bounded wait: ``TimeoutError``;
        ``PeerClosed`` once the connection has closed and every request was taken)."""
        if not self._requests.empty():
            return self._requests.get_nowait()
        assert self._reader is not None
        get = asyncio.get_running_loop().create_task(self._requests.get())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait({get, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not get.done():
                get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await get
        if get.done() and not get.cancelled():
            return get.result()
        if not self._requests.empty():
            return self._requests.get_nowait()
        raise PeerClosed(self.close_code, self.close_reason)

    # --- sending ----------------------------------------------------------------------------

    async def _flush(self) -> None:
        async with self._send_lock:
            while True:
                frame = self.protocol.next_frame()
                if frame is None:
                    return
                try:
                    await self.ws.send(frame)
                except ConnectionClosed:
                    return

    async def send_frame(self, frame: bytes | bytearray | memoryview) -> None:
        """Send ``frame`` as one binary WebSocket message, whatever it contains."""
        async with self._send_lock:
            await self.ws.send(bytes(frame))

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            await self.ws.send(text)

    async def send_request(
        self,
        properties: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes = b"",
        **flags: bool,
    ) -> int:
        """Queue and send a well-formed request; returns its number (see :meth:`response`).

        ``flags``: ``urgent``, ``compressed``, ``no_reply``."""
        number = self.protocol.send_request(properties, body, **flags)
        if not flags.get("no_reply"):
            self._pending[number] = asyncio.get_running_loop().create_future()
        await self._flush()
        return number

    async def response(self, number: int, timeout: float = REPLY_TIMEOUT_S) -> Message:
        """The reply to our request ``number`` (``TimeoutError``; ``PeerClosed``)."""
        future = self._pending.get(number)
        if future is None:
            raise KeyError(f"no request #{number} awaiting a reply")
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    async def request(
        self,
        properties: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes = b"",
        *,
        timeout: float = REPLY_TIMEOUT_S,
        **flags: bool,
    ) -> Message:
        """Send a well-formed request and wait (bounded) for its reply (RPY or ERR)."""
        number = await self.send_request(properties, body, **flags)
        return await self.response(number, timeout)

    def encode_request(
        self,
        properties: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes = b"",
        **flags: bool,
    ) -> tuple[int, list[bytes]]:
        """Encode a request into frames *without sending them* (to send some, alter some,
        or stall mid-message). Frames beyond the unacknowledged-bytes window are not
        produced. A reply, if one comes, resolves :meth:`response`."""
        number = self.protocol.send_request(properties, body, **flags)
        if not flags.get("no_reply"):
            self._pending[number] = asyncio.get_running_loop().create_future()
        frames = []
        while (frame := self.protocol.next_frame()) is not None:
            frames.append(frame)
        return number, frames

    async def reply(
        self,
        request: Message,
        properties: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        **flags: bool,
    ) -> None:
        """Answer an incoming request (as a listener would)."""
        self.protocol.send_response(request.number, properties, body, **flags)
        await self._flush()

    async def reply_error(
        self, request: Message, domain: str, code: int, message: str = ""
    ) -> None:
        self.protocol.send_error(request.number, domain, code, message)
        await self._flush()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (bounded by websockets' close timeout)."""
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    await asyncio.shield(self._reader)

    async def abort(self) -> None:
        """Drop the TCP connection without a close handshake."""
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(REPLY_TIMEOUT_S):
                    await asyncio.shield(self._reader)


def _blipsync(url: str) -> str:
    return url if url.rstrip("/").endswith("/_blipsync") else url.rstrip("/") + "/_blipsync"


@contextlib.asynccontextmanager
async def raw_client(
    url: str,
    *,
    subprotocol: str | None = SUBPROTOCOL,
    headers: Mapping[str, str] | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float = REPLY_TIMEOUT_S,
    **protocol_options: Any,
) -> AsyncIterator[RawPeer]:
    """A :class:`RawPeer` connected to ``url`` (``ws[s]://host:port/db``; ``/_blipsync`` is
    appended). ``subprotocol=None`` offers none. ``protocol_options`` go to ``BlipProtocol``."""
    connect_kwargs: dict[str, Any] = {
        "compression": None,
        "proxy": None,
        "max_size": RAW_MAX_SIZE,
        "open_timeout": open_timeout,
        "close_timeout": 2,
        "ping_interval": None,
        "additional_headers": dict(headers) if headers else None,
    }
    if subprotocol is not None:
        connect_kwargs["subprotocols"] = [Subprotocol(subprotocol)]
    if ssl is not None:
        connect_kwargs["ssl"] = ssl
    ws = await ws_connect(_blipsync(url), **connect_kwargs)
    peer = RawPeer(ws, **protocol_options)
    peer.start()
    try:
        yield peer
    finally:
        await peer.close()


class HostileURL(str):
    """The URL of a :func:`hostile_listener`, with what it saw.

    ``peers``: a :class:`RawPeer` per accepted connection; ``requests``: the HTTP upgrade
    requests (path, headers); ``errors``: exceptions raised by the handler."""

    peers: list[RawPeer]
    requests: list[Request]
    errors: list[BaseException]


Handler = Callable[[RawPeer], Awaitable[None]]


@contextlib.asynccontextmanager
async def hostile_listener(
    handler: Handler,
    *,
    ssl: ssl_module.SSLContext | None = None,
    db: str = "db",
    **protocol_options: Any,
) -> AsyncIterator[HostileURL]:
    """A WebSocket server on 127.0.0.1 accepting ``BLIP_3+CBMobile_3`` at ``/<db>/_blipsync``;
    each connection is handed as a started :class:`RawPeer` to ``await handler(peer)``, and
    closed (1000) when the handler returns. Yields the URL to give a replicator
    (``ws[s]://127.0.0.1:PORT/<db>``). A handler's exception (other than the connection
    closing) is re-raised on exit."""
    expected_path = f"/{db}/_blipsync"
    peers: list[RawPeer] = []
    requests: list[Request] = []
    errors: list[BaseException] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        requests.append(request)
        if request.path.split("?")[0] != expected_path:
            return connection.respond(404, "Not Found\n")
        return None

    async def serve_one(connection: ServerConnection) -> None:
        peer = RawPeer(connection, **protocol_options)
        peers.append(peer)
        peer.start()
        try:
            await handler(peer)
        except (ConnectionClosed, PeerClosed):
            pass
        except Exception as exc:
            errors.append(exc)
        finally:
            await peer.close()

    server = await ws_serve(
        serve_one,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
        max_size=RAW_MAX_SIZE,
        ping_interval=None,
        close_timeout=2,
        process_request=process_request,
        ssl=ssl,
    )
    try:
        port = next(iter(server.sockets)).getsockname()[1]
        scheme = "wss" if ssl is not None else "ws"
        url = HostileURL(f"{scheme}://127.0.0.1:{port}/{db}")
        url.peers = peers
        url.requests = requests
        url.errors = errors
        yield url
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await server.wait_closed()
    if errors:
        raise errors[0]


__all__ = [
    "REPLY_TIMEOUT_S",
    "SUBPROTOCOL",
    "HostileURL",
    "PeerClosed",
    "RawPeer",
    "hostile_listener",
    "raw_client",
]
