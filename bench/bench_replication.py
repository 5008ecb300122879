"""Peer-to-peer replication between two processes over loopback: push, pull, a big blob.

The passive peer (``bench/replication_peer.py``) runs in a subprocess; this process runs the
replicator. For ``ws://`` and ``wss://``: a one-shot push of N small documents (~200 bytes) into
an empty peer, then a one-shot pull of them into an empty database; then a 10 MB blob pushed
over ``ws://``. Reported next to native Couchbase Lite C 3.2 on this kind of machine (a Release
build, its replicator against LiteCore's passive one: about 12,000 documents per second push and
16,500 pull at best), and with the peak memory of each side (and, for the push, the growth
between a small and the full run).
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
    config = ReplicatorConfiguration(target=UrlEndpoint(peer.url()))
    config.add_collection(db.default_collection())
    config.replicator_type = kind
    if peer.cert_pem:
        config.pinned_server_certificate = peer.cert_pem.encode()
    repl = Replicator(config)
    started = time.perf_counter()
    repl.start()
    status = repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=600)
    elapsed = time.perf_counter() - started
    if status.error is not None:
        raise RuntimeError(f"replication failed: {status.error!r}")
    return elapsed


def fill(db: Database, n: int) -> None:
    col = db.default_collection()
    generator = bodies(n)
    for start in range(0, n, 1000):
        with db.in_batch():
            for _ in range(min(1000, n - start)):
                doc_id, body = next(generator)
                col.save(MutableDocument(doc_id, body))


def rss_mib() -> float:
    return peak_rss_mib()


def reset_peak_rss() -> None:
    """Forget the peak so far (Linux): the benchmarks before this one ran in this process."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def run_docs(tmp: Path, n: int, tls: bool) -> dict[str, Any]:
    scheme = "wss" if tls else "ws"
    reset_peak_rss()
    source = Database(f"source-{scheme}-{n}", DatabaseConfiguration(directory=tmp))
    fill(source, n)
    peer = Peer(tmp / f"peer-{scheme}-{n}", tls)
    try:
        push_s = replicate(peer, source, ReplicatorType.PUSH)
        assert int(peer.ask("count")) == n
        sink = Database(f"sink-{scheme}-{n}", DatabaseConfiguration(directory=tmp))
        pull_s = replicate(peer, sink, ReplicatorType.PULL)
        assert sink.default_collection().count == n
        sink.close()
        server_rss = float(peer.ask("rss"))
    finally:
        peer.close()
        source.close()
    return {
        "push": n / push_s,
        "pull": n / pull_s,
        "server_rss": server_rss,
        "client_rss": rss_mib(),
    }


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
    blob_size = 1_000_000 if quick else 10_000_000
    print(f"{n:,} documents of ~180 bytes, one-shot, peer in another process, 127.0.0.1")
    reset_peak_rss()
    with tempfile.TemporaryDirectory(prefix="couchlite-bench-repl-") as tmp_name:
        tmp = Path(tmp_name)
        results = {}
        small = None
        if not quick:
            small = run_docs(tmp, n // 10, False)
        for tls in (False, True):
            results["wss://" if tls else "ws://"] = run_docs(tmp, n, tls)
        blob_mbs = run_blob(tmp, blob_size)
    native = f"vs native C ({NATIVE_PUSH_DOCS_PER_S:,} / {NATIVE_PULL_DOCS_PER_S:,})"
    print(f"{'':24}{'push docs/s':>14}{'pull docs/s':>14}{native:>30}")
    for scheme, r in results.items():
        ratio = (
            f"{r['push'] / NATIVE_PUSH_DOCS_PER_S:.2f}x / {r['pull'] / NATIVE_PULL_DOCS_PER_S:.2f}x"
        )
        print(f"{scheme:24}{r['push']:14,.0f}{r['pull']:14,.0f}{ratio:>30}")
    if "wss://" in results and "ws://" in results:
        ws, wss = results["ws://"], results["wss://"]
        print(
            f"wss:// at {wss['push'] / ws['push']:.0%} (push) and {wss['pull'] / ws['pull']:.0%} "
            "(pull) of ws://"
        )
    print(f"{blob_size / 1e6:.0f} MB blob pushed over ws://: {blob_mbs:.1f} MB/s")
    ws = results["ws://"]
    print(
        f"peak RSS over ws://: replicator process {ws['client_rss']:.0f} MiB, listener "
        f"process {ws['server_rss']:.0f} MiB ({n:,} docs)"
        + (
            f"; {small['client_rss']:.0f} MiB and {small['server_rss']:.0f} MiB ({n // 10:,} docs)"
            if small
            else ""
        )
    )
    print(
        "(the replicator runs in this process, after any benchmark run before it: compare its "
        "two figures rather than their size)"
    )
    print(
        f"targets: >= {NATIVE_PUSH_DOCS_PER_S:,} docs/s push and >= {NATIVE_PULL_DOCS_PER_S:,} "
        "pull over ws:// (1x native; stretch 2x); wss:// >= 0.8x ws://; memory flat in N"
    )


if __name__ == "__main__":
    main()
