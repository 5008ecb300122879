"""Plumbing shared by the active and passive sessions: tunables, error mapping, sequence
tracking, batched event reporting, blob references, and the per-collection context.

Theory of operation
-------------------
* **Errors** (notes §2.8): an ``ERR`` answer from the peer becomes a :class:`CouchliteError`
  whose domain follows LiteCore's receiving rule -- ``HTTP`` becomes ``WebSocket`` with the same
  code, a LiteCore domain name stays itself. Fatal answers (400/403/404 to session-level
  requests) end a session; per-document answers are reported per document.
* **Sequence tracking** (notes §9.1, §10): a checkpoint may only claim a sequence when every
  earlier sequence of interest is done. :class:`SequenceTracker` keeps the sequences in the order
  they were announced and pops the finished prefix, so the checkpoint is O(1) amortised per
  document and never skips a revision that is still in flight.
* **Events**: per-document results are collected and handed to the façade in batches (every
  ``EVENT_FLUSH_INTERVAL_S``), never one callback per document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from couchlite._tuning import MAX_REQUESTED_REVS
from couchlite.blip import BlipErrorReply
from couchlite.errors import (
    AuthenticationError,
    ConflictError,
    CouchliteError,
    ErrorDomain,
    LiteCoreCode,
    NotFoundError,
)
from couchlite.replicator.options import NullEvents, SessionEvents
from couchlite.replicator.store import CollectionStore, ListenerHandle
from couchlite.replicator.types import DocumentFlags, ReplicatedDocument
from couchlite.transport.failures import is_transient, transient_codes

logger = logging.getLogger(__name__)

# --- tunables (LiteCore values from ReplicatorTuning.hh where one exists; notes §13) ----------

#: Entries per ``changes``/``proposeChanges`` message and per changes-feed read (LiteCore).
CHANGES_BATCH_SIZE = 200
#: ``changes``/``proposeChanges`` messages awaiting replies, per direction (LiteCore: 5).
MAX_CHANGE_LISTS_IN_FLIGHT = 5
#: ``rev`` messages awaiting replies per session. LiteCore allows 10, but our throughput comes
#: from pipelining: one round trip per document is exactly what must not happen. It stays well
#: below the connection's 100 concurrent handlers so the peer's rev handlers (which may wait on
#: our getAttachment replies) can never exhaust its handler slots.
MAX_REVS_IN_FLIGHT = 64
#: Bytes of ``rev`` bodies awaiting replies before the sender waits (LiteCore: 2 MiB).
MAX_REV_BYTES_IN_FLIGHT = 2 * 1024 * 1024
#: ``maxHistory`` we ask for, and assume when the peer names none (LiteCore rev trees: 50).
MAX_HISTORY = 50
#: Known ancestors listed per entry in a ``changes`` reply (LiteCore ``kMaxPossibleAncestors``).
MAX_POSSIBLE_ANCESTORS = 10
#: Revisions inserted per transaction by the sink's batching inserter: one commit per batch is
#: what makes pulling fast; 200 matches the changes batch.
INSERT_BATCH_SIZE = 200
#: How long the inserter waits for more revisions before committing a partial batch. Short
#: enough to be invisible in latency, long enough to gather the revs of one burst of frames.
INSERT_BATCH_DELAY_S = 0.001
#: Run each batch's ``insert_revisions`` on a worker thread instead of the event loop. Off: the
#: store already commits on its own writer thread, so a second hop only adds GIL hand-offs;
#: measured over ws:// between two processes (20,000 docs pushed), the receiving process used
#: ~10% less CPU calling the store directly, at the same throughput.
INSERT_IN_THREAD = False
#: ``rev`` bodies at least this long are sent compressed. LiteCore compresses every ``rev``
#: (interop fact 15), and so do we by default; a deflate sync-flush costs tens of microseconds
#: per message, which a deployment exchanging tiny documents may prefer to skip.
COMPRESS_REV_MIN_BYTES = 0
#: Bodies smaller than this are never sent as deltas (LiteCore ``kMinBodySizeForDelta``): the
#: saving could not pay for the base lookup and the diff.
MIN_BODY_SIZE_FOR_DELTA = 200
#: A delta is sent only when its JSON is at most this fraction of the full body. LiteCore allows
#: 1.2 (its body size is the Fleece encoding, not JSON); here both sizes are JSON bytes, so a
#: delta that is not clearly smaller would only add work for the receiver: we require 3/4.
MAX_DELTA_BODY_RATIO = 0.75
#: How often an active session saves changed checkpoints (LiteCore ``checkpointInterval``).
CHECKPOINT_SAVE_INTERVAL_S = 5.0
#: Retries of ``setCheckpoint`` after a 409 (each preceded by a ``getCheckpoint``).
CHECKPOINT_CONFLICT_RETRIES = 3
#: How often per-document events and progress are handed to the façade.
EVENT_FLUSH_INTERVAL_S = 0.05
#: Longest a continuous source sleeps without re-reading its changes feed: change listeners
#: wake it at once, this is only a safety net so no wait is unbounded.
IDLE_POLL_S = 30.0
#: Upper bound for a user's (async) conflict resolver; beyond it the document is reported as
#: failed and stays conflicted (resolved again next time).
RESOLVER_TIMEOUT_S = 60.0
#: Upper bound for any single wait on a reply or on an internal condition.
WAIT_TIMEOUT_S = 300.0

#: HTTP statuses worth retrying (408, 429, 502, 503, 504): the one table, transport.failures.
TRANSIENT_HTTP = frozenset(c for c in transient_codes(ErrorDomain.WEBSOCKET) if c < 1000)


# --- errors ---------------------------------------------------------------------------------


def remote_error(exc: BlipErrorReply, context: str = "") -> CouchliteError:
    """LiteCore's mapping of a received ERR (notes §2.8) onto the couchlite exception tree."""
    text = f"{context}: {exc.message}" if context and exc.message else (exc.message or context)
    if exc.error_domain == "HTTP":
        return http_error(exc.code, text)
    if exc.error_domain in {d.value for d in ErrorDomain}:
        domain = ErrorDomain(exc.error_domain)
        return CouchliteError(
            text, domain=domain, code=exc.code, transient=is_transient(domain, exc.code)
        )
    return CouchliteError(text, domain=ErrorDomain.LITECORE, code=LiteCoreCode.REMOTE_ERROR)


