"""Peer-to-peer replication between two processes over loopback: push, pull, a big blob.

The passive peer (``bench/replication_peer.py``) runs in a subprocess; this process runs the
replicator. For ``ws://`` and ``wss://``: a one-shot push of N small documents (~200 bytes) into
an empty peer, then a one-shot pull of them into an empty database; the same over ``ws://`` with
ten times as many documents, timing each tenth (a database that grows must not slow down); a
10 MB blob pushed over ``ws://``; one replicator pushing into a listener, then several at once
into one listener (their aggregate rate). Reported next to native Couchbase Lite C 3.2 on this
kind of machine (a Release build, its replicator against LiteCore's passive one: about 12,000
documents per second push and 16,500 pull at best), and with the peak memory of each side at
both sizes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.bench_database import bodies
from bench.replication_peer import peak_rss_mib
from couchlite import (
    Blob,
    Database,
    DatabaseConfiguration,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpoint,
)

#: how long one replication of the benchmark may take, and how often a timed one is polled
REPLICATION_TIMEOUT_S = 900
POLL_S = 0.02
#: the size of the long run (the docs/s of its last tenth is compared with its first tenth's)
LONG_RUN_DOCS = 200_000
#: replicators pushing at once into one listener, and the documents each pushes
MANY_REPLICATORS = 8
MANY_DOCS = 5_000

#: native Couchbase Lite C 3.2's best figures on this kind of machine (push, pull)
NATIVE_PUSH_DOCS_PER_S = 12_000
NATIVE_PULL_DOCS_PER_S = 16_500


class Peer:
    def __init__(self, directory: Path, tls: bool) -> None:
        args = [sys.executable, "-m", "bench.replication_peer", str(directory)]
        if tls:
            args.append("--tls")
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root, env=env
        )
        assert self.proc.stdout is not None
        hello = orjson.loads(self.proc.stdout.readline())
        self.port: int = hello["port"]
        self.cert_pem: str | None = hello["cert_pem"]
        self.tls = tls

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/server"

    def close(self) -> None:
        try:
            self.ask("quit")
        finally:
            self.proc.wait(60)
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()


def replicate(peer: Peer, db: Database, kind: ReplicatorType) -> float:
    """Run one one-shot replication to its end; its duration in seconds."""
    return replicate_timed(peer, db, kind, 0)[0]


def replicate_timed(
    peer: Peer, db: Database, kind: ReplicatorType, n: int
) -> tuple[float, list[float]]:
    """:func:`replicate`, and (when ``n`` is given) the seconds since the start at which each
    tenth of ``n`` documents was completed, read off the status every ``POLL_S``."""
    repl = Replicator(_config(peer, db, kind))
    marks: list[float] = []
    started = time.perf_counter()
    repl.start()
    if n:
        deadline = started + REPLICATION_TIMEOUT_S
        while repl.status.activity is not ReplicatorActivityLevel.STOPPED:
            if time.perf_counter() > deadline:
                repl.stop()
                raise RuntimeError("replication did not finish in time")
            done = repl.status.progress.completed
            while len(marks) < 10 and done >= n * (len(marks) + 1) // 10:
                marks.append(time.perf_counter() - started)
            time.sleep(POLL_S)
    status = repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=REPLICATION_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    if status.error is not None:
        raise RuntimeError(f"replication failed: {status.error!r}")
    while n and len(marks) < 10:
        marks.append(elapsed)  # the last tenth completed between the last poll and the end
    return elapsed, marks


def _config(peer: Peer, db: Database, kind: ReplicatorType) -> ReplicatorConfiguration:
    config = ReplicatorConfiguration(target=UrlEndpoint(peer.url()))
    config.add_collection(db.default_collection())
    config.replicator_type = kind
    if peer.cert_pem:
        config.pinned_server_certificate = peer.cert_pem.encode()
    return config


def tenths_ratio(marks: list[float], n: int) -> tuple[float, float]:
    """docs/s of the first and of the last tenth of a run (a tenth never counts as shorter
    than the status poll that timed it)."""
    first = n / 10 / max(marks[0], POLL_S)
    last = n / 10 / max(marks[9] - marks[8], POLL_S)
    return first, last


def fill(db: Database, n: int, prefix: str = "doc-") -> None:
    col = db.default_collection()
    generator = bodies(n)
    for start in range(0, n, 1000):
        with db.in_batch():
            for _ in range(min(1000, n - start)):
                doc_id, body = next(generator)
                col.save(MutableDocument(prefix + doc_id.removeprefix("doc-"), body))


def rss_mib() -> float:
    return peak_rss_mib()


def reset_peak_rss() -> None:
    """Forget the peak so far (Linux): the benchmarks before this one ran in this process."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def run_docs(tmp: Path, n: int, tls: bool, tenths: bool = False) -> dict[str, Any]:
    scheme = "wss" if tls else "ws"
    reset_peak_rss()
    source = Database(f"source-{scheme}-{n}", DatabaseConfiguration(directory=tmp))
    fill(source, n)
    peer = Peer(tmp / f"peer-{scheme}-{n}", tls)
    watched = n if tenths else 0
    try:
        push_s, push_marks = replicate_timed(peer, source, ReplicatorType.PUSH, watched)
        assert int(peer.ask("count")) == n
        sink = Database(f"sink-{scheme}-{n}", DatabaseConfiguration(directory=tmp))
        pull_s, pull_marks = replicate_timed(peer, sink, ReplicatorType.PULL, watched)
        assert sink.default_collection().count == n
        sink.close()
        server_rss = float(peer.ask("rss"))
    finally:
        peer.close()
        source.close()
    return {
        "push": n / push_s,
        "pull": n / pull_s,
        "push_tenths": push_marks,
        "pull_tenths": pull_marks,
        "server_rss": server_rss,
        "client_rss": rss_mib(),
    }


