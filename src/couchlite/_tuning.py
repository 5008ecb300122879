"""Every tunable of couchlite in one place, each with the reason for its value.

Values marked "LiteCore" mirror Couchbase Lite's own (``ReplicatorTuning.hh``,
``BLIPConnection.cc``, ``Message.cc``), so that our peers behave as theirs do on the wire.
"""

from __future__ import annotations

# --- Database -------------------------------------------------------------------------------

#: Default maximum depth of a revision tree before old revisions are pruned (LiteCore: 20).
DEFAULT_MAX_REV_TREE_DEPTH = 20

#: Rows fetched per round trip when scanning the changes feed: large enough to amortise the
#: Python/SQLite boundary, small enough to keep memory flat whatever the collection's size.
CHANGES_FETCH_SIZE = 1000

#: Page cache per SQLite connection, in KiB (negative PRAGMA cache_size). 8 MiB keeps the hot
#: B-tree pages of ~100k small documents resident without growing with the database.
SQLITE_CACHE_KIB = 8192

#: WAL checkpoints (copying committed pages from the write-ahead log into the database file) run
#: on a background thread of their own, at most this often, after commits: a checkpoint is one
#: long SQLite call that releases the GIL, so it overlaps with the Python work of the next
#: batch instead of stalling the commit that happens to cross SQLite's threshold (~10 ms per
#: 4 MiB of log).
WAL_CHECKPOINT_INTERVAL_S = 0.05

#: A background checkpoint is started once this many rows were written since the last one...
WAL_CHECKPOINT_ROWS = 1000

#: ... or, for a trickle of small writes, this long after the first write since the last one.
WAL_CHECKPOINT_IDLE_S = 5.0

#: SQLite's own checkpoint-on-commit threshold (pages of log), kept as a safety net far above the
#: default 1000: it only ever runs if the background checkpoints cannot keep up (e.g. a reader
#: holding an old snapshot), so that the log cannot grow without bound.
WAL_AUTOCHECKPOINT_PAGES = 16384

#: How long a writer waits for SQLite's file lock held by another process before failing.
SQLITE_BUSY_TIMEOUT_S = 10.0

#: Longest sleep of the expiration purger between checks when no document expires sooner; it is
#: woken early whenever an earlier expiration is set.
EXPIRATION_MAX_SLEEP_S = 60.0

#: Documents written in one batch before their bodies are copied into exactly-sized buffers.
#: orjson returns small results in buffers of ~4 KiB; harmless for the few documents of an
#: ordinary transaction, but a batch of 100,000 would hold 400 MiB instead of 20 MiB.
BATCH_COMPACT_AFTER = 1000

#: Read buffer when streaming a blob into the blob store (bytes).
BLOB_CHUNK_SIZE = 64 * 1024

# --- BLIP (LiteCore values; see cbl-replication-notes.md §2) -------------------------------

#: Frame budget when the next queued message is urgent and this one is not (LiteCore).
BLIP_SMALL_FRAME_SIZE = 4096
#: Normal frame budget, header and CRC included (LiteCore ``kBigFrameSize``).
BLIP_BIG_FRAME_SIZE = 16384
#: A receiver acknowledges every this many payload bytes of one incoming message (LiteCore).
BLIP_ACK_THRESHOLD = 50_000
#: A sender stops sending a message with this many bytes unacknowledged (LiteCore).
BLIP_MAX_UNACKED_BYTES = 128_000
#: Largest properties block accepted or sent (LiteCore ``kMaxPropertiesSize``).
BLIP_MAX_PROPERTIES_SIZE = 100 * 1024
#: WebSocket frames up to this size sent during one event-loop turn are written to the socket
#: together (one system call, one TLS record for a burst of small revisions); larger ones go
#: as they are, since joining would copy them for no saving.
WS_COALESCE_MAX_FRAME = 4096
#: At most this many bytes of such frames are held before they are written (a sender that
#: queues thousands without yielding to the loop still streams them out).
WS_COALESCE_MAX_BYTES = 64 * 1024
#: Deflate level for compressed frames (LiteCore's default is 6). Level 1 is zlib-ng's quick
#: strategy: a small revision compresses in ~1.7 us (level 6: ~5-9 us) to ~15% of its size
#: (~13%), large bodies at ~350 MB/s (~45 MB/s) to ~30% (~19%): the CPU per message is what
#: limits replication of small documents, not the bytes on the wire.
BLIP_COMPRESSION_LEVEL = 1

# --- Limits against hostile peers: BLIP messages and per-connection work ----------------------

