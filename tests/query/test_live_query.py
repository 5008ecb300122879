"""Live queries: current results at once, new results after commits that change them (and
only then), from concurrent writers and from replication; the asyncio form."""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path

import pytest

from couchlite import (
    Database,
    DatabaseConfiguration,
    FullTextIndexConfiguration,
    MutableDocument,
    QueryChange,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
)

WAIT_S = 10.0


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database("live", DatabaseConfiguration(directory=tmp_path))
    yield db
    db.close()


def ids(change: QueryChange) -> list[str]:
    assert change.error is None and change.results is not None
    return [r["id"] for r in change.results]


def test_listener_gets_results_then_only_changes(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("a", {"n": 1}))
    query = db.create_query("SELECT meta().id FROM _ WHERE n > 0 ORDER BY meta().id")
    got: queue.Queue[QueryChange] = queue.Queue()
    token = query.add_change_listener(got.put)
    first = got.get(timeout=WAIT_S)
    assert first.query is query and ids(first) == ["a"]
    col.save(MutableDocument("z", {"n": 0}))  # not in the results: no call
    col.save(MutableDocument("b", {"n": 2}))
    assert ids(got.get(timeout=WAIT_S)) == ["a", "b"]
    assert got.empty()
    token.remove()
    col.save(MutableDocument("c", {"n": 3}))
    with pytest.raises(queue.Empty):
        got.get(timeout=0.3)


def test_a_second_listener_gets_the_current_results(db: Database) -> None:
    db.default_collection().save(MutableDocument("a", {"n": 1}))
    query = db.create_query("SELECT meta().id FROM _")
    one: queue.Queue[QueryChange] = queue.Queue()
    two: queue.Queue[QueryChange] = queue.Queue()
    t1 = query.add_change_listener(one.put)
    assert ids(one.get(timeout=WAIT_S)) == ["a"]
    t2 = query.add_change_listener(two.put)
    assert ids(two.get(timeout=WAIT_S)) == ["a"]
    assert one.empty()
    t1.remove()
    t2.remove()


def test_parameters_changed_on_a_live_query_rerun_it(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("a", {"n": 1}))
    col.save(MutableDocument("b", {"n": 2}))
    query = db.create_query("SELECT meta().id FROM _ WHERE n = $n")
    query.parameters = {"n": 1}
    got: queue.Queue[QueryChange] = queue.Queue()
    token = query.add_change_listener(got.put)
    assert ids(got.get(timeout=WAIT_S)) == ["a"]
    query.parameters = {"n": 2}
    assert ids(got.get(timeout=WAIT_S)) == ["b"]
    token.remove()


def test_concurrent_writers_end_in_the_final_results(db: Database) -> None:
    col = db.default_collection()
    query = db.create_query("SELECT COUNT(*) AS c FROM _")
    counts: queue.Queue[int] = queue.Queue()
    token = query.add_change_listener(lambda ch: counts.put(next(iter(ch.results))["c"]))

    def writer(k: int) -> None:
        for i in range(100):
            col.save(MutableDocument(f"w{k}-{i}", {"i": i}))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    seen = []
    while not seen or seen[-1] != 400:
        seen.append(counts.get(timeout=WAIT_S))
    assert seen == sorted(seen)  # never goes back
    assert len(seen) < 400  # commits were coalesced
    token.remove()


def test_replicated_documents_reach_a_live_query(tmp_path: Path) -> None:
    with (
        Database("server", DatabaseConfiguration(directory=tmp_path)) as server,
        Database("client", DatabaseConfiguration(directory=tmp_path)) as client,
    ):
        query = server.create_query("SELECT meta().id FROM _ ORDER BY meta().id")
        got: queue.Queue[QueryChange] = queue.Queue()
        token = query.add_change_listener(got.put)
        assert ids(got.get(timeout=WAIT_S)) == []
        client.default_collection().save(MutableDocument("x", {"v": 1}))
        config = UrlEndpointListenerConfiguration(
            collections=[server.default_collection()],
            network_interface="127.0.0.1",
            disable_tls=True,
        )
        with UrlEndpointListener(config) as listener:
            rconfig = ReplicatorConfiguration(
                f"ws://127.0.0.1:{listener.port}/server", replicator_type=ReplicatorType.PUSH
            )
            rconfig.add_collection(client.default_collection())
            with Replicator(rconfig) as replicator:
                status = replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=60)
            assert status.error is None
        assert ids(got.get(timeout=WAIT_S)) == ["x"]
        token.remove()


