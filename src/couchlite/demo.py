"""``make demo``: real peer-to-peer sync between two processes, narrated.

A "laptop" process opens its database and serves it with a ``UrlEndpointListener`` (TLS with its
anonymous self-signed identity, password authentication) on 127.0.0.1, advertised by DNS-SD
(mDNS, on loopback only). This "phone" process finds the laptop by its service name
(``couchlite.discovery.find_peer``), then runs a continuous push-and-pull ``Replicator`` against
it, pinning the certificate the laptop advertised (trust on first use, the pin kept in the
phone's database). Both sides edit documents while they sync; both edit the same note while
apart, and a conflict resolver merges the two versions when they meet again. Progress is shown as
it happens; the final state of both databases is printed and compared; then everything stops.

Run: ``python -m couchlite.demo`` (``--local`` for the tour of the local data API); discovery
needs ``pip install 'couchlite[discovery]'``, which ``make demo`` installs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from couchlite import (
    BasicAuthenticator,
    CollectionConfiguration,
    Conflict,
    Database,
    DatabaseConfiguration,
    Document,
    ListenerPasswordAuthenticator,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorChange,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)
from couchlite.demo_local import run as run_local

USER, PASSWORD = "demo", "s3cret-passw0rd"
WAIT_S = 60.0
#: Both processes run here: the advertisement and the search stay on loopback.
LOOPBACK = ["127.0.0.1"]


def say(who: str, text: str) -> None:
    print(f"[{who:>6}] {text}", flush=True)


# --- the laptop: a listener in its own process ---------------------------------------------


def serve(directory: Path, name: str) -> int:
    """The child process: serve a database, obey commands from stdin (JSON lines)."""
    db = Database("laptop", DatabaseConfiguration(directory=directory))
    notes = db.create_collection("notes", scope="demo")
    config = UrlEndpointListenerConfiguration(collections=[notes])
    config.network_interface = "127.0.0.1"
    config.advertise = True
    config.service_name = name
    config.authenticator = ListenerPasswordAuthenticator(
        lambda user, password: user == USER and password == PASSWORD
    )
    listener = UrlEndpointListener(config)
    listener.start()

    assert listener.tls_identity is not None
    cert = listener.tls_identity.certificates[0]
    hello = {
        "service_name": listener.service_name,
        "subject": cert.subject.rfc4514_string(),
    }
    print(orjson.dumps(hello).decode(), flush=True)
    for line in sys.stdin:
        command = orjson.loads(line)
        op = command["op"]
        if op == "put":
            existing = notes.get(command["id"])
            doc = existing.to_mutable() if existing else MutableDocument(command["id"])
            doc.set_data(command["body"])
            notes.save(doc)
            answer: Any = {"rev": doc.revision_id}
        elif op == "get":
            stored = notes.get(command["id"])
            answer = None if stored is None else orjson.loads(stored.to_json())
        elif op == "dump":
            answer = {}
            for doc_id in notes.document_ids():
                found = notes.get(doc_id)
                assert found is not None
                answer[doc_id] = {"rev": found.revision_id, "body": orjson.loads(found.to_json())}
        elif op == "status":
            status = listener.status
            answer = {"connections": status.connection_count}
        else:  # stop
            listener.stop()
            db.close()
            print(orjson.dumps({"stopped": True}).decode(), flush=True)
            return 0
        print(orjson.dumps(answer).decode(), flush=True)
    listener.stop()
    db.close()
    return 0


class Laptop:
    """The phone's handle on the laptop process."""

    def __init__(self, directory: Path, name: str) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "couchlite.demo", "--serve", str(directory), "--name", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hello = orjson.loads(self._readline())

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the laptop process stopped unexpectedly")
        return line

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps({"op": op, **fields}).decode() + "\n")
        self.proc.stdin.flush()
        return orjson.loads(self._readline())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.ask("stop")
            self.proc.wait(WAIT_S)


# --- the phone: this process -----------------------------------------------------------------


def text_of(doc: Document | None) -> object:
    return None if doc is None else doc.get("text")


def wait_until(what: str, predicate: Any) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > WAIT_S:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def merge_notes(conflict: Conflict) -> Document | None:
    """Keep both edits: the union of the tags, the longer text, both authors."""
    local, remote = conflict.local_document, conflict.remote_document
    if local is None or remote is None:
        return local or remote
    merged = local.to_mutable()
    merged["tags"] = sorted(set(local.get("tags", [])) | set(remote.get("tags", [])))
    merged["text"] = max(local.get("text", ""), remote.get("text", ""), key=len)
    merged["edited_by"] = sorted({local.get("edited_by", "?"), remote.get("edited_by", "?")})
    return merged