#: Largest incoming BLIP message (properties + body, after inflation), on both sides. Couchbase
#: refuses documents over 20 MiB; a ``rev`` carries one document body plus at most 100 KiB of
#: properties (BLIP_MAX_PROPERTIES_SIZE), and 1 MiB of headroom also covers JSON re-encoding
#: differences (escapes, number formats) between the peer's body and its size on our side.
#: Blobs do not count: ``getAttachment`` replies are streamed (BLIP_MAX_ATTACHMENT_SIZE).
BLIP_MAX_MESSAGE_SIZE = 21 * 1024 * 1024
#: Largest blob accepted in one streamed ``getAttachment`` reply. Sync Gateway caps blobs at
#: 20 MiB, but Couchbase Lite itself sets no limit and peer-to-peer apps sync photos and short
#: videos; the reply goes to a spool file, never to memory, so what this bounds is the disk one
#: reply can fill. Raise it for apps that attach larger media.
BLIP_MAX_ATTACHMENT_SIZE = 256 * 1024 * 1024
#: Bytes held at once in all partially received incoming messages of one connection (streamed
#: replies excluded). A LiteCore sender keeps at most 2 MiB of revs awaiting replies plus the
#: one being sent, so two or three maximum-size messages in progress is already generous; a
#: peer opening many messages each below BLIP_MAX_MESSAGE_SIZE is stopped here. Never less
#: than BLIP_MAX_MESSAGE_SIZE in effect (a single message must always fit).
BLIP_MAX_BUFFERED_BYTES = 64 * 1024 * 1024
#: Incoming requests partially received at once on one connection (single-frame messages never
#: count). LiteCore transmits at most 10 revs and 5 changes lists at a time, couchlite 90 revs;
#: 256 leaves room for any honest peer while bounding the per-message bookkeeping.
BLIP_MAX_INCOMING_MESSAGES = 256
#: Our requests awaiting their replies at once, per connection; request() waits beyond this.
#: The replicator keeps far fewer in flight (90 revs, 5 changes lists, a few blobs), and it
#: bounds how many replies we can make a peer owe us (see BLIP_MAX_OUTBOX_MESSAGES).
BLIP_MAX_OUTSTANDING_REQUESTS = 500
#: Our requests whose caller gave up waiting (timeout, cancellation) whose late replies we
#: still accept, per connection; beyond it the oldest are forgotten (a reply to one is then a
#: protocol error). Without a bound, a peer that never answers would make us remember every
#: request number we ever sent it.
BLIP_MAX_ABANDONED_REPLIES = 1000
#: Messages (requests and replies) in our out-box, sent or acknowledged only in part, before
#: the reader stops reading new requests: a peer that keeps sending requests but never reads
#: our replies is throttled through TCP instead of growing the out-box. Above what an honest
#: peer can cause: our own requests are admitted up to 200 (max_pending_messages), the replies
#: a couchlite peer can make us owe are bounded by its BLIP_MAX_OUTSTANDING_REQUESTS (500), and
#: LiteCore keeps far fewer requests outstanding. If all of them wait for ACKs the peer does
#: not send (reading would be the only way out), the connection is closed with 1008 instead.
BLIP_MAX_OUTBOX_MESSAGES = 1000
#: How long the reader waits, paused by a full out-box, without a single frame leaving before
#: it closes the connection with 1008: a peer reading nothing for this long is not slow but
#: stalled. LiteCore's heartbeat interval, so no honest peer on a live network is cut off.
BLIP_STALLED_PEER_TIMEOUT_S = 300.0

# --- Limits against hostile peers: the listener's connections and authentication -------------