def http_error(code: int, text: str) -> CouchliteError:
    """An HTTP status from the peer, as Couchbase Lite reports it: WebSocket domain, same code."""
    domain = ErrorDomain.WEBSOCKET
    transient = is_transient(domain, code)
    if code == 401:
        return AuthenticationError(text, domain=domain, code=code)
    if code == 404:
        return NotFoundError(text, domain=domain, code=code, transient=transient)
    if code == 409:
        return ConflictError(text, domain=domain, code=code, transient=transient)
    return CouchliteError(text, domain=domain, code=code, transient=transient)


def error_reply_for(error: CouchliteError) -> BlipErrorReply:
    """The ERR we answer with for a local error (LiteCore's sending rule, notes §2.8)."""
    if error.domain is ErrorDomain.WEBSOCKET and error.code < 1000:
        return BlipErrorReply("HTTP", error.code, error.message)
    if isinstance(error, ConflictError):
        return BlipErrorReply("HTTP", 409, error.message)
    return BlipErrorReply(str(error.domain), error.code, error.message)


def http_reply(code: int, text: str) -> BlipErrorReply:
    return BlipErrorReply("HTTP", code, text)


# --- sequences ------------------------------------------------------------------------------

_PENDING, _DONE, _STUCK = 0, 1, 2


