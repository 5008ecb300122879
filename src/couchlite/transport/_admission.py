"""Admission of incoming WebSocket connections, counted from the moment a socket is accepted.

Theory of operation
-------------------
When asyncio serves TLS itself, it runs the whole TLS handshake before the application's
protocol hears of the connection, and each handshake in progress holds ~300 KB (its 256 KiB
read buffer): counting connections at the WebSocket level would come too late to bound them.
So the server that :func:`couchlite.transport.websocket.serve_channels` creates receives *plain*
TCP connections, and each accepted socket meets the :class:`Gate` first, in the protocol's
``connection_made``:

1. **Pending.** At most ``max_pending`` connections may be in their TLS handshake, HTTP
   upgrade or authentication at once. When all slots are taken, a connection already answered
   with a refusal (503, 401...: only its closing handshake is left) is aborted to make room;
   failing that, the oldest pending connection if it has been pending for at least
   ``pending_evict_age`` (it has stalled); otherwise the new socket is aborted at once, before
   any TLS work. Without the first rule, peers that keep refused sockets open would hold every
   slot until their close timeout, and a real client would be dropped unanswered instead of
   hearing the 503 that tells it to retry.
2. **TLS** (``loop.start_tls``, only for admitted sockets), then websockets reads the HTTP
   upgrade request: the request must be complete within ``handshake_timeout`` of the socket's
   acceptance, TLS handshake included (slowloris, silent sockets), or the socket is aborted.
3. **Established.** When the upgrade is about to be accepted, a slot among ``max_connections``
   is reserved (:meth:`Gate.reserve`); without one the upgrade is refused (503). The
   connection stops being pending once the WebSocket is open (:meth:`Gate.opened`).
4. **Release.** Whatever happens, the connection leaves every count when its socket is gone:
   ``connection_lost``, which asyncio always calls once ``connection_made`` was, or the end of
   a failed TLS handshake (asyncio does not tell the application protocol about those).

:meth:`Gate.abort_all` ends every connection still alive, whatever it is doing: what makes a
server's close prompt.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from websockets.asyncio.server import ServerConnection

from couchlite._tuning import (
    LISTENER_EARLY_DATA_LIMIT,
    LISTENER_PENDING_EVICT_AGE_S,
    LISTENER_RETRY_AFTER_S,
    WS_OPEN_TIMEOUT_S,
)
from couchlite.transport.failures import RateLimitedLog

logger = logging.getLogger("couchlite.transport.websocket")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What a server admits (``None``: no limit); see the module docstring."""

    max_connections: int | None = None
    max_pending: int | None = None
    handshake_timeout: float = WS_OPEN_TIMEOUT_S
    pending_evict_age: float = LISTENER_PENDING_EVICT_AGE_S
    retry_after: int = LISTENER_RETRY_AFTER_S


class Abortable(Protocol):
    def abort(self) -> None: ...