#: Default ``max_connections`` of a listener: established replication connections at once; one
#: more is refused at the HTTP upgrade with 503 and ``Retry-After`` (transient: the client
#: retries). A peer-to-peer listener serves a handful of devices; an idle connection costs
#: ~180 KB, so 128 stay under 25 MB. Raise it for a hub serving a fleet.
LISTENER_MAX_CONNECTIONS = 128
#: Default ``max_pending_connections``: TCP connections still in the TLS handshake, the HTTP
#: upgrade or authentication. Counted when the socket is accepted, before any TLS work: a
#: stalled TLS handshake holds ~300 KB (asyncio's 256 KiB TLS read buffer), so 64 of them cost
#: ~20 MB however many an attacker opens. Honest handshakes take milliseconds to a second or
#: two, so 64 at once is a burst of reconnecting clients.
LISTENER_MAX_PENDING_CONNECTIONS = 64
#: When all pending slots are taken, a pending connection older than this is dropped to admit a
#: new one (the oldest first); if none is this old, the new socket is closed at once. So
#: connections that stall their handshake cannot lock everyone out for a whole handshake
#: timeout, while a flood of fresh ones cannot cut off handshakes still making progress.
LISTENER_PENDING_EVICT_AGE_S = 2.0
#: Bound from the TCP connect of an incoming connection to its complete HTTP upgrade request,
#: TLS handshake included (slowloris and silent sockets are dropped then). LiteCore clients
#: give up on their side after 15 s; an honest handshake on a working network needs well
#: under a second.
LISTENER_HANDSHAKE_TIMEOUT_S = 10.0
#: Decrypted bytes a connection may send between the end of its TLS handshake and the moment
#: the WebSocket layer takes it over (the same event-loop turn), kept until then: the client's
#: first flight, its HTTP request, is a few KB (websockets refuses more than ~8 KB of headers);
#: more closes the connection.
LISTENER_EARLY_DATA_LIMIT = 256 * 1024
#: ``Retry-After`` (seconds) sent with a 503 when the listener is full or its authentication
#: queue is: long enough for a connection to end, short enough not to look like an outage.
LISTENER_RETRY_AFTER_S = 5
#: Worker threads of a listener's own password-check executor (plain ``fn`` callbacks): never
#: asyncio's shared default executor, so that slow checks cannot starve the rest of the process.
#: Password hashes are CPU-bound, so a few threads already use the cores they can.
AUTH_MAX_CONCURRENT_CHECKS = 4
#: Password checks waiting for a worker (coroutine checks: running at once beyond the workers'
#: count); one more is answered 503 at once. With 1 s checks a waiting user is served within
#: ~(4 + 16) / 4 = 5 s, within AUTH_TIMEOUT_S and the client's 15 s connect timeout.
AUTH_MAX_QUEUED_CHECKS = 16
#: How long one password check may take (waiting for a worker included) before the peer is told
#: to come back later (503, transient for Couchbase Lite clients).
AUTH_TIMEOUT_S = 10.0
#: Delay before checking the credentials of an address with recent failures: this after the
#: first failure, doubling with each further one up to AUTH_FAILURE_MAX_DELAY_S. Applied whoever
#: the user is and whatever the password (wrong user and wrong password stay indistinguishable),
#: on the event loop (asyncio.sleep, no thread held); the waiting connection counts as pending.
AUTH_FAILURE_BASE_DELAY_S = 0.25
#: Longest such delay: slows a guesser ~16-fold at most pending slots, while a user who mistyped
#: (or shares a NAT with a guesser) waits a few seconds, well within the client's timeout.
AUTH_FAILURE_MAX_DELAY_S = 4.0
#: Failures of an address are forgotten after this long without a new one.
AUTH_FAILURE_FORGET_S = 60.0
#: Addresses whose failures are remembered at once (IPv6 ones by /64 prefix, what one host
#: gets); beyond this the one whose last failure is oldest is forgotten. ~200 bytes each.
AUTH_FAILURE_MAX_ADDRESSES = 10_000
#: Graceful part of ``stop()`` (listener and replicator): connections get this long to close
#: with a close frame; then their TCP connections are aborted, so that peers that stopped
#: reading, or are mid-handshake, cannot make stop() wait (it returns within ~2 s).
STOP_GRACE_S = 1.0
#: After the aborts, how long stop() waits for the connections' handlers and sessions to end
#: (they release what they hold within milliseconds once their sockets are gone).
STOP_HANDLERS_TIMEOUT_S = 5.0
#: Same-origin HTTP redirects a replicator follows while opening its connection (LiteCore's
#: limit); cross-origin ones are refused unless ``allow_cross_origin_redirects``.
MAX_REDIRECTS = 10
#: Repeated warnings of one kind, per connection (e.g. WebSocket text messages, which are
#: ignored): the first ones are logged...
LOG_REPEAT_BURST = 5
#: ... then at most one summary line ("N more suppressed") per this many seconds.
LOG_REPEAT_INTERVAL_S = 60.0

# --- Limits against hostile peers: replication messages, bodies and checkpoints --------------