def test_a_listener_that_raises_does_not_stop_the_others(db: Database) -> None:
    query = db.create_query("SELECT meta().id FROM _")
    got: queue.Queue[QueryChange] = queue.Queue()

    def bad(_change: QueryChange) -> None:
        raise RuntimeError("boom")

    t1 = query.add_change_listener(bad)
    t2 = query.add_change_listener(got.put)
    got.get(timeout=WAIT_S)
    db.default_collection().save(MutableDocument("a", {}))
    assert ids(got.get(timeout=WAIT_S)) == ["a"]
    t1.remove()
    t2.remove()


def test_live_results_async(db: Database) -> None:
    col = db.default_collection()

    async def main() -> list[list[str]]:
        seen: list[list[str]] = []
        query = db.create_query("SELECT meta().id FROM _ ORDER BY meta().id")
        async with query.live_results() as results:
            async for result_set in results:
                seen.append([r["id"] for r in result_set])
                if len(seen) == 1:
                    await asyncio.to_thread(col.save, MutableDocument("a", {}))
                else:
                    break
        return seen

    async def bounded() -> list[list[str]]:
        async with asyncio.timeout(WAIT_S):
            return await main()

    assert asyncio.run(bounded()) == [[], ["a"]]


def test_closing_the_database_ends_the_live_query_thread(tmp_path: Path) -> None:
    db = Database("closing", DatabaseConfiguration(directory=tmp_path))
    query = db.create_query("SELECT meta().id FROM _")
    got: queue.Queue[QueryChange] = queue.Queue()
    query.add_change_listener(got.put)
    got.get(timeout=WAIT_S)
    assert any(t.name == "couchlite-live-query" for t in threading.enumerate())
    db.close()
    for _ in range(100):
        if not any(t.name == "couchlite-live-query" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("the live query thread outlived its database")


def test_a_live_query_stops_and_starts_again(db: Database) -> None:
    query = db.create_query("SELECT meta().id FROM _")
    first: queue.Queue[QueryChange] = queue.Queue()
    token = query.add_change_listener(first.put)
    assert ids(first.get(timeout=WAIT_S)) == []
    token.remove()
    token.remove()  # idempotent
    db.default_collection().save(MutableDocument("a", {}))
    again: queue.Queue[QueryChange] = queue.Queue()
    token = query.add_change_listener(again.put)
    assert ids(again.get(timeout=WAIT_S)) == ["a"]
    db.default_collection().save(MutableDocument("b", {}))
    assert ids(again.get(timeout=WAIT_S)) == ["a", "b"]
    assert first.empty()
    token.remove()


def test_a_failing_run_is_reported_to_the_listener(db: Database) -> None:
    db.default_collection().create_index("text", FullTextIndexConfiguration(["t"]))
    query = db.create_query("SELECT meta().id FROM _ WHERE MATCH(text, 'x')")
    got: queue.Queue[QueryChange] = queue.Queue()
    token = query.add_change_listener(got.put)
    assert ids(got.get(timeout=WAIT_S)) == []
    db.default_collection().delete_index("text")  # the query cannot run any more
    db.default_collection().save(MutableDocument("a", {"t": "x"}))
    change = got.get(timeout=WAIT_S)
    assert change.results is None and change.error is not None
    token.remove()


def test_a_live_query_reports_its_recovery_from_an_error(db: Database) -> None:
    col = db.default_collection()
    col.create_index("text", FullTextIndexConfiguration(["t"]))
    col.save(MutableDocument("a", {"t": "x"}))
    query = db.create_query("SELECT meta().id FROM _ WHERE MATCH(text, 'x')")
    got: queue.Queue[QueryChange] = queue.Queue()
    token = query.add_change_listener(got.put)
    assert ids(got.get(timeout=WAIT_S)) == ["a"]
    col.delete_index("text")
    col.save(MutableDocument("b", {"t": "y"}))
    assert got.get(timeout=WAIT_S).error is not None
    col.create_index("text", FullTextIndexConfiguration(["t"]))
    col.save(MutableDocument("c", {"t": "y"}))
    assert ids(got.get(timeout=WAIT_S)) == ["a"]  # the same rows as before the error: news
    token.remove()
