"""Queries and indexes: point and range lookups with and without an index, index creation,
live-query latency and cost, full-text search.

Baseline, in the same run: hand-written SQLite SQL doing the same lookups on the same JSON
bodies in a plain table (``json_extract`` expression indexes, prepared statements), i.e. what
an application would write by hand against ``sqlite3``.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson

from couchlite import (
    Database,
    DatabaseConfiguration,
    FullTextIndexConfiguration,
    MutableDocument,
    QueryChange,
    ValueIndexConfiguration,
)

DOCS = 100_000
POINT_TARGET_QPS = 20_000
RANGE_TARGET_QPS = 2_000
OVERHEAD_TARGET = 2.0
LIVE_RATE = 1000  # saves per second while the live query's latency is measured
HOTELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "query" / "travel"


def body(i: int, rng: random.Random) -> dict[str, object]:
    return {
        "type": "customer",
        "customer": f"c-{i:07d}",
        "score": i,
        "city": f"city-{rng.randrange(1000):03d}",
        "age": rng.randrange(18, 90),
    }


def timed_rate(fn: object, seconds: float, min_calls: int = 20) -> float:
    """Calls of ``fn(k)`` per second over about ``seconds``."""
    assert callable(fn)
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while calls < min_calls or time.perf_counter() < deadline:
        fn(calls)
        calls += 1
    return calls / (time.perf_counter() - started)


def baseline(folder: Path, n: int, seconds: float) -> dict[str, float]:
    rng = random.Random(7)
    conn = sqlite3.connect(folder / "plain.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, body BLOB)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO docs VALUES (?, ?)",
        ((f"d{i:07d}", orjson.dumps(body(i, rng)).decode()) for i in range(n)),
    )
    conn.execute("COMMIT")
    started = time.perf_counter()
    conn.execute("CREATE INDEX by_customer ON docs (json_extract(body, '$.customer'))")
    conn.execute("CREATE INDEX by_score ON docs (json_extract(body, '$.score'))")
    index_s = time.perf_counter() - started
    point_sql = (
        "SELECT id, json_extract(body, '$.score') FROM docs "
        "WHERE json_extract(body, '$.customer') = ?"
    )
    range_sql = (
        "SELECT id, json_extract(body, '$.score') FROM docs "
        "WHERE json_extract(body, '$.score') BETWEEN ? AND ?"
    )

    def point(k: int) -> None:
        rows = conn.execute(point_sql, (f"c-{(k * 7919) % n:07d}",)).fetchall()
        assert len(rows) == 1

    def ranged(k: int) -> None:
        low = (k * 7919) % (n - 100)
        assert len(conn.execute(range_sql, (low, low + 99)).fetchall()) == 100

    figures = {
        "index": index_s / 2,
        "point": timed_rate(point, seconds),
        "range": timed_rate(ranged, seconds),
    }
    conn.close()
    return figures


def couchlite_lookups(db: Database, n: int, seconds: float) -> dict[str, float]:
    col = db.default_collection()
    point = db.create_query("SELECT meta().id, score FROM _ WHERE customer = $c")
    ranged = db.create_query("SELECT meta().id, score FROM _ WHERE score BETWEEN $lo AND $hi")

    def run_point(k: int) -> None:
        point.parameters = {"c": f"c-{(k * 7919) % n:07d}"}
        rows = [(r[0], r[1]) for r in point.execute()]
        assert len(rows) == 1

    def run_range(k: int) -> None:
        low = (k * 7919) % (n - 100)
        ranged.parameters = {"lo": low, "hi": low + 99}
        rows = [(r[0], r[1]) for r in ranged.execute()]
        assert len(rows) == 100

    figures = {
        "point_scan": timed_rate(run_point, seconds / 4, min_calls=3),
        "range_scan": timed_rate(run_range, seconds / 4, min_calls=3),
    }
    started = time.perf_counter()
    col.create_index("byCustomer", ValueIndexConfiguration(["customer"]))
    col.create_index("byScore", ValueIndexConfiguration(["score"]))
    figures["index"] = (time.perf_counter() - started) / 2
    point.parameters = {"c": "c-0000001"}
    assert "USING INDEX" in point.explain()
    figures["point"] = timed_rate(run_point, seconds)
    figures["range"] = timed_rate(run_range, seconds)
    return figures


def writer_rate(db: Database, count: int, prefix: str) -> float:
    col = db.create_collection("events")
    started = time.perf_counter()
    for i in range(count):
        col.save(MutableDocument(f"{prefix}-{i}", {"i": i, "kind": "event"}))
    return count / (time.perf_counter() - started)


def live_query(db: Database, quick: bool) -> None:
    count = 300 if quick else 3000
    events = db.create_collection("events")
    events.create_index("byKind", ValueIndexConfiguration(["kind"]))
    plain = writer_rate(db, count, "plain")
    query = db.create_query("SELECT COUNT(*) AS c FROM events WHERE kind = 'event'")
    arrivals: list[tuple[float, int]] = []
    first = threading.Event()

    def listener(change: QueryChange) -> None:
        assert change.results is not None
        arrivals.append((time.perf_counter(), next(iter(change.results))["c"]))
        first.set()

    token = query.add_change_listener(listener)
    first.wait(10)
    live = writer_rate(db, count, "live")
    # latency at a steady 1,000 saves/s: commit time of each document against the first
    # delivery whose count includes it
    base = events.count
    arrivals.clear()
    committed: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        due = started + i / LIVE_RATE
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        events.save(MutableDocument(f"paced-{i}", {"i": i, "kind": "event"}))
        committed.append(time.perf_counter())
    deadline = time.perf_counter() + 5
    while (not arrivals or arrivals[-1][1] < base + count) and time.perf_counter() < deadline:
        time.sleep(0.01)
    token.remove()
    latencies = []
    j = 0
    for i, at in enumerate(committed):
        while j < len(arrivals) and arrivals[j][1] < base + i + 1:
            j += 1
        if j < len(arrivals):
            latencies.append(arrivals[j][0] - at)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(
        f"live query at {LIVE_RATE} saves/s: delivered within {p50:.1f} ms (median), "
        f"{p95:.1f} ms (p95) of the commit, {len(arrivals)} deliveries for {count} saves "
        f"(target: within 100 ms)"
    )
    print(
        f"writer with a live query listening: {live:,.0f} saves/s vs {plain:,.0f} without "
        f"({live / plain:.2f}x; target >= 0.80x)"
    )


def full_text(folder: Path) -> None:
    with Database("hotels", DatabaseConfiguration(directory=folder)) as db:
        col = db.create_collection("hotels", "travel")
        with db.in_batch():
            for line in (HOTELS / "travel.hotels.jsonl").read_bytes().splitlines():
                doc = orjson.loads(line)
                col.save(MutableDocument(doc.pop("_id"), doc))
        started = time.perf_counter()
        col.create_index("hotelDesc", FullTextIndexConfiguration(["description"], language="en"))
        index_ms = (time.perf_counter() - started) * 1000
        query = db.create_query(
            "SELECT meta().id, name, RANK(hotelDesc) AS r FROM travel.hotels "
            "WHERE MATCH(hotelDesc, $terms) ORDER BY RANK(hotelDesc) DESC, meta().id LIMIT 10"
        )
        query.parameters = {"terms": "pool OR beach"}
        top = query.execute().all_results()
        rate = timed_rate(lambda _k: query.execute(), 1.0)
        print(
            f"full-text search of {col.count} hotel descriptions for 'pool OR beach': "
            f"{rate:,.0f} queries/s (index built in {index_ms:.0f} ms); top {len(top)}:"
        )
        for r in top:
            print(f"    {r['r']:.4f}  {r['id']:<10} {r['name']}")


def main(quick: bool = False) -> None:
    n = 2000 if quick else DOCS
    seconds = 0.3 if quick else 2.0
    with tempfile.TemporaryDirectory(prefix="couchlite-bench-query-") as tmp:
        folder = Path(tmp)
        base = baseline(folder, n, seconds)
        with Database("q", DatabaseConfiguration(directory=folder)) as db:
            rng = random.Random(7)
            col = db.default_collection()
            for start in range(0, n, 5000):
                with db.in_batch():
                    for i in range(start, min(n, start + 5000)):
                        col.save(MutableDocument(f"d{i:07d}", body(i, rng)))
            ours = couchlite_lookups(db, n, seconds)
            print(f"{n:,} documents; baseline: hand-written sqlite3 SQL on the same bodies")
            print(
                f"index creation: {ours['index']:.2f} s per index "
                f"(sqlite3 json_extract index: {base['index']:.2f} s)"
            )
            for kind, target in (("point", POINT_TARGET_QPS), ("range", RANGE_TARGET_QPS)):
                overhead = base[kind] / ours[kind]
                print(
                    f"{kind} lookup, indexed: {ours[kind]:,.0f} queries/s (target "
                    f"{target:,}); sqlite3 {base[kind]:,.0f} queries/s; overhead "
                    f"{overhead:.2f}x (target <= {OVERHEAD_TARGET}x); without an index: "
                    f"{ours[kind + '_scan']:,.1f} queries/s"
                )
            live_query(db, quick)
        full_text(folder)


if __name__ == "__main__":
    main()