#: Deepest nesting of arrays and objects in JSON received from a peer (bodies, deltas, changes
#: lists, checkpoints): exactly what the local API accepts (orjson's own limit, which
#: ``canonical_json`` enforces for local saves), so any document saved locally replicates and
#: nothing deeper reaches code that walks bodies recursively. It cannot be raised beyond 254.
MAX_JSON_DEPTH = 254
#: Largest checkpoint body a peer may store with ``setCheckpoint``. LiteCore's are a few dozen
#: bytes of JSON (``{"time", "local", "remote"}``), Sync Gateway's remote sequences a few more;
#: 64 KiB leaves room for any honest client while keeping a read-only listener's disk bounded
#: (with MAX_PEER_CHECKPOINTS: at most 64 MiB of checkpoints).
MAX_CHECKPOINT_BODY_SIZE = 64 * 1024
#: Longest checkpoint ID (``client`` property) accepted: LiteCore's are ``cp-`` + base64 of a
#: SHA-256 digest (47 characters), older clients' shorter.
MAX_CHECKPOINT_ID_LENGTH = 256
#: Peer checkpoints kept per database; saving one more evicts the one updated longest ago. Each
#: replicating client keeps one per collection, so a thousand covers a large fleet; an evicted
#: client only re-reads the changes feed from the start (nothing is lost).
MAX_PEER_CHECKPOINTS = 1000
#: Entries accepted in one ``changes`` or ``proposeChanges`` message. Both peers' batches are
#: 200 (LiteCore ``kDefaultChangeBatchSize``, and the ``batch`` we ask for); 25 times that
#: bounds the work and memory one message can cause.
MAX_CHANGES_PER_MESSAGE = 5000
#: Revisions requested from a peer and not yet received, per collection of a session -- answered
#: "wanted" in a ``changes`` reply (active puller) or accepted in a ``proposeChanges`` reply
#: (passive side). Only those are stored when they arrive. An honest peer keeps at most ~5
#: batches of 200 plus its revs in flight outstanding (LiteCore ~1,600); beyond this bound the
#: oldest request is forgotten (a revision that never came), so memory stays flat however many
#: revisions a peer announces without sending them.
MAX_REQUESTED_REVS = 10_000

# --- Limits against hostile peers: blobs ------------------------------------------------------

#: Blob leases (pins taken by a receiver on the blobs of a revision it is about to insert)
#: waiting at once per database; beyond this the oldest is released. The in-flight revisions
#: of all connections are far fewer (BLIP_MAX_INCOMING_MESSAGES per connection, a few blobs
#: each), so only a receiver that fetched and never inserted reaches it; a release cannot lose
#: a blob, because every insert verifies its blobs under the garbage collector's lock.
MAX_BLOB_LEASES = 10_000
#: Blobs at least this large are served to a peer from a read-only memory map of their file
#: instead of being read into memory (BLIP sends the map frame by frame without copying, so
#: serving a 200 MiB blob costs reclaimable page cache, not 200 MiB of heap), and the fsync of
#: one received runs off the event loop (it can take long enough to stall other connections).
BLOB_LARGE_SIZE = 1024 * 1024
#: ``getAttachment`` requests one receiver has in flight at once, per connection. Each streams
#: into a spool file of up to the connection's max_attachment_size, so this bounds the disk a
#: peer can make one connection fill before anything is verified (4 x 256 MiB by default);
#: blob transfers are bandwidth-bound, so more in parallel would not make them faster.
MAX_BLOB_FETCHES_IN_FLIGHT = 4

# --- Limits against hostile peers: TLS client certificate chains -----------------------------

#: Certificates accepted in one client chain for ``ListenerCertificateAuthenticator(fn)``: a
#: leaf, up to 8 intermediates (mbedTLS's ``MBEDTLS_X509_MAX_INTERMEDIATE_CA``, what Couchbase
#: Lite clients can verify themselves) and a root. Bounds the signature checks one handshake
#: can ask for, and the memory a recorded chain takes.
MAX_CLIENT_CHAIN_LENGTH = 10


# --- Heartbeat -------------------------------------------------------------------------------

#: Seconds between WebSocket pings to each peer, on both sides: LiteCore's default heartbeat
#: (notes §3.6). A peer silent for a heartbeat plus the ping timeout is taken as gone.
DEFAULT_HEARTBEAT_S = 300.0


# --- Replication engine -------------------------------------------------------------------------