class Gate:
    """The counts of one server's connections (all on its event loop, so no locks)."""

    def __init__(self, limits: ConnectionLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        #: pending connections -> when they were accepted (insertion order: oldest first)
        self._pending: dict[Abortable, float] = {}
        #: pending connections already answered with a refusal (oldest first)
        self._answered: dict[Abortable, None] = {}
        self._established: set[Abortable] = set()
        self._live: set[Abortable] = set()
        #: set when the server closes: nothing new is admitted
        self.closing = False
        #: sockets aborted at accept because every pending slot was taken by a recent one
        self.refused = 0
        #: pending connections aborted to make room for a new one
        self.evicted = 0
        #: upgrades refused because ``max_connections`` were established
        self.full = 0
        #: what peers can make us log once per connection, rate-limited
        self.drops = RateLimitedLog(logger, logging.INFO)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def established_count(self) -> int:
        return len(self._established)

    @property
    def live_count(self) -> int:
        return len(self._live)

    def admit(self, connection: Abortable) -> bool:
        """Whether a just-accepted socket may proceed; may abort a stalled pending one."""
        if self.closing:
            return False
        limit = self.limits.max_pending
        now = self._clock()
        if limit is not None and len(self._pending) >= limit:
            if self._answered:
                victim = next(iter(self._answered))
            else:
                victim, since = next(iter(self._pending.items()))
                if now - since < self.limits.pending_evict_age:
                    self.refused += 1
                    return False
            self.evicted += 1
            self._forget_pending(victim)
            victim.abort()
        self._pending[connection] = now
        self._live.add(connection)
        return True

    def has_room(self) -> bool:
        limit = self.limits.max_connections
        return limit is None or len(self._established) < limit

    def reserve(self, connection: Abortable) -> bool:
        """Take an established slot for ``connection``; ``False`` when all are taken."""
        if connection in self._established:
            return True
        if not self.has_room():
            self.full += 1
            return False
        self._established.add(connection)
        return True

    def answered(self, connection: Abortable) -> None:
        """The upgrade was refused: the first to go when a pending slot is needed."""
        if connection in self._pending:
            self._answered[connection] = None

    def opened(self, connection: Abortable) -> None:
        """The WebSocket is open: no longer pending."""
        self._forget_pending(connection)

    def release(self, connection: Abortable) -> None:
        """The socket is gone (idempotent)."""
        self._forget_pending(connection)
        self._established.discard(connection)
        self._live.discard(connection)

    def _forget_pending(self, connection: Abortable) -> None:
        self._pending.pop(connection, None)
        self._answered.pop(connection, None)

    def abort_pending(self) -> None:
        for connection in list(self._pending):
            connection.abort()

    def abort_all(self) -> None:
        for connection in list(self._live):
            connection.abort()


def admitting_connection_class(
    gate: Gate, tls: ssl.SSLContext | None, tls_shutdown_timeout: float
) -> type[ServerConnection]:
    """A websockets ``ServerConnection`` class whose sockets pass ``gate`` first (and whose
    TLS, if ``tls``, is ours: started only once admitted)."""
    handshake_timeout = gate.limits.handshake_timeout

    class AdmittedConnection(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._raw: asyncio.Transport | None = None
            self._started = False
            self._early: list[bytes] = []
            self._early_size = 0
            self._early_eof = False
            self._awaiting_tls_layer = False
            self._tls_task: asyncio.Task[None] | None = None
            self._request_timer: asyncio.TimerHandle | None = None
            self._accepted_at = 0.0
            self._first_bytes_seen = False

        def abort(self) -> None:
            # The raw socket's transport: also ends a TLS handshake in progress, and a TLS
            # connection (its transport sits on top of this one).
            if self._raw is not None:
                self._raw.abort()

        # --- asyncio protocol callbacks -----------------------------------------------------

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            raw = cast(asyncio.Transport, transport)
            self._raw = raw
            self._accepted_at = asyncio.get_running_loop().time()
            if not gate.admit(self):
                raw.abort()
                return
            if tls is None:
                self._start(raw)
                return
            # Nothing may be read before start_tls has put the TLS layer in front of us.
            raw.pause_reading()
            self._awaiting_tls_layer = True
            self._tls_task = asyncio.get_running_loop().create_task(self._secure(raw))

        def data_received(self, data: bytes) -> None:
            if self._started:
                if tls is None and not self._first_bytes_seen and data:
                    self._first_bytes_seen = True
                    if data.startswith(_TLS_HANDSHAKE_RECORD):
                        self._refuse_tls(data)
                        return
                super().data_received(data)
                return
            # Held (bounded) until they have somewhere to go. Before start_tls put the TLS
            # layer in front of us they are the start of the handshake, read by a loop that
            # starts reading after connection_made whatever it asked (uvloop does): they go to
            # that layer (see _secure). After it, they were decrypted in the turn that
            # completed the handshake, before start_tls returned: they go to websockets.
            self._early_size += len(data)
            if self._early_size > LISTENER_EARLY_DATA_LIMIT:
                self.abort()
                return
            self._early.append(data)
            if self._awaiting_tls_layer and self._raw is not None:
                self._raw.pause_reading()

        def eof_received(self) -> None:
            # Only TLS connections can get here unstarted; over TLS the return value of
            # eof_received is ignored, so the EOF is simply replayed to websockets later.
            if self._started:
                super().eof_received()
            else:
                self._early_eof = True

        def connection_lost(self, exc: Exception | None) -> None:
            gate.release(self)
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None
            if self._started:
                super().connection_lost(exc)

        # --- the steps ----------------------------------------------------------------------

        async def _secure(self, raw: asyncio.Transport) -> None:
            assert tls is not None
            loop = asyncio.get_running_loop()
            # Runs after start_tls has set its protocol on the transport (it does so before its
            # first await) and before that protocol's connection_made and resume_reading,
            # which start_tls schedules in turn: the early bytes keep their place in the stream.
            loop.call_soon(self._hand_early_bytes_to_tls, raw)
            try:
                secured = await loop.start_tls(
                    raw,
                    self,
                    tls,
                    server_side=True,
                    ssl_handshake_timeout=handshake_timeout,
                    ssl_shutdown_timeout=tls_shutdown_timeout,
                )
            except asyncio.CancelledError:
                raw.abort()
                gate.release(self)
                raise
            except Exception as exc:  # SSLError, reset, timeout: the peer's problem
                logger.debug("TLS handshake with %s failed: %s", _peer(raw), exc)
                raw.abort()
                gate.release(self)
                return
            finally:
                self._tls_task = None
            if secured is None or secured.is_closing() or gate.closing:
                raw.abort()
                gate.release(self)
                return
            self._start(secured)

        def _take_early(self) -> bytes:
            """What data_received held, now handed on (the bound starts again)."""
            early = b"".join(self._early)
            self._early.clear()
            self._early_size = 0
            return early

        def _hand_early_bytes_to_tls(self, raw: asyncio.Transport) -> None:
            self._awaiting_tls_layer = False
            early = self._take_early()
            if not early:
                return
            tls_layer: Any = raw.get_protocol()
            if tls_layer is self or not hasattr(tls_layer, "buffer_updated"):
                raw.abort()  # no TLS layer to give them to: never a handshake that hangs
                return
            view = memoryview(early)
            while view:
                buffer = memoryview(tls_layer.get_buffer(len(view)))
                size = min(len(buffer), len(view))
                buffer[:size] = view[:size]
                tls_layer.buffer_updated(size)
                view = view[size:]

        def _start(self, transport: asyncio.Transport) -> None:
            self._started = True
            # websockets' own connection_made: it registers the connection's handler task.
            super().connection_made(transport)
            self._request_timer = asyncio.get_running_loop().call_at(
                self._accepted_at + handshake_timeout, self._request_due
            )
            early = self._take_early()
            if early:
                super().data_received(early)
            if self._early_eof:
                super().eof_received()

        def _refuse_tls(self, data: bytes) -> None:
            # A wss:// client: answer in plain HTTP, as web servers do, so that its TLS layer
            # reports "not TLS" ("wrong version number") instead of a bare hang-up, which a
            # client cannot tell from a busy server refusing it.
            gate.drops.log("%s: sent TLS to a ws:// listener; refusing it", _peer(self._raw))
            if self._raw is not None:
                self._raw.write(_NOT_TLS_RESPONSE)
                self._raw.close()

        def _request_due(self) -> None:
            self._request_timer = None
            if self.request is None:
                gate.drops.log(
                    "%s: no complete HTTP request %.0f s after connecting; dropping it",
                    _peer(self.transport),
                    handshake_timeout,
                )
                self.abort()

    return AdmittedConnection


#: The first bytes of a TLS connection: a handshake record (ClientHello) of TLS 1.x.
_TLS_HANDSHAKE_RECORD = b"\x16\x03"
_NOT_TLS_BODY = b"This is a ws:// (plain WebSocket) listener: connect with ws://, not wss://\n"
_NOT_TLS_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_NOT_TLS_BODY)).encode() + b"\r\n\r\n" + _NOT_TLS_BODY
)


def _peer(transport: asyncio.BaseTransport | None) -> str:
    if transport is None:
        return "?"
    address = transport.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


__all__ = ["ConnectionLimits", "Gate", "admitting_connection_class"]
