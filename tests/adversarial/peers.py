"""The adversarial harness: real peers in their own processes, raw and hostile BLIP peers.

* :class:`ListenerProcess`: a ``UrlEndpointListener`` on 127.0.0.1 in a child process
  (``listener_proc.py``).
* :class:`ReplicatorProcess`: a ``Replicator`` in a child process (``replicator_proc.py``),
  reporting every status change and replicated-document batch.
* :func:`raw_client`: a real ``websockets`` client with a real ``BlipProtocol``, for sending
  well-formed requests or arbitrary frames (:class:`RawPeer`).
* :func:`hostile_listener`: a WebSocket server in the test's process that hands each
  connection, as a :class:`RawPeer`, to a handler.
* :func:`rss_of`: resident memory of a process.

Child processes print JSON lines, exit when their stdin closes (and on their own after
``max_lifetime`` seconds), and are killed by ``atexit`` if a test leaves one behind. Every wait
is bounded.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import ssl as ssl_module
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from tests.adversarial.rawpeer import (
    REPLY_TIMEOUT_S,
    SUBPROTOCOL,
    HostileURL,
    PeerClosed,
    RawPeer,
    hostile_listener,
    raw_client,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = REPO / "src"
LISTENER_SCRIPT = HERE / "listener_proc.py"
REPLICATOR_SCRIPT = HERE / "replicator_proc.py"

#: Bound on each answer from a child process (generous: the machine is shared and noisy).
COMMAND_TIMEOUT_S = 30.0
#: Bound on a child's start (interpreter + imports + database + listener).
START_TIMEOUT_S = 60.0

_LIVE: weakref.WeakSet[_Child] = weakref.WeakSet()


def rss_of(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (from /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)


def fd_count(pid: int) -> int:
    """Open file descriptors of process ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(SRC), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _folder(base: Path, name: str) -> Path:
    directory = base / name
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class ChildFailed(RuntimeError):
    """A child process exited, refused a command, or did not answer in time."""