#: Entries per ``changes``/``proposeChanges`` message and per changes-feed read (LiteCore).
CHANGES_BATCH_SIZE = 200
#: ``changes``/``proposeChanges`` messages awaiting replies, per direction (LiteCore: 5).
MAX_CHANGE_LISTS_IN_FLIGHT = 5
#: ``rev`` messages awaiting replies per session. LiteCore allows 10, but our throughput comes
#: from pipelining: one round trip per document is exactly what must not happen, and a
#: receiver replies only once a batch committed, so this many revisions cover the commit's
#: latency. Below the connection's 100 concurrent handlers less our changes lists (5) and a
#: few others: a peer's rev handlers (which may wait on our getAttachment replies, read by the
#: reader that waits for a free handler slot) can then never hold all of its slots.
MAX_REVS_IN_FLIGHT = 90
#: Bytes of ``rev`` bodies awaiting replies before the sender waits (LiteCore: 2 MiB).
MAX_REV_BYTES_IN_FLIGHT = 2 * 1024 * 1024
#: Bodies of one answered list read in one store call while the list waits for sender slots
#: (a list of small documents is read whole); the rest are read as slots come free. Read ahead
#: of their slots, these are held per list: MAX_CHANGE_LISTS_IN_FLIGHT lists, so at most
#: 1.25 MiB of bodies (and their deltas, each under MAX_DELTA_BODY_RATIO of its body).
REV_READ_AHEAD_BYTES = 256 * 1024
#: ``maxHistory`` we ask for, and assume when the peer names none (LiteCore rev trees: 50).
MAX_HISTORY = 50
#: Known ancestors listed per entry in a ``changes`` reply (LiteCore ``kMaxPossibleAncestors``).
MAX_POSSIBLE_ANCESTORS = 10
#: How many times one change is re-proposed after 409s naming an ancestor of it: enough for a
#: peer that moved on while our proposal was in flight, bounded so two peers cannot ping-pong.
MAX_REPROPOSALS = 2
#: Revisions inserted per transaction by the batching inserter: one commit per batch is what
#: makes receiving fast. Half a sender's revisions in flight (MAX_REVS_IN_FLIGHT), so that one
#: batch commits while the next one arrives: with a whole window per batch, sender and
#: receiver took turns, each idle while the other worked (measured: 90 -> 45 took 20,000 small
#: documents from ~2,900 to ~3,600 docs/s, both ways; 30 and 60 did less well).
INSERT_BATCH_SIZE = MAX_REVS_IN_FLIGHT // 2
#: How long the inserter waits for more revisions before committing a partial batch. Short
#: enough to be invisible in latency, long enough to gather the revs of one burst of frames.
INSERT_BATCH_DELAY_S = 0.001
#: Threads running the replication engine's store calls, for the whole process. The event loop
#: never calls the store itself (a user thread holding a long ``in_batch`` would stall every
#: connection of the process, heartbeats included); each database is served by one of these
#: threads, so a session blocked on a busy database holds one thread and the others go on.
#: Four: more than the databases a process usually replicates at once, few enough that the
#: threads' GIL hand-offs and their read connections cost nothing measurable.
STORE_THREADS = 4
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
#: How long a stopped (cancelled) session may spend saving its checkpoints before giving up.
STOP_SAVE_TIMEOUT_S = 2.0
#: How long a passive session's close waits for its pusher tasks to end after cancelling them.
PASSIVE_CLOSE_TIMEOUT_S = 5.0
#: How often per-document events and progress are handed to the façade.
EVENT_FLUSH_INTERVAL_S = 0.05
#: Longest a continuous source sleeps without re-reading its changes feed: change listeners
#: wake it at once, this is only a safety net so no wait is unbounded.
IDLE_POLL_S = 30.0
#: Upper bound for a user's (async) conflict resolver; beyond it the document is reported as
#: failed and stays conflicted (resolved again next time).
RESOLVER_TIMEOUT_S = 60.0
#: Attempts at saving a resolution when a branch changed meanwhile (``ConflictError``).
RESOLVE_ATTEMPTS = 3
#: Upper bound for any single wait on a reply or on an internal condition.
WAIT_TIMEOUT_S = 300.0
#: Bound on closing a replicator's connection (BLIP flush + WebSocket closing handshake, 5 s
#: each at most); then its TCP connection is aborted. A stop gives it ``STOP_GRACE_S`` instead.
REPLICATOR_CLOSE_TIMEOUT_S = 12.0
#: After aborting the TCP connection, how long to wait for the connection's tasks to end.
REPLICATOR_ABORT_WAIT_S = 0.5
#: LiteCore's defaults (notes §3.6): backoff capped at 300 s, one-shot replicators give up
#: after 10 attempts (9 retries), continuous ones never do.
DEFAULT_MAX_ATTEMPT_WAIT_S = 300.0
DEFAULT_ONE_SHOT_MAX_ATTEMPTS = 10
#: Databases whose store thread is remembered (``replicator.store_worker``); past it the oldest
#: is forgotten and gets a thread anew if it is replicated again: bounded memory whatever the
#: number of databases a long-lived process opens.
STORE_THREAD_ASSIGNMENTS = 1024
#: Default bound of a replicator's ``wait_for`` (api.md).
REPLICATOR_WAIT_S = 30.0
#: Bound of a replicator's ``stop()``: the connection's close is itself bounded well below this.
REPLICATOR_STOP_TIMEOUT_S = 20.0
#: Updates of what the peer has (remote revisions) held in memory before they are written out
#: in one transaction.
REMOTE_REVS_FLUSH_AFTER = 1_000
#: Remote revisions kept in memory before the cache forgets what it loaded (everything is on
#: disk by then): keeps a long or large session's memory flat.
REMOTE_REVS_MAX_CACHED = 10_000


