"""``python -m couchlite.demo --local``: a tour of the local data API, narrated.

Two databases on disk, named collections, documents edited and deleted, a blob shared by two
documents, a conflict between two writers settled three ways, a batch that fails and leaves
nothing behind, and a document that expires and disappears on its own. Peer-to-peer sync comes
with the replication work; nothing here pretends to sync.

Run: ``python -m couchlite.demo --local [--directory DIR]`` (default: a temporary folder).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

from couchlite import (
    Blob,
    ConcurrencyControl,
    ConflictError,
    Database,
    DatabaseConfiguration,
    Document,
    InvalidArgumentError,
    MutableDocument,
)


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say()
    say(f"== {title}")


def show(doc: Document | None) -> str:
    if doc is None:
        return "(none)"
    return f"{doc.id} rev {doc.revision_id[:12] if doc.revision_id else '-'}… {doc.to_json()}"


def run(directory: Path) -> None:
    config = DatabaseConfiguration(directory=directory)
    say(f"couchlite demo — databases in {directory}")

    step("Open a database and its collections")
    db = Database("shop", config)
    orders = db.create_collection("orders", scope="sales")
    customers = db.create_collection("customers", scope="sales")
    say(f"database {db.name!r} at {db.path} (public UUID {db.uuid})")
    say(
        f"scopes: {[s.name for s in db.scopes()]}; in 'sales': "
        f"{[c.full_name for c in db.collections(scope='sales')]}"
    )

    changes: list[str] = []
    orders.add_change_listener(
        lambda change: changes.append(f"{len(change.document_ids)} order(s) changed")
    )

    step("Save, read and update documents")
    alice = MutableDocument("alice", {"name": "Alice", "city": "Lyon", "tags": ["vip"]})
    customers.save(alice)
    order = MutableDocument("order-1", {"customer": "alice", "items": [{"sku": "A1", "qty": 2}]})
    orders.save(order)
    say(f"saved  {show(orders.get('order-1'))}")
    order["status"] = "paid"
    order["items"].append({"sku": "B7", "qty": 1})
    orders.save(order)
    say(f"update {show(orders.get('order-1'))}")
    say(f"orders: {orders.count}, customers: {customers.count}")

    step("A blob, stored once and shared by two documents")
    receipt = b"%PDF-1.7 receipt for order-1 " * 200
    orders.save(
        MutableDocument(
            "order-2", {"customer": "alice", "receipt": Blob("application/pdf", receipt)}
        )
    )
    orders.save(
        MutableDocument(
            "order-3", {"customer": "alice", "receipt": Blob("application/pdf", receipt)}
        )
    )
    blob = orders.get("order-2")["receipt"]  # type: ignore[index]
    files = list((db.path / "Attachments").glob("*.blob"))
    say(
        f"blob {blob.digest} ({blob.length} bytes, {blob.content_type}) — {len(files)} file on disk"
    )
    say(f"order-3 reads the same content: {orders.get('order-3')['receipt'].content == receipt}")  # type: ignore[index]
    orders.purge("order-2")
    orders.purge("order-3")
    files = list((db.path / "Attachments").glob("*.blob"))
    say(f"both documents purged -> blob files left: {len(files)}")

    step("A conflict: two writers start from the same revision")
    first = customers.get("alice").to_mutable()  # type: ignore[union-attr]
    second = customers.get("alice").to_mutable()  # type: ignore[union-attr]
    first["city"] = "Paris"
    customers.save(first)
    say(f"writer 1 saved: {show(customers.get('alice'))}")
    second["tags"] = ["vip", "newsletter"]
    try:
        customers.save(second, concurrency_control=ConcurrencyControl.FAIL_ON_CONFLICT)
    except ConflictError as exc:
        say(f"writer 2 with FAIL_ON_CONFLICT: refused ({exc.message})")

    def merge(mine: MutableDocument, current: Document | None) -> bool:
        assert current is not None
        mine["city"] = current["city"]  # keep writer 1's city, add writer 2's tags
        return True

    customers.save(second, conflict_handler=merge)
    say(f"writer 2 with a merging conflict handler: {show(customers.get('alice'))}")

    step("A batch that fails leaves nothing behind")
    try:
        with db.in_batch():
            orders.save(MutableDocument("order-4", {"customer": "bob"}))
            orders.save(MutableDocument("order-5", {"customer": "bob", "total": float("nan")}))
    except InvalidArgumentError as exc:
        say(f"the batch raised: {exc.message}")
    say(f"order-4 after the failed batch: {show(orders.get('order-4'))}")
    with db.in_batch():
        for i in range(4, 104):
            orders.save(MutableDocument(f"order-{i}", {"customer": "bob", "n": i}))
    say(f"a good batch of 100 orders: count is now {orders.count}")

    step("Delete (a tombstone that will replicate) and purge (gone without trace)")
    orders.delete(orders.get("order-4"))  # type: ignore[arg-type]
    orders.purge("order-5")
    tail = list(orders.changes(since=orders.last_sequence - 3))
    for change in tail:
        state = "deleted" if change.deleted else "live"
        say(f"  seq {change.sequence:>3} {change.doc_id:<10} {change.rev_id[:14]}… {state}")

    step("Expiration: a document purges itself")
    expired = threading.Event()
    orders.add_document_change_listener("order-6", lambda change: expired.set())
    orders.set_document_expiration("order-6", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    say(f"order-6 expires at {orders.get_document_expiration('order-6'):%H:%M:%S}")
    started = time.monotonic()
    expired.wait(15)
    say(f"after {time.monotonic() - started:.1f} s: order-6 is {show(orders.get('order-6'))}")

    step("Listeners saw every commit")
    say(f"{len(changes)} notifications; the last: {changes[-1]!r}")

    step("Everything is on disk: reopen and look")
    db.close()
    with Database("shop", config) as again:
        reopened = again.collection("orders", scope="sales")
        people = again.collection("customers", scope="sales")
        assert reopened is not None and people is not None
        say(f"orders after reopening: {reopened.count}; alice: {show(people.get('alice'))}")

    step("A second database, independent of the first")
    with Database("warehouse", config) as other:
        other.default_collection().save(MutableDocument("stock-A1", {"qty": 40}))
        count = other.default_collection().count
        say(f"{other.name!r} has its own UUID {other.uuid} and {count} document")
    say()
    say("done.")