class SequenceTracker:
    """Sequences in announcement order; :attr:`checkpoint` is the last one of the done prefix.

    Keys are whatever identifies a sequence for the caller (local ints for a pusher, the JSON
    text of the remote sequence for a puller); values are what the checkpoint records.
    """

    def __init__(self, start: Any = None) -> None:
        self._states: dict[Any, int] = {}
        self._order: deque[Any] = deque()
        self._values: dict[Any, Any] = {}
        self.checkpoint: Any = start
        self.outstanding = 0
        self.changed = False
        self._frozen = False
        self._quiet = asyncio.Event()
        self._quiet.set()

    def add(self, key: Any, value: Any) -> None:
        if key in self._states:
            return
        self._states[key] = _PENDING
        if not self._frozen:
            self._order.append(key)
            self._values[key] = value
        self.outstanding += 1
        self._quiet.clear()

    def done(self, key: Any) -> None:
        self._finish(key, _DONE)

    def stuck(self, key: Any) -> None:
        """Finished, but must be retried next session: the checkpoint stays before it."""
        self._finish(key, _STUCK)

    def _finish(self, key: Any, state: int) -> None:
        if self._states.get(key) != _PENDING:
            return
        self.outstanding -= 1
        if self.outstanding == 0:
            self._quiet.set()
        if self._frozen:
            del self._states[key]
            return
        self._states[key] = state
        states, order = self._states, self._order
        while order and states[order[0]] == _DONE:
            first = order.popleft()
            del states[first]
            self.checkpoint = self._values.pop(first)
            self.changed = True
        if order and states[order[0]] == _STUCK:
            self._freeze()

    def _freeze(self) -> None:
        """A stuck sequence heads the queue: the checkpoint cannot move past it in this
        session, so from now on only the pending keys are kept (memory stays flat however many
        sequences follow; ``outstanding`` and ``wait_quiet`` work as before)."""
        self._frozen = True
        self._states = {k: _PENDING for k, v in self._states.items() if v == _PENDING}
        self._order.clear()
        self._values.clear()

    def is_pending(self, key: Any) -> bool:
        return self._states.get(key) == _PENDING

    async def wait_quiet(self) -> None:
        """Wait until nothing is outstanding (bounded by ``WAIT_TIMEOUT_S``)."""
        async with asyncio.timeout(WAIT_TIMEOUT_S):
            await self._quiet.wait()


# --- events ---------------------------------------------------------------------------------