# --- Transport and TLS --------------------------------------------------------------------------

#: Handlers a BLIP connection runs at once; LiteCore handles up to 100-200 incoming revs in
#: parallel (notes §13). Beyond this the reader stops reading, which throttles the peer.
BLIP_MAX_CONCURRENT_HANDLERS = 100
#: Messages queued in a BLIP connection's out-box before senders wait. Each message costs one
#: entry; 200 matches LiteCore's changes batch and keeps memory small when the peer stalls.
BLIP_MAX_PENDING_MESSAGES = 200
#: Bytes of large message bodies queued before senders of large messages wait. Small messages
#: (up to one frame) are bounded by the message count instead, so a queued bulk transfer never
#: delays an urgent control message behind it.
BLIP_MAX_PENDING_BYTES = 4 * 1024 * 1024
#: A message no bigger than one big frame (BLIP_BIG_FRAME_SIZE) is "small" for back-pressure.
BLIP_SMALL_MESSAGE_BYTES = 16 * 1024
#: How long a BLIP request waits for its reply by default: the peer may be slow (a big rev, a
#: busy database), but a reply that never comes must not hang a replicator forever.
BLIP_REQUEST_TIMEOUT_S = 300.0
#: How long a clean close waits for queued frames to be sent (LiteCore's close timeout, §3.6).
BLIP_CLOSE_FLUSH_TIMEOUT_S = 5.0
#: How long closing waits for cancelled handlers and for the channel's closing handshake.
BLIP_CLOSE_TASKS_TIMEOUT_S = 5.0
#: Most uncompressed bytes one outgoing frame may carry, as a multiple of the frame budget.
#: Without a cap a run of zeros would put a whole multi-megabyte body into one 16 KB frame,
#: which the peer must then inflate in one go; 8x keeps frames close to what LiteCore itself
#: produces (~2x).
BLIP_MAX_INPUT_PER_FRAME_FACTOR = 8
#: Hard ceiling on the inflated size of one incoming frame (decompression-bomb guard, applied
#: even when no max_message_size is set). A LiteCore sender may legitimately pack a highly
#: compressible body into one frame, so this is generous: one 1 MiB WebSocket message at
#: deflate's maximum ratio (~1032:1) would otherwise inflate to about 1 GiB.
BLIP_MAX_INFLATED_FRAME_SIZE = 64 * 1024 * 1024
#: Messages an in-memory loopback end buffers before its peer's ``send`` waits: about what a
#: WebSocket holds in flight (websockets' receive queue is 16 messages, plus socket buffers).
LOOPBACK_QUEUE_MESSAGES = 32
#: LiteCore refuses incoming WebSocket messages over 1 MiB (notes §1). BLIP frames are at most
#: 16 KiB, so anything near this is a broken or hostile peer; the margin tolerates a peer whose
#: own limit counts only the payload it considers "the message".
WS_MAX_INCOMING_MESSAGE = (1 << 20) + 16 * 1024
#: LiteCore's connect timeout (``kConnectTimeoutSecs``, notes §3.2).
WS_OPEN_TIMEOUT_S = 15.0
#: LiteCore's pong timeout (``kPongTimeout``, notes §3.6): how long a ping waits for its pong,
#: and the most a heartbeat ever waits, however long the heartbeat interval.
WS_PONG_TIMEOUT_S = 20.0
#: LiteCore's close-handshake timeout (notes §3.6).
WS_CLOSE_TIMEOUT_S = 5.0
#: Incoming messages websockets buffers before it stops reading the socket: 16 BLIP frames
#: (at most 256 KiB), enough to keep a 128 KB ACK window busy in both directions.
WS_MAX_QUEUE = 16
#: Outgoing bytes buffered before ``send`` waits; a few big frames, so the writer never idles
#: while the kernel drains the socket, and memory stays flat when the peer stops reading.
WS_WRITE_LIMIT = 64 * 1024
#: Client certificate chains a listener's TLS context remembers (by leaf) between the
#: handshake and the upgrade request: enough for the handshakes in flight at once.
TLS_MAX_RECORDED_CHAINS = 256
#: Bound on closing one listener session (its own work is bounded; this guards against a
#: stuck one).
LISTENER_SESSION_CLOSE_TIMEOUT_S = 10.0
#: Ports tried when a listener binds port 0 on several interfaces and the port picked on the
#: first is taken on another.
LISTENER_BIND_ATTEMPTS = 5
#: How long the synchronous listener waits for its start (key generation, binding): bounded,
#: so a thread calling ``start()`` never hangs on a stuck event loop.
LISTENER_SYNC_START_TIMEOUT_S = 60.0
#: How long the synchronous listener waits for its stop, for the same reason.
LISTENER_SYNC_STOP_TIMEOUT_S = 60.0


