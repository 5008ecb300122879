"""A fault-injecting TCP proxy on 127.0.0.1, for resilience tests (asyncio).

``FaultProxy(target_port)`` listens on a free port of 127.0.0.1 and relays every accepted
connection to ``127.0.0.1:target_port``. Faults are chosen per connection, in order of arrival:
``proxy.plan = [Fault(...), None, ...]`` gives the first connection a fault, the second none, and
so on (connections beyond the plan get ``proxy.default``). A connection can also be faulted by
hand at any moment: ``proxy.connections[i].reset()`` etc.

Faults (:class:`Fault`):

* ``CUT``: close both sides normally (FIN), as if the peer hung up;
* ``RESET``: abort both sides with an RST (``SO_LINGER`` 0), as if the peer crashed;
* ``BLACKHOLE``: keep both TCP connections open but deliver nothing more in either direction
  (what is received is read and dropped): a peer that vanished without a trace;
* ``DELAY``: add ``delay`` seconds of latency to every chunk;
* ``THROTTLE``: limit the rate to ``rate`` bytes per second, per direction.

When: ``after_bytes`` (once that many bytes went through in ``direction``: ``"up"`` is client
to server, ``"down"`` server to client, ``"any"`` either), or ``after_seconds`` after the
connection was accepted, or at once when neither is given. The byte trigger is exact: the chunk
that crosses it is split, and the bytes beyond it are never delivered.

Everything the proxy starts is a task it owns; ``close()`` ends them all (bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

CHUNK = 16 * 1024
HOST = "127.0.0.1"


class Kind(enum.Enum):
    CUT = "cut"
    RESET = "reset"
    BLACKHOLE = "blackhole"
    DELAY = "delay"
    THROTTLE = "throttle"


@dataclass(frozen=True)
class Fault:
    kind: Kind
    after_bytes: int | None = None
    after_seconds: float | None = None
    direction: str = "any"  # "up", "down", "any": which bytes count towards after_bytes
    delay: float = 0.0  # DELAY: seconds per chunk
    rate: float = 0.0  # THROTTLE: bytes per second

    def __post_init__(self) -> None:
        assert self.direction in ("up", "down", "any")
        assert self.kind is not Kind.THROTTLE or self.rate > 0


@dataclass(eq=False)
class ProxiedConnection:
    """One relayed connection: counters, its fault, and the manual controls."""

    index: int
    fault: Fault | None
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    server_reader: asyncio.StreamReader | None = None
    server_writer: asyncio.StreamWriter | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    pumps_done: int = 0
    #: the fault in force (set when a trigger fired or by hand)
    active: Kind | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    #: set when a fault (of any kind) took effect
    faulted: asyncio.Event = field(default_factory=asyncio.Event)

    # --- manual controls ---

    def cut(self) -> None:
        self._trigger(Kind.CUT)

    def reset(self) -> None:
        self._trigger(Kind.RESET)

    def blackhole(self) -> None:
        self._trigger(Kind.BLACKHOLE)

    # --- internals ---

    def _writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client_writer, self.server_writer) if w is not None]

    def _trigger(self, kind: Kind) -> None:
        if self.closed.is_set():
            return
        self.active = kind
        self.faulted.set()
        if kind is Kind.CUT:
            for writer in self._writers():
                writer.close()
            self.closed.set()
        elif kind is Kind.RESET:
            for writer in self._writers():
                _abort_with_rst(writer)
            self.closed.set()
        # BLACKHOLE, DELAY, THROTTLE change how the pumps forward; nothing to do here.

    def _count(self, direction: str, size: int) -> int:
        """Record ``size`` bytes about to go ``direction``; returns how many may go before the
        fault's byte trigger fires (``size`` when it does not)."""
        fault = self.fault
        before = self.bytes_up + self.bytes_down
        if direction == "up":
            mine = self.bytes_up
            self.bytes_up += size
        else:
            mine = self.bytes_down
            self.bytes_down += size
        if fault is None or fault.after_bytes is None or self.active is not None:
            return size
        if fault.direction == "any":
            seen = before
        elif fault.direction == direction:
            seen = mine
        else:
            return size
        if seen + size < fault.after_bytes:
            return size
        return max(0, fault.after_bytes - seen)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """See the module docstring."""

    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.plan: list[Fault | None] = []
        self.default: Fault | None = None
        self.connections: list[ProxiedConnection] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: set whenever a connection arrives (tests wait on it, bounded)
        self.accepted = asyncio.Event()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in self.connections:
            for writer in conn._writers():
                writer.transport.abort()
            conn.closed.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def blackhole_all(self) -> None:
        for conn in self.connections:
            conn.blackhole()

    def reset_all(self) -> None:
        for conn in self.connections:
            conn.reset()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.connections)
        fault = self.plan[index] if index < len(self.plan) else self.default
        conn = ProxiedConnection(index, fault, reader, writer)
        self.connections.append(conn)
        self.accepted.set()
        try:
            async with asyncio.timeout(10):
                conn.server_reader, conn.server_writer = await asyncio.open_connection(*self.target)
        except (OSError, TimeoutError):
            _abort_with_rst(writer)  # the target is down: the client sees a reset
            conn.closed.set()
            return
        if fault is not None:
            if fault.after_bytes is None and fault.after_seconds is None:
                conn._trigger(fault.kind)
            elif fault.after_seconds is not None:
                self._spawn(self._timer(conn, fault))
        if conn.closed.is_set():
            return
        self._spawn(self._pump(conn, "up", reader, conn.server_writer))
        self._spawn(self._pump(conn, "down", conn.server_reader, writer))

    async def _timer(self, conn: ProxiedConnection, fault: Fault) -> None:
        assert fault.after_seconds is not None
        await asyncio.sleep(fault.after_seconds)
        conn._trigger(fault.kind)

    async def _pump(
        self,
        conn: ProxiedConnection,
        direction: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while not conn.closed.is_set():
                data = await reader.read(CHUNK)
                if not data:
                    # a normal end from one side: pass the FIN on (half-close)
                    if conn.active is not Kind.BLACKHOLE and writer.can_write_eof():
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                    return
                allowed = conn._count(direction, len(data))
                if allowed < len(data):
                    head, data = data[:allowed], data[allowed:]
                    if head:
                        writer.write(head)
                        with contextlib.suppress(OSError):
                            await writer.drain()
                    assert conn.fault is not None
                    conn._trigger(conn.fault.kind)
                    if conn.closed.is_set():
                        continue  # cut or reset: the rest is never delivered
                    # a blackhole drops the rest, a delay/throttle forwards it its new way
                if conn.active is Kind.BLACKHOLE:
                    continue  # read and dropped
                if conn.active is Kind.DELAY and conn.fault is not None:
                    await asyncio.sleep(conn.fault.delay)
                writer.write(data)
                await writer.drain()
                if conn.active is Kind.THROTTLE and conn.fault is not None:
                    await asyncio.sleep(len(data) / conn.fault.rate)
        except (OSError, asyncio.IncompleteReadError):
            # one side died: the other side sees the same (RST), like a router would do
            for other in conn._writers():
                other.transport.abort()
            conn.closed.set()
        finally:
            conn.pumps_done += 1
            if conn.pumps_done == 2:  # both directions ended: release the sockets
                for other in conn._writers():
                    other.close()
                conn.closed.set()
