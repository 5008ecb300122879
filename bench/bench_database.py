"""The embedded database: batched insert, get by ID, changes-feed scan, memory.

Every figure is printed next to a baseline measured in the same run on the same machine: plain
``sqlite3`` ``executemany`` of the same JSON bodies into a 4-column table (same batch size, same
WAL settings), and primary-key reads of them. Both sides run ``ROUNDS`` times, alternately, each
round on a new file, and the best round of each side is reported (as ``timeit`` does: on a shared
machine, noise only ever slows a round down); every round's insert figures are printed too.
"""

from __future__ import annotations

import gc
import random
import resource
import sqlite3
import string
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from couchlite import Database, DatabaseConfiguration, MutableDocument

BATCH = 1000
#: the targets: native Couchbase Lite C 3.2's batched insert on this kind of machine, and reads
#: by ID within this ratio of plain sqlite3's primary-key read
INSERT_TARGET = 125_000
READ_TARGET_RATIO = 0.8
#: rounds on each side, alternating baseline and couchlite; the best of each is reported
#: (the machines this runs on are shared: a round can be slowed by others, never sped up)
ROUNDS = 3


def make_body(i: int, rng: random.Random) -> dict[str, object]:
    """About 200 bytes of JSON, like a small app record."""
    return {
        "type": "order",
        "customer": f"customer-{i % 5000:05d}",
        "items": [{"sku": f"sku-{rng.randrange(1000):04d}", "qty": rng.randrange(1, 5)}],
        "total": round(rng.uniform(1, 500), 2),
        "paid": bool(i % 2),
        "note": "".join(rng.choices(string.ascii_lowercase + " ", k=60)),
    }


def bodies(n: int) -> Iterator[tuple[str, dict[str, object]]]:
    rng = random.Random(42)
    for i in range(n):
        yield f"doc-{i:08d}", make_body(i, rng)


def rss_mib() -> float:
    """Current resident memory (Linux), else the peak as the OS reports it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def baseline(directory: Path, docs: list[tuple[str, bytes]]) -> tuple[float, float]:
    conn = sqlite3.connect(directory / "baseline.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, rev TEXT, seq INTEGER, body BLOB)")
    started = time.perf_counter()
    for start in range(0, len(docs), BATCH):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO docs (id, rev, seq, body) VALUES (?, ?, ?, ?)",
            [
                (doc_id, "1-0000000000000000000000000000000000000000", start + i, body)
                for i, (doc_id, body) in enumerate(docs[start : start + BATCH])
            ],
        )
        conn.execute("COMMIT")
    insert_s = time.perf_counter() - started
    started = time.perf_counter()
    for doc_id, _ in docs:
        conn.execute("SELECT rev, seq, body FROM docs WHERE id = ?", (doc_id,)).fetchone()
    read_s = time.perf_counter() - started
    conn.close()
    return rate(len(docs), insert_s), rate(len(docs), read_s)


@dataclass
class Round:
    insert: float
    read: float
    scan: float
    #: RSS before inserting, after the first tenth of the documents, and at the end (MiB)
    rss: tuple[float, float, float]
    tenth: int


def couchlite_round(directory: Path, n: int) -> Round:
    db = Database("bench", DatabaseConfiguration(directory=directory))
    col = db.default_collection()
    # bodies are generated batch by batch, so the process holds no more than one batch
    # of them: RSS growth then measures couchlite alone
    generator = bodies(n)
    rss_start = rss_mib()
    rss_tenth = 0.0
    tenth = 0
    elapsed = 0.0
    for start in range(0, n, BATCH):
        batch = [next(generator) for _ in range(min(BATCH, n - start))]
        started = time.perf_counter()
        with db.in_batch():
            for doc_id, body in batch:
                col.save(MutableDocument(doc_id, body))
        elapsed += time.perf_counter() - started
        if not rss_tenth and start + BATCH >= n // 10:
            rss_tenth, tenth = rss_mib(), start + BATCH
    insert = rate(n, elapsed)
    rss_end = rss_mib()

    ids = [f"doc-{i:08d}" for i in range(n)]
    started = time.perf_counter()
    for doc_id in ids:
        doc = col.get(doc_id)
        assert doc is not None and doc["type"] == "order"
    read = rate(n, time.perf_counter() - started)

    started = time.perf_counter()
    rows = sum(1 for _ in col.changes())
    scan = rate(rows, time.perf_counter() - started)
    assert rows == n and col.count == n
    db.close()
    return Round(insert, read, scan, (rss_start, rss_tenth, rss_end), tenth)


def main(quick: bool = False) -> None:
    n = 5_000 if quick else 100_000
    rounds = 1 if quick else ROUNDS
    print(
        f"{n:,} documents, {sum(len(b) for _, b in encoded_bodies(n)) / n:.0f} bytes of JSON "
        f"each, batches of {BATCH:,}; best of {rounds} interleaved round(s) on each side"
    )
    base_inserts: list[float] = []
    base_reads: list[float] = []
    ours: list[Round] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="couchlite-bench-") as tmp:
            encoded = encoded_bodies(n)
            base_insert, base_read = baseline(Path(tmp), encoded)
            base_inserts.append(base_insert)
            base_reads.append(base_read)
            del encoded
            gc.collect()
            ours.append(couchlite_round(Path(tmp) / "couchlite", n))
            gc.collect()

    insert, base_insert = max(r.insert for r in ours), max(base_inserts)
    read, base_read = max(r.read for r in ours), max(base_reads)
    scan = max(r.scan for r in ours)
    print(f"{'':32}{'couchlite':>14}{'sqlite3 baseline':>18}{'ratio':>8}   target")
    print(
        f"{'batched insert (docs/s)':32}{insert:14,.0f}{base_insert:18,.0f}"
        f"{insert / base_insert:8.0%}   >= {INSERT_TARGET:,} (native C)"
    )
    print(
        f"{'get by ID + a property (docs/s)':32}{read:14,.0f}{base_read:18,.0f}"
        f"{read / base_read:8.0%}   >= {READ_TARGET_RATIO:.0%} of baseline"
    )
    print(f"{'changes-feed scan (rows/s)':32}{scan:14,.0f}{'':18}{'':8}   >= 500,000")
    print(
        "every round, couchlite/baseline insert: "
        + ", ".join(f"{r.insert:,.0f}/{b:,.0f}" for r, b in zip(ours, base_inserts, strict=True))
    )
    first = ours[0]
    rss_start, rss_tenth, rss_end = first.rss
    print(
        f"RSS: {rss_start:.0f} MiB before inserting, {rss_tenth:.0f} MiB after "
        f"{first.tenth:,} documents, {rss_end:.0f} MiB after {n:,} (growth since then: "
        f"{rss_end - rss_tenth:+.0f} MiB; first round)"
    )


def encoded_bodies(n: int) -> list[tuple[str, bytes]]:
    # copied into exact buffers: orjson's own results keep ~4 KiB each
    return [(doc_id, bytes(memoryview(orjson.dumps(body)))) for doc_id, body in bodies(n)]


if __name__ == "__main__":
    main()