# --- Storage and database -----------------------------------------------------------------------

#: Rows per multi-row ``INSERT`` of a commit: one statement binds its chunk in one C loop, about
#: a third cheaper per row than ``executemany``; 128 x 7 columns stays under SQLite's oldest
#: limit of 999 parameters per statement.
INSERT_CHUNK_ROWS = 128

#: Document IDs per ``IN (...)`` list of a bulk look-up: few statements for a replicator's batch,
#: far under SQLite's parameter limit.
SQLITE_IN_LIST_IDS = 500

#: Bodies under this size (bytes) are copied into exactly-sized buffers once a batch holds
#: ``BATCH_COMPACT_AFTER`` documents (orjson's output keeps ~4 KiB of capacity); larger bodies
#: already fill their buffers.
BATCH_COMPACT_BODY_BYTES = 2048


# --- Discovery (DNS-SD over mDNS) and certificate pins ------------------------------------------

#: Longest ``key=value`` string of a TXT record: DNS stores each in one length-prefixed string,
#: so 255 bytes is the format's own limit; a longer one from the network is ignored.
DISCOVERY_TXT_MAX_ENTRY = 255

#: Largest whole TXT record we build or parse: RFC 6763 §6.2 advises keeping it under 1300
#: bytes so the record fits in one packet with its PTR/SRV/A records; ours is ~250 bytes.
DISCOVERY_TXT_MAX_RECORD = 1300

#: TXT entries parsed per record: ours has 8; more from the network are ignored.
DISCOVERY_TXT_MAX_ENTRIES = 32

#: Collections listed in ``cols`` (the whole value is bounded by DISCOVERY_TXT_MAX_ENTRY too).
DISCOVERY_MAX_COLLECTIONS = 64

#: Addresses kept per discovered peer: a host has a handful; any peer on the network could
#: announce thousands to make every browser hold them.
DISCOVERY_MAX_ADDRESSES = 16

#: Peers a browser tracks at once: anyone on the network can announce services, so without a
#: bound a flood of fake announcements would grow every browser's memory. New peers beyond it
#: are ignored until one is removed.
DISCOVERY_MAX_PEERS = 256

#: Events queued for a browser's consumer: a consumer that stops reading must not let a flood
#: of announcements grow the queue; the oldest events are dropped (the peer table stays right).
DISCOVERY_MAX_QUEUED_EVENTS = 1024

#: Bound on one service-info request (the SRV/TXT/A answers of an announced peer), in seconds.
DISCOVERY_RESOLVE_TIMEOUT_S = 3.0

#: Service-info requests in flight at once per browser: each is a task with its own timer.
DISCOVERY_MAX_RESOLVING = 16

#: Bound on registering a listener's services at start (zeroconf probes three times, 250 ms
#: apart, then announces): a stuck network must fail the start, not hang it.
DISCOVERY_REGISTER_TIMEOUT_S = 10.0

#: Bound on unregistering at stop (goodbye packets), so that stop() stays ~2 s.
DISCOVERY_UNREGISTER_TIMEOUT_S = 2.0

#: Certificate pins (trust on first use) kept per database: each is one small row, and only the
#: peers a user replicates with add one; past the bound a new pin is refused (never an old one
#: evicted, which would silently re-trust a peer).
MAX_CERTIFICATE_PINS = 10_000


# --- Queries ------------------------------------------------------------------------------------

#: Longest SQL++ text accepted (characters): real queries are a few hundred; the bound keeps a
#: pasted or generated monster from costing the parser and SQLite unbounded work.
QUERY_MAX_LENGTH = 65_536

#: Deepest nesting of expressions: the parser recurses once per level, and Python's stack (and
#: SQLite's own expression-depth limit of 1000) must never be what stops a query.
QUERY_MAX_DEPTH = 200