class Reporter:
    """Collects per-document results and progress; hands them to the façade in batches."""

    def __init__(self, events: SessionEvents | None) -> None:
        self._events: SessionEvents = events if events is not None else NullEvents()
        self._docs: dict[bool, list[ReplicatedDocument]] = {True: [], False: []}
        self.completed = 0
        self.total = 0
        self._reported = (-1, -1)
        self._timer: asyncio.TimerHandle | None = None
        self._busy_parts: set[object] = set()
        self._busy = False

    def add_total(self, n: int) -> None:
        self.total += n
        self._schedule()

    def add_completed(self, n: int = 1) -> None:
        self.completed += n
        self._schedule()

    def document(self, is_push: bool, doc: ReplicatedDocument, *, count: bool = True) -> None:
        self._docs[is_push].append(doc)
        if count:
            self.completed += 1
        self._schedule()

    def set_busy(self, part: object, busy: bool) -> None:
        """Activity is the OR of every part's (pusher, puller...) own busy state."""
        if busy:
            self._busy_parts.add(part)
        else:
            self._busy_parts.discard(part)
        now = bool(self._busy_parts)
        if now != self._busy:
            self._busy = now
            if not now:
                self.flush()  # results before "idle", as a façade expects
            self._safe(self._events.activity_changed, now)

    @property
    def busy(self) -> bool:
        return self._busy

    def _schedule(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(EVENT_FLUSH_INTERVAL_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for is_push in (True, False):
            docs = self._docs[is_push]
            if docs:
                self._docs[is_push] = []
                self._safe(self._events.documents_replicated, is_push, docs)
        progress = (self.completed, max(self.total, self.completed))
        if progress != self._reported:
            self._reported = progress
            self._safe(self._events.progress, *progress)

    def close(self) -> None:
        self.flush()

    @staticmethod
    def _safe(fn: Callable[..., None], *args: Any) -> None:
        # A failing callback belongs to the façade; it must not stop replication.
        try:
            fn(*args)
        except Exception:
            logger.exception("replication event callback failed")


# --- collections ----------------------------------------------------------------------------


class PeerRevisions:
    """Revisions the peer pushed to us in this session, so that they are not announced back.

    Only a passive side that is also sending its changes to the peer needs them (``watch()``
    turns recording on), and each only until its changes feed has been read past the sequence
    the revision was stored at (``forget_through``): the map then holds the few revisions between
    the peer's pushes and the next read of the feed, not one per document pushed during the
    connection's life. Missing an entry costs only an announcement the peer declines.
    """

    __slots__ = ("_revs", "_watching")

    def __init__(self) -> None:
        #: doc_id -> (revision, a sequence at or after the one it was stored at), in the order
        #: recorded, so those bounds never decrease from first to last (an OrderedDict: taking
        #: from the front of a plain dict rescans the removed slots every time)
        self._revs: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._watching = False

    def watch(self) -> None:
        self._watching = True

    def record(self, doc_id: str, rev_id: str, stored_by: int) -> None:
        """The peer pushed ``rev_id``; it is stored at a sequence no later than ``stored_by``."""
        if self._watching:
            self._revs[doc_id] = (rev_id, stored_by)
            self._revs.move_to_end(doc_id)  # re-recorded: to the end, keeping the order

    def is_echo(self, doc_id: str, rev_id: str) -> bool:
        entry = self._revs.get(doc_id)
        return entry is not None and entry[0] == rev_id

    def forget_through(self, sequence: int) -> None:
        """Drop the revisions stored at or before ``sequence`` (the feed was read past them)."""
        revs = self._revs
        while revs:
            _, stored_by = next(iter(revs.values()))
            if stored_by > sequence:
                return
            revs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._revs)


class RequestedRevisions:
    """The revisions this side asked the peer for and has not received yet, per collection:
    answered "wanted" in a ``changes`` reply, or accepted in a ``proposeChanges`` reply. A
    ``rev`` is stored only if its ``(doc_id, rev_id)`` is here; anything else is refused.

    Bounded by ``MAX_REQUESTED_REVS``: past it the oldest request is forgotten (returned by
    :meth:`add`, so a puller can keep its checkpoint before it). O(1) per revision.
    """

    __slots__ = ("_limit", "_pending")

    def __init__(self, limit: int = MAX_REQUESTED_REVS) -> None:
        #: (doc_id, rev_id) -> the caller's value (a puller's sequence key), oldest first
        self._pending: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._limit = limit

    def add(self, doc_id: str, rev_id: str, value: Any = None) -> tuple[bool, Any]:
        """Record a request; returns ``(True, value)`` of a request evicted to make room,
        else ``(False, None)``."""
        pending = self._pending
        pending[(doc_id, rev_id)] = value
        if len(pending) > self._limit:
            return True, pending.popitem(last=False)[1]
        return False, None

    def __contains__(self, key: object) -> bool:
        return key in self._pending

    def get(self, doc_id: str, rev_id: str) -> Any:
        return self._pending.get((doc_id, rev_id))

    def pop(self, doc_id: str, rev_id: str) -> tuple[bool, Any]:
        """Forget a request (the revision arrived, or will never come): ``(found, value)``."""
        key = (doc_id, rev_id)
        if key in self._pending:
            return True, self._pending.pop(key)
        return False, None

    def __len__(self) -> int:
        return len(self._pending)


@dataclass(eq=False)
class CollectionContext:
    """One replicated collection of a session: its store and how messages address it."""

    index: int
    store: CollectionStore
    #: ``{"collection": "<index>"}`` in collection-aware mode, empty in legacy mode (notes §4.1)
    address: dict[str, str] = field(default_factory=dict)
    #: what the peer pushed to us in this session (passive side): not announced back (no echo)
    peer_revs: PeerRevisions = field(default_factory=PeerRevisions)
    #: what the peer was told to send us (passive side: accepted proposals and wanted changes)
    requested: RequestedRevisions = field(default_factory=RequestedRevisions)

    @property
    def path(self) -> str:
        """The collection's name as ``getCollections`` writes it (default scope omitted)."""
        if self.store.scope_name == "_default":
            return self.store.name
        return f"{self.store.scope_name}.{self.store.name}"

    def props(self, profile: str) -> dict[str, str]:
        """A fresh property dict starting with ``Profile`` then ``collection`` (wire order)."""
        props = {"Profile": profile}
        props.update(self.address)
        return props


class ChangeWatcher:
    """Turns a store's change listener (called on any thread) into an asyncio event."""

    def __init__(self, store: CollectionStore) -> None:
        self.event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._handle: ListenerHandle | None = store.add_change_listener(self._notify)

    def _notify(self) -> None:
        # a closed loop means nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.event.set)

    async def wait(self, timeout: float = IDLE_POLL_S) -> None:
        """Wait for a change (or ``timeout``), then re-arm."""
        try:
            async with asyncio.timeout(timeout):
                await self.event.wait()
        except TimeoutError:
            pass
        self.event.clear()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def sequence_key(value: Any) -> str:
    """The key of a remote sequence: its JSON text, as the ``sequence`` property carries it."""
    return orjson.dumps(value).decode()


def doc_flags(deleted: bool) -> DocumentFlags:
    return DocumentFlags.DELETED if deleted else DocumentFlags.NONE