def run_p2p(directory: Path) -> None:
    try:
        from couchlite.discovery import find_peer
    except ImportError as exc:
        raise SystemExit(f"the demo finds the laptop by DNS-SD: {exc}") from exc
    print(f"couchlite peer-to-peer demo — databases in {directory}", flush=True)
    # A name of this run's own, should another demo be advertising on this machine too.
    laptop = Laptop(directory / "laptop", f"couchlite demo laptop {uuid.uuid4().hex[:6]}")
    hello = laptop.hello
    say("laptop", f"listening, advertised as {hello['service_name']!r} (TLS, password required)")
    say("laptop", f"anonymous self-signed certificate: {hello['subject']}")
    peer = find_peer(hello["service_name"], interfaces=LOOPBACK, timeout=WAIT_S)
    assert peer.fingerprint is not None
    say("phone", f"found {peer.name!r} at {peer.url}")
    say("phone", f"its certificate's SHA-256: {peer.fingerprint[:32]}... (pinned on first use)")

    phone_db = Database("phone", DatabaseConfiguration(directory=directory / "phone"))
    notes = phone_db.create_collection("notes", scope="demo")
    try:
        for i, text in enumerate(["buy milk", "call mum", "book flights"]):
            notes.save(MutableDocument(f"phone-{i}", {"text": text, "edited_by": "phone"}))
        for i, text in enumerate(["fix bike", "water plants"]):
            laptop.ask("put", id=f"laptop-{i}", body={"text": text, "edited_by": "laptop"})
        body = {"text": "shopping list", "tags": ["home"], "edited_by": "phone"}
        notes.save(MutableDocument("shared", body))
        say("phone", f"{notes.count} notes; laptop: {len(laptop.ask('dump'))} notes")

        config = peer.replicator_configuration(
            authenticator=BasicAuthenticator(USER, PASSWORD), continuous=True
        )
        config.add_collection(notes, CollectionConfiguration(conflict_resolver=merge_notes))

        last: list[str] = []

        def show(change: ReplicatorChange) -> None:
            status = change.status
            line = (
                f"replicator {status.activity.name:<10} progress "
                f"{status.progress.completed}/{status.progress.total}"
            )
            if status.error is not None:
                line += f" error: {status.error}"
            if not last or last[-1] != line:
                last.append(line)
                say("phone", line)

        def replicator() -> Replicator:
            repl = Replicator(config)
            repl.add_change_listener(show)
            repl.add_document_replication_listener(
                lambda event: say(
                    "phone",
                    f"{'pushed' if event.is_push else 'pulled'} "
                    + ", ".join(d.id for d in event.documents),
                )
            )
            return repl

        repl = replicator()
        repl.start()
        repl.wait_for(ReplicatorActivityLevel.IDLE, timeout=WAIT_S)
        say("phone", f"in sync: phone {notes.count} notes, laptop {len(laptop.ask('dump'))}")
        say("phone", f"pinned in its database: {len(phone_db.pins())} certificate (by peer ID)")

        say("phone", "edit phone-0 on the phone ...")
        doc = notes.get("phone-0")
        assert doc is not None
        edited = doc.to_mutable()
        edited["text"] = "buy oat milk"
        notes.save(edited)
        seconds = wait_until(
            "the laptop to see the edit",
            lambda: (laptop.ask("get", id="phone-0") or {}).get("text") == "buy oat milk",
        )
        say("laptop", f"sees 'buy oat milk' after {seconds:.2f} s")
        say("laptop", "edit laptop-1 on the laptop ...")
        laptop.ask("put", id="laptop-1", body={"text": "water the plants", "edited_by": "laptop"})
        seconds = wait_until(
            "the phone to see the edit",
            lambda: text_of(notes.get("laptop-1")) == "water the plants",
        )
        say("phone", f"sees 'water the plants' after {seconds:.2f} s")

        say("phone", "going offline; both sides edit 'shared' while apart ...")
        repl.stop()
        repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)
        mine = notes.get("shared")
        assert mine is not None
        mine_edit = mine.to_mutable()
        mine_edit["tags"] = ["home", "urgent"]
        notes.save(mine_edit)
        theirs = {"text": "shopping list: eggs, bread", "tags": ["home", "weekend"]}
        laptop.ask("put", id="shared", body={**theirs, "edited_by": "laptop"})
        say("phone", "back online: the conflict resolver merges the two versions")
        repl = replicator()
        repl.start()
        merged = threading.Event()

        def converged() -> bool:
            phone = notes.get("shared")
            remote = laptop.ask("get", id="shared") or {}
            done = (
                phone is not None
                and phone.get("tags") == ["home", "urgent", "weekend"]
                and remote.get("tags") == ["home", "urgent", "weekend"]
            )
            if done:
                merged.set()
            return done

        seconds = wait_until("the merged note on both sides", converged)
        say("phone", f"merged on both sides after {seconds:.2f} s: {notes.get('shared').to_json()}")  # type: ignore[union-attr]
        repl.wait_for(ReplicatorActivityLevel.IDLE, timeout=WAIT_S)

        print(flush=True)
        remote_state = laptop.ask("dump")
        local_state = {}
        for doc_id in notes.document_ids():
            found = notes.get(doc_id)
            assert found is not None
            local_state[doc_id] = {"rev": found.revision_id, "body": orjson.loads(found.to_json())}
        print(f"{'document':<10} {'phone':<34} {'laptop':<34}", flush=True)
        for doc_id in sorted(set(local_state) | set(remote_state)):
            mine_rev = local_state.get(doc_id, {}).get("rev", "-")
            theirs_rev = remote_state.get(doc_id, {}).get("rev", "-")
            print(f"{doc_id:<10} {mine_rev[:32]:<34} {theirs_rev[:32]:<34}", flush=True)
        same = local_state == remote_state
        print(f"\nboth databases identical: {same}", flush=True)

        repl.stop()
        repl.wait_for(ReplicatorActivityLevel.STOPPED, timeout=WAIT_S)
        say("phone", "replicator stopped")
        if not same:
            raise SystemExit("the databases differ")
    finally:
        laptop.stop()
        say("laptop", "listener stopped (and its advertisement withdrawn)")
        phone_db.close()
    print("done.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m couchlite.demo", description=__doc__)
    parser.add_argument("--directory", type=Path, help="keep the databases in this folder")
    parser.add_argument("--local", action="store_true", help="the local data-API tour")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="couchlite demo laptop", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve, args.name)
    run = run_local if args.local else run_p2p
    if args.directory is not None:
        args.directory.mkdir(parents=True, exist_ok=True)
        run(args.directory)
    else:
        with tempfile.TemporaryDirectory(prefix="couchlite-demo-") as tmp:
            run(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