#: Longest a regular expression may run on one value (REGEXP_* functions), in seconds: a
#: pattern that backtracks without end ("(a+)+b") then gives null instead of holding the query,
#: or the writer when the function sits in an index, for minutes.
QUERY_REGEX_TIMEOUT_S = 0.05

#: Distinct paths, LIKE patterns and regular expressions compiled and kept per process: queries
#: reuse a handful; the bound stops a stream of generated ones from growing memory.
QUERY_COMPILED_CACHE = 512

#: A live query waits this long after a commit before running again, so that a burst of
#: commits costs one run; short enough to deliver well within 100 ms of the commit.
LIVE_QUERY_DEBOUNCE_S = 0.01

#: ... and runs at most this often, so that a collection taking thousands of saves a second
#: costs its live queries at most ~40 runs a second ...
LIVE_QUERY_MIN_INTERVAL_S = 0.025

#: ... and rests at least this many times as long as its last run took: a query that scans
#: a large collection takes at most 1/(1 + factor) of the time (and of the GIL) from the writers.
LIVE_QUERY_IDLE_FACTOR = 5.0

#: A live query's idle thread wakes this often to check that it is still wanted (bounded wait).
LIVE_QUERY_IDLE_CHECK_S = 1.0

#: Listeners of one query: each is called on every change; the bound stops a leak in a caller
#: from growing the cost of every commit.
LIVE_QUERY_MAX_LISTENERS = 1024

# Full-text search: what one MATCH query, and the text of one indexed value, may cost.

#: characters in one MATCH string; a search box never needs more, and parsing is linear in it
FTS_MAX_QUERY_LENGTH = 4096

#: words searched for by one query, each a doclist FTS reads and merges for every query run
FTS_MAX_QUERY_TERMS = 64

#: nested parentheses in one query; the parser recurses once per level
FTS_MAX_QUERY_NESTING = 32

#: levels of the expression tree FTS builds; SQLite rejects deeper ones (SQLITE_FTS3_MAX_EXPR_DEPTH)
FTS_MAX_QUERY_TREE_DEPTH = 12

#: largest ``NEAR/n``; any larger n means the same for text of realistic length
FTS_MAX_NEAR_DISTANCE = 1_000_000

#: longer words are stored unstemmed: no language has such words, and stemming cost grows with them
FTS_MAX_STEMMED_LENGTH = 64

#: (algorithm, word) stems remembered; text repeats its words, and stemming is the costly step
FTS_STEM_CACHE_SIZE = 16384

#: entries of the other caches: characters' case folding, and languages' settings
FTS_SMALL_CACHE_SIZE = 4096

# --- The couchlite command (couchlite.cli) ---------------------------------------------------

#: Documents saved per transaction by ``couchlite import``: large enough that the commit cost
#: (one fsync, one hand-off to the writer thread) is spread thin, small enough that a bad line
#: or an interrupt loses little work and memory stays flat whatever the file's size.
CLI_IMPORT_BATCH_DOCS = 1000

#: Bytes of JSON ``couchlite import`` holds in one batch, whatever ``--batch-size`` says: a
#: batch is saved as soon as its lines reach this much, so a file of large documents (each up
#: to ``CLI_IMPORT_MAX_LINE_BYTES``) never keeps a thousand of them in memory at once.
CLI_IMPORT_BATCH_BYTES = 32 * 1024 * 1024

#: Longest line ``couchlite import`` reads, in bytes: a document's JSON larger than a BLIP
#: message (``BLIP_MAX_MESSAGE_SIZE``, 21 MiB) could not be replicated anyway, and a file
#: without newlines must not be read whole into memory.
CLI_IMPORT_MAX_LINE_BYTES = BLIP_MAX_MESSAGE_SIZE

#: Redraws per second of a progress bar on a terminal: smooth enough to watch, cheap enough
#: that drawing never competes with the transfer itself.
CLI_PROGRESS_REFRESH_PER_S = 8

#: Without a terminal, progress is one plain line at most this often: a log gets a heartbeat,
#: not a flood.
CLI_PROGRESS_LINE_INTERVAL_S = 1.0

#: How often ``serve`` and ``sync`` look at the listener's or replicator's status to show it:
#: live enough for a person, negligible work for the process.
CLI_STATUS_POLL_S = 0.25

#: Default ``--timeout`` of ``couchlite peers`` and of ``sync --discover``: a few mDNS query
#: rounds, enough for peers on the local network to answer.
CLI_DISCOVERY_TIMEOUT_S = 3.0
