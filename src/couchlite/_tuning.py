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
#: Deflate level for compressed frames (LiteCore default).
BLIP_COMPRESSION_LEVEL = 6