class _Child:
    """A child process speaking JSON lines: ``{"event": ...}`` and ``{"reply": op, ...}``."""

    def __init__(self, script: Path, options: dict[str, Any]) -> None:
        self.options = options
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=_child_env(),
        )
        _LIVE.add(self)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(options) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died at once: its stderr tells why, below
        self._replies: Queue[dict[str, Any] | None] = Queue()
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._stderr: list[str] = []
        self._command_lock = threading.Lock()
        self._pumps = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for pump in self._pumps:
            pump.start()
        try:
            self.hello = self.wait_event(lambda e: e["event"] == "ready", START_TIMEOUT_S)
        except BaseException:
            self.kill()
            raise
        self.pid: int = self.proc.pid

    # --- pumps ----------------------------------------------------------------------------------

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                self._stderr.append(f"[stdout] {line}")
                continue
            if "reply" in obj:
                self._replies.put(obj)
            else:
                with self._changed:
                    self._events.append(obj)
                    self._changed.notify_all()
        self._replies.put(None)
        with self._changed:
            self._changed.notify_all()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    # --- queries --------------------------------------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._events)

    def stderr_text(self) -> str:
        """Everything the child wrote on stderr so far (its log)."""
        return "".join(self._stderr)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        return rss_of(self.proc.pid)

    def fd_count(self) -> int:
        return fd_count(self.proc.pid)

    def wait_event(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = COMMAND_TIMEOUT_S,
        *,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first event (from index ``since``) matching ``predicate``; bounded wait."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events[since:]:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no matching event within {timeout:.0f} s; events: "
                        f"{self._events[-20:]}; stderr: {self.stderr_text()[-3000:]}"
                    )
                if self.proc.poll() is not None and self._pumps[0].is_alive() is False:
                    raise ChildFailed(
                        f"exited ({self.proc.returncode}) before the event; "
                        f"stderr: {self.stderr_text()[-3000:]}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def command(self, op: str, timeout: float = COMMAND_TIMEOUT_S, **fields: Any) -> Any:
        """Send one command and return its reply (bounded wait)."""
        with self._command_lock:
            if self.proc.stdin is None or self.proc.stdin.closed or not self.alive():
                raise ChildFailed(f"the child has exited; stderr: {self.stderr_text()[-3000:]}")
            try:
                self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise ChildFailed(f"the child has exited: {exc}") from None
            try:
                reply = self._replies.get(timeout=timeout)
            except Empty:
                raise TimeoutError(
                    f"no reply to {op!r} within {timeout:.0f} s; "
                    f"stderr: {self.stderr_text()[-3000:]}"
                ) from None
        if reply is None:
            raise ChildFailed(
                f"exited ({self.proc.poll()}) during {op!r}; stderr: {self.stderr_text()[-3000:]}"
            )
        if "failed" in reply:
            raise ChildFailed(f"{op!r} failed in the child: {reply['failed']}")
        return reply

    async def acommand(self, op: str, timeout: float = COMMAND_TIMEOUT_S, **fields: Any) -> Any:
        """:meth:`command` without blocking the calling event loop."""
        return await asyncio.to_thread(self.command, op, timeout, **fields)

    # --- shutdown -------------------------------------------------------------------------------

    def close(self, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any] | None:
        """Ask the child to stop (closing its stdin); kill it if it does not exit in time.

        Returns its last words (the ``stop`` reply) when it had any."""
        final = None
        if self.alive() and self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        while True:
            try:
                reply = self._replies.get_nowait()
            except Empty:
                break
            if reply is not None and reply.get("reply") == "stop":
                final = reply
        self._finish()
        return final

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind in the child."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._finish()

    def _finish(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        for pump in self._pumps:
            pump.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()
        _LIVE.discard(self)


@atexit.register
def _kill_leftovers() -> None:
    for child in list(_LIVE):
        with contextlib.suppress(Exception):
            child.kill()


def live_children() -> set[int]:
    """Identities of the children still tracked (see :func:`kill_children`)."""
    return {id(child) for child in list(_LIVE)}


def kill_children(keep: Iterable[int] = ()) -> int:
    """Kill every tracked child but those in ``keep``; returns how many were still running.
    The conftest calls it after each test, keeping those that existed before the test."""
    kept = set(keep)
    doomed = [child for child in list(_LIVE) if id(child) not in kept]
    running = sum(1 for child in doomed if child.alive())
    for child in doomed:
        with contextlib.suppress(Exception):
            child.kill()
    return running


# --- the listener ------------------------------------------------------------------------------


class ListenerProcess(_Child):
    """A ``UrlEndpointListener`` on 127.0.0.1 in its own process, as a context manager.

    ``tls``: serve ``wss://`` with the database's anonymous identity (``.certificate_pem``).
    ``auth``: ``(user, password)``, or ``{"user", "password", "delay"}`` for a slow check.
    ``cert_auth``: ``{"roots": [PEM]}`` or ``{"chain_ends_with": PEM}``. ``docs``: ``{id: body}``
    created first. ``collections``: extra ``"scope.name"`` collections, served too.
    ``config``: extra ``UrlEndpointListenerConfiguration`` keyword arguments (JSON values).
    ``name``: the database's folder under ``tmp_path`` (the same name reopens the same data).
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        tls: bool = False,
        auth: Iterable[str] | Mapping[str, Any] | None = None,
        cert_auth: Mapping[str, Any] | None = None,
        read_only: bool = False,
        docs: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        collections: Iterable[str] = (),
        name: str = "listener",
        log_level: str = "WARNING",
        max_lifetime: float = 600.0,
    ) -> None:
        self.directory = _folder(Path(tmp_path), name)
        options: dict[str, Any] = {
            "directory": str(self.directory),
            "db": "db",
            "tls": tls,
            "auth": (dict(auth) if isinstance(auth, Mapping) else list(auth)) if auth else None,
            "cert_auth": dict(cert_auth) if cert_auth else None,
            "read_only": read_only,
            "docs": dict(docs or {}),
            "config": dict(config or {}),
            "collections": list(collections),
            "log_level": log_level,
            "max_lifetime": max_lifetime,
        }
        super().__init__(LISTENER_SCRIPT, options)
        self.port: int = self.hello["port"]
        self.certificate_pem: str | None = self.hello["certificate"]
        scheme = "wss" if tls else "ws"
        self.url = f"{scheme}://127.0.0.1:{self.port}/db"

    @property
    def blipsync_url(self) -> str:
        return self.url + "/_blipsync"

    def client_ssl_context(self) -> ssl_module.SSLContext | None:
        """A client context trusting only this listener's certificate (no host name check)."""
        if self.certificate_pem is None:
            return None
        context = ssl_module.create_default_context(cadata=self.certificate_pem)
        context.check_hostname = False
        return context

    def status(self) -> dict[str, Any]:
        """``{"connections": n, "active": n, "listening": bool}``."""
        return dict(self.command("status"))

    def dump(self, collection: str = "_default._default") -> dict[str, Any]:
        """``{doc_id: body}`` of the live documents (blobs as their property dicts)."""
        return dict(self.command("dump", collection=collection)["docs"])

    def revs(self, collection: str = "_default._default") -> dict[str, str]:
        return dict(self.command("revs", collection=collection)["revs"])

    def put(
        self, doc_id: str, body: Mapping[str, Any], collection: str = "_default._default"
    ) -> str:
        return str(self.command("put", id=doc_id, body=dict(body), collection=collection)["rev"])

    def delete(self, doc_id: str, collection: str = "_default._default") -> bool:
        return bool(self.command("delete", id=doc_id, collection=collection)["deleted"])

    def tasks(self) -> dict[str, int]:
        """``{"tasks": asyncio tasks on the library's loop, "threads": threads}``."""
        reply = self.command("tasks")
        return {"tasks": reply["tasks"], "threads": reply["threads"]}

    def missing_blobs(self, collection: str = "_default._default") -> list[str]:
        """IDs of documents referring to a blob whose content cannot be read."""
        return list(self.command("missing_blobs", collection=collection)["missing"])

    def disk_usage(self) -> int:
        """Bytes of every file under the listener's folder."""
        return sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())

    def __enter__(self) -> ListenerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the replicator ----------------------------------------------------------------------------

_LEVELS = ("STOPPED", "OFFLINE", "CONNECTING", "IDLE", "BUSY")
_CONVENIENCES = (
    "type",
    "continuous",
    "docs",
    "auth",
    "pinned_cert",
    "accept_only_self_signed",
    "trusted_roots",
    "headers",
    "start",
    "log_level",
    "max_lifetime",
)
_COLLECTION_FIELDS = ("document_ids", "push_filter_ids", "pull_filter_ids")


def _level_name(level: Any) -> str:
    name = getattr(level, "name", level)
    if name not in _LEVELS:
        raise ValueError(f"unknown activity level {level!r}")
    return str(name)


class ReplicatorProcess(_Child):
    """A ``Replicator`` against ``url`` in its own process, as a context manager.

    ``options`` (or the same names as keyword arguments): ``type`` ("push", "pull",
    "pushpull"), ``continuous``, ``docs`` ({id: body} created first), ``auth`` ((user,
    password)), ``pinned_cert`` (PEM), ``accept_only_self_signed``, ``trusted_roots``,
    ``headers``, ``document_ids``, ``push_filter_ids`` / ``pull_filter_ids`` (filters admitting
    only those IDs), ``config`` (any other ``ReplicatorConfiguration`` attribute: heartbeat,
    max_attempts, max_message_size...), ``start`` (default True; else call :meth:`start`).
    Retries wait at most 1 s unless ``config`` sets ``max_attempt_wait_time``.
    """

    def __init__(
        self,
        tmp_path: Path,
        url: str,
        *,
        options: Mapping[str, Any] | None = None,
        name: str = "replicator",
        **kwargs: Any,
    ) -> None:
        merged: dict[str, Any] = dict(options or {})
        merged.update(kwargs)
        self.directory = _folder(Path(tmp_path), name)
        child: dict[str, Any] = {"directory": str(self.directory), "db": "db", "url": url}
        config = dict(merged.pop("config", None) or {})
        config.setdefault("max_attempt_wait_time", 1.0)
        child["config"] = config
        collection = dict(merged.pop("collection", None) or {})
        for key in _COLLECTION_FIELDS:
            if key in merged:
                value = merged.pop(key)
                collection[key] = list(value) if value is not None else None
        child["collection"] = collection
        for key in _CONVENIENCES:
            if key in merged:
                value = merged.pop(key)
                child[key] = list(value) if key == "auth" and value else value
        if "max_message_size" in merged:
            config["max_message_size"] = merged.pop("max_message_size")
        if merged:
            # Anything else is a ReplicatorConfiguration attribute, by name.
            config.update(merged)
        self.url = url
        super().__init__(REPLICATOR_SCRIPT, child)

    # --- status -----------------------------------------------------------------------------

    def statuses(self) -> list[dict[str, Any]]:
        """Every status event so far: ``{"activity", "completed", "total", "error"}``."""
        return [e for e in self.events if e["event"] == "status"]

    def document_events(self) -> list[dict[str, Any]]:
        """Every replicated-document batch: ``{"is_push", "docs": [{"id", "flags", "error"}]}``."""
        return [e for e in self.events if e["event"] == "documents"]

    def document_errors(self) -> list[dict[str, Any]]:
        """``{"id", "is_push", "error"}`` of every document reported with an error."""
        return [
            {"id": d["id"], "is_push": e["is_push"], "error": d["error"]}
            for e in self.document_events()
            for d in e["docs"]
            if d["error"] is not None
        ]

    def wait_status(
        self, level: Any, timeout: float = COMMAND_TIMEOUT_S, *, since: int = 0
    ) -> dict[str, Any]:
        """The first status event (from event index ``since``) at ``level`` (a name such as
        "IDLE", a ``ReplicatorActivityLevel``, or a tuple of them); bounded wait."""
        levels = level if isinstance(level, tuple | list | set) else (level,)
        names = {_level_name(x) for x in levels}
        return self.wait_event(
            lambda e: e["event"] == "status" and e["activity"] in names, timeout, since=since
        )

    async def await_status(
        self, level: Any, timeout: float = COMMAND_TIMEOUT_S, *, since: int = 0
    ) -> dict[str, Any]:
        """:meth:`wait_status` without blocking the calling event loop."""
        return await asyncio.to_thread(self.wait_status, level, timeout, since=since)

    def last_error(self) -> dict[str, Any] | None:
        """The latest error a status event carried (``{"type", "domain", "code", "message",
        "transient"}``), or ``None``."""
        for event in reversed(self.statuses()):
            if event["error"] is not None:
                return dict(event["error"])
        return None

    def status(self) -> dict[str, Any]:
        """The replicator's current status (asked now)."""
        return dict(self.command("status"))

    # --- data -------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return dict(self.command("dump")["docs"])

    async def adump(self) -> dict[str, Any]:
        return dict((await self.acommand("dump"))["docs"])

    def revs(self) -> dict[str, str]:
        return dict(self.command("revs")["revs"])

    def put(self, doc_id: str, body: Mapping[str, Any]) -> str:
        return str(self.command("put", id=doc_id, body=dict(body))["rev"])

    def delete(self, doc_id: str) -> bool:
        return bool(self.command("delete", id=doc_id)["deleted"])

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, reset: bool = False) -> None:
        self.command("start", reset=reset)

    def stop_replicator(self) -> dict[str, Any]:
        """Stop the replicator but keep the process (and its database) for inspection."""
        return dict(self.command("stop_replicator", timeout=60.0))

    async def astop_replicator(self) -> dict[str, Any]:
        return dict(await self.acommand("stop_replicator", 60.0))

    def stop(self) -> dict[str, Any] | None:
        """Stop the replicator and end the process; returns its final status, if it said."""
        return self.close(60.0)

    async def astop(self) -> dict[str, Any] | None:
        """:meth:`stop` without blocking the calling event loop."""
        return await asyncio.to_thread(self.stop)

    def __enter__(self) -> ReplicatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(60.0)


def run(coro: Awaitable[Any], timeout: float = 90.0) -> Any:
    """Run ``coro`` on a fresh event loop, bounded by ``timeout`` seconds."""

    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


__all__ = [
    "COMMAND_TIMEOUT_S",
    "REPLY_TIMEOUT_S",
    "SUBPROTOCOL",
    "ChildFailed",
    "HostileURL",
    "ListenerProcess",
    "PeerClosed",
    "RawPeer",
    "ReplicatorProcess",
    "fd_count",
    "hostile_listener",
    "kill_children",
    "live_children",
    "raw_client",
    "rss_of",
    "run",
]
