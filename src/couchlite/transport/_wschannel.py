"""A :class:`~couchlite.transport.channel.MessageChannel` over one ``websockets`` asyncio
connection, client or server side: binary messages in and out, text ones ignored (with a
rate-limited warning), the close handshake drained, our own heartbeat, and ``websockets``'
close exceptions turned into :class:`ChannelClosed` (by :mod:`couchlite.transport.boundary`).

Opening connections (client handshake and redirects, the server and its admission) is
:mod:`couchlite.transport.websocket`'s job, which re-exports what is public here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConcurrencyError, ConnectionClosed
from websockets.protocol import State

from couchlite._tuning import WS_COALESCE_MAX_BYTES, WS_COALESCE_MAX_FRAME
from couchlite.transport.boundary import closed_error
from couchlite.transport.channel import (
    CLOSE_NORMAL,
    MessageChannel,
    truncate_close_reason,
)
from couchlite.transport.failures import RateLimitedLog

# The channel logs under the public module's name, where users look for WebSocket messages.
logger = logging.getLogger("couchlite.transport.websocket")


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """The HTTP upgrade request, as a server-side ``process_request`` hook sees it."""

    path: str
    headers: tuple[tuple[str, str], ...]
    remote_address: str | None
    #: The client's TLS certificate chain (DER, leaf first); () without TLS or certificate.
    peer_certificates: tuple[bytes, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


def _format_address(address: Any) -> str | None:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else None


class WebSocketChannel:
    """A :class:`MessageChannel` over a ``websockets`` asyncio connection (client or server)."""

    def __init__(
        self,
        connection: ClientConnection | ServerConnection,
        request: HandshakeRequest | None = None,
    ) -> None:
        self._ws = connection
        self._remote = _format_address(connection.remote_address)
        #: The upgrade request (server side only): the listener routes on its path.
        self.request = request
        self._heartbeat: asyncio.Task[None] | None = None
        # The buffer size above which the transport pauses writing (websockets sets it).
        self._write_high = connection.transport.get_write_buffer_limits()[1]
        self._text_warnings = RateLimitedLog(logger)
        # Frames sent with send_nowait during this turn of the event loop, written to the
        # transport as one piece at its end (see send_nowait).
        self._corked: list[bytes] = []
        self._corked_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        # websockets also writes on its own -- the answer to a ping or to the peer's Close, the
        # EOF after the closing handshake -- from within its data_received: what is held goes
        # first, so no frame of ours can follow a Close or meet a half-closed transport.
        write_own = connection.send_data

        def send_data() -> None:
            self.flush()
            write_own()

        connection.send_data = send_data  # type: ignore[method-assign]

    def start_heartbeat(self, interval: float, pong_timeout: float | None) -> None:
        """Ping the peer every ``interval`` seconds; if a pong (or the connection's end) does
        not come within ``pong_timeout``, drop the TCP connection at once: ``recv``/``send``
        then raise :class:`ChannelClosed` 1006, a transient error (notes §3.6).

        Ours rather than websockets' keepalive, which fails the connection with a close frame
        and then waits ``close_timeout`` more for a peer that is, by then, known to be gone.
        """
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(interval, pong_timeout), name=f"heartbeat {self._remote}"
            )

    async def _beat(self, interval: float, pong_timeout: float | None) -> None:
        ws = self._ws
        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                try:
                    async with asyncio.timeout(interval):
                        await ws.wait_closed()
                    return  # the connection ended: no more heartbeats
                except TimeoutError:
                    pass
                pong = await ws.ping()
                try:
                    async with asyncio.timeout(pong_timeout):
                        await pong
                except TimeoutError:
                    logger.info(
                        "%s: no answer to the heartbeat within %s s; dropping the connection",
                        self._remote,
                        pong_timeout,
                    )
                    ws.transport.abort()
                    return

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    @property
    def remote_address(self) -> str | None:
        return self._remote

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    def send_nowait(self, data: bytes) -> bool:
        # The frame goes through websockets' sans-I/O protocol, as its own send() does before it
        # awaits the drain, but is held until the end of this turn of the event loop: the
        # frames queued together (a burst of revisions, the replies to a batch) then reach the
        # socket in one write -- one system call, one TLS record -- instead of one each.
        # At most WS_COALESCE_MAX_BYTES are held. Refused while the transport's buffer is above
        # its high-water mark (send() would wait there) or the connection is not open (send()
        # raises the right ChannelClosed).
        ws = self._ws
        transport = ws.transport
        if (
            transport.get_write_buffer_size() > self._write_high
            or ws.protocol.state is not State.OPEN
            or transport.is_closing()
        ):
            return False
        protocol = ws.protocol
        protocol.send_binary(data)
        corked = self._corked
        for chunk in protocol.data_to_send():
            if len(chunk) > WS_COALESCE_MAX_FRAME:
                # a large frame gains nothing from company, and joining would copy it
                self.flush()
                transport.write(chunk)
                continue
            corked.append(chunk)
            self._corked_bytes += len(chunk)
        if self._corked_bytes > WS_COALESCE_MAX_BYTES:
            self.flush()  # enough for one write: the transport's buffer takes over from here
        elif corked and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Write what :meth:`send_nowait` holds to the transport now."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._corked:
            return
        data = b"".join(self._corked)
        self._corked.clear()
        self._corked_bytes = 0
        transport = self._ws.transport
        if not transport.is_closing():
            transport.write(data)

    async def send(self, data: bytes) -> None:
        self.flush()  # what send_nowait holds goes first: frames keep their order
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise closed_error(exc) from exc

    async def recv(self) -> bytes:
        while True:
            try:
                message = await self._ws.recv()
            except ConnectionClosed as exc:
                raise closed_error(exc) from exc
            if isinstance(message, bytes):
                return message
            # LiteCore ignores text messages with a warning rather than failing (notes §2.6);
            # a peer sending thousands must not produce thousands of log lines.
            self._text_warnings.log("ignoring a text WebSocket message from %s", self._remote)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake: a pending ``recv``,
        ``send`` or ``close`` returns or raises :class:`ChannelClosed` (1006) promptly, whatever
        the peer does. For bounded shutdowns, after a graceful :meth:`close` had its chance."""
        self._ws.transport.abort()

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        # The peer's closing frame can only be seen if we keep reading: once nobody calls
        # recv(), websockets' receive buffer fills, it stops reading the socket, and the
        # handshake would wait for close_timeout. So discard whatever still arrives meanwhile.
        self.flush()
        drain = asyncio.get_running_loop().create_task(self._discard_incoming())
        try:
            # websockets bounds the handshake with close_timeout, then drops the TCP link.
            await self._ws.close(code, truncate_close_reason(reason))
        finally:
            self._text_warnings.flush()
            drain.cancel()
            tasks = [drain]
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                tasks.append(self._heartbeat)
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _discard_incoming(self) -> None:
        # ConcurrencyError: someone else is still reading, and that read drains the buffer.
        with contextlib.suppress(ConnectionClosed, ConcurrencyError):
            while True:
                await self._ws.recv()

    def __repr__(self) -> str:
        return f"<WebSocketChannel {self._remote} {self.subprotocol}>"


def _conforms(channel: WebSocketChannel) -> MessageChannel:
    # MessageChannel is structural: this fails type checking if WebSocketChannel drifts from it.
    return channel