def run_many(tmp: Path, replicators: int, n: int) -> tuple[float, float]:
    """docs/s of one replicator pushing ``n`` documents into a listener, then the aggregate of
    ``replicators`` of them (each its own database, ``n`` documents each) pushing into another
    listener at once; all of them in this process, the listeners in another."""
    sources = []
    for j in range(replicators):
        db = Database(f"many-{j}", DatabaseConfiguration(directory=tmp))
        fill(db, n, prefix=f"r{j}-")
        sources.append(db)
    try:
        peer = Peer(tmp / "peer-one", False)
        try:
            single = n / replicate(peer, sources[0], ReplicatorType.PUSH)
        finally:
            peer.close()
        peer = Peer(tmp / "peer-many", False)
        try:
            repls = [Replicator(_config(peer, db, ReplicatorType.PUSH)) for db in sources]
            started = time.perf_counter()
            for repl in repls:
                repl.start()
            for repl in repls:
                status = repl.wait_for(
                    ReplicatorActivityLevel.STOPPED, timeout=REPLICATION_TIMEOUT_S
                )
                if status.error is not None:
                    raise RuntimeError(f"replication failed: {status.error!r}")
            elapsed = time.perf_counter() - started
            assert int(peer.ask("count")) == replicators * n
        finally:
            peer.close()
    finally:
        for db in sources:
            db.close()
    return single, replicators * n / elapsed


def run_blob(tmp: Path, size: int) -> float:
    db = Database("blob-source", DatabaseConfiguration(directory=tmp))
    data = os.urandom(size)
    db.default_collection().save(
        MutableDocument("big", {"f": Blob("application/octet-stream", data)})
    )
    peer = Peer(tmp / "peer-blob", False)
    try:
        seconds = replicate(peer, db, ReplicatorType.PUSH)
    finally:
        peer.close()
        db.close()
    return size / seconds / 1e6


def main(quick: bool = False) -> None:
    n = 1_000 if quick else 20_000
    long_n = 2_000 if quick else LONG_RUN_DOCS
    many, many_n = (2, 200) if quick else (MANY_REPLICATORS, MANY_DOCS)
    blob_size = 1_000_000 if quick else 10_000_000
    print(f"{n:,} documents of ~180 bytes, one-shot, peer in another process, 127.0.0.1")
    reset_peak_rss()
    with tempfile.TemporaryDirectory(prefix="couchlite-bench-repl-") as tmp_name:
        tmp = Path(tmp_name)
        results = {}
        for tls in (False, True):
            results["wss://" if tls else "ws://"] = run_docs(tmp, n, tls)
        long = run_docs(tmp, long_n, False, tenths=True)
        blob_mbs = run_blob(tmp, blob_size)
        single, aggregate = run_many(tmp, many, many_n)
    native = f"vs native C ({NATIVE_PUSH_DOCS_PER_S:,} / {NATIVE_PULL_DOCS_PER_S:,})"
    print(f"{'':24}{'push docs/s':>14}{'pull docs/s':>14}{native:>30}")
    for scheme, r in [*results.items(), (f"ws:// {long_n:,} docs", long)]:
        ratio = (
            f"{r['push'] / NATIVE_PUSH_DOCS_PER_S:.2f}x / {r['pull'] / NATIVE_PULL_DOCS_PER_S:.2f}x"
        )
        print(f"{scheme:24}{r['push']:14,.0f}{r['pull']:14,.0f}{ratio:>30}")
    ws, wss = results["ws://"], results["wss://"]
    print(
        f"wss:// at {wss['push'] / ws['push']:.2f}x (push) and {wss['pull'] / ws['pull']:.2f}x "
        "(pull) of ws:// (target >= 0.8x)"
    )
    for kind in ("push", "pull"):
        first, last = tenths_ratio(long[f"{kind}_tenths"], long_n)
        what = "from a full database" if kind == "push" else "into an empty database"
        print(
            f"{long_n:,} docs, {kind} {what}: first tenth {first:,.0f} docs/s, last tenth "
            f"{last:,.0f} docs/s: {last / first:.2f}x (target >= 0.8x)"
        )
    print(
        f"peak RSS over ws://: replicator process {ws['client_rss']:.0f} MiB at {n:,} docs, "
        f"{long['client_rss']:.0f} MiB at {long_n:,}; listener process "
        f"{ws['server_rss']:.0f} MiB at {n:,}, {long['server_rss']:.0f} MiB at {long_n:,} "
        "(target: flat in the number of documents)"
    )
    print(
        "(the replicator runs in this process, after any benchmark run before it: compare its "
        "two figures rather than their size)"
    )
    print(
        f"{many} replicators pushing {many_n:,} docs each into one listener at once: "
        f"{aggregate:,.0f} docs/s in all, {aggregate / single:.2f}x one replicator's "
        f"{single:,.0f} docs/s (same run)"
    )
    print(f"{blob_size / 1e6:.0f} MB blob pushed over ws://: {blob_mbs:.1f} MB/s (target >= 50)")
    print(
        f"targets: >= {NATIVE_PUSH_DOCS_PER_S:,} docs/s push and >= {NATIVE_PULL_DOCS_PER_S:,} "
        "pull over ws:// (1x native; stretch 2x)"
    )


if __name__ == "__main__":
    main()
