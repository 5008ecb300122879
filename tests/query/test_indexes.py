"""Value and full-text indexes: used by queries, kept up to date by every kind of write
(saves, deletions, purges, replicated revisions), persistent across reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from couchlite import (
    ArrayIndexConfiguration,
    Database,
    DatabaseConfiguration,
    FullTextIndexConfiguration,
    InvalidArgumentError,
    InvalidQueryError,
    MutableDocument,
    Replicator,
    ReplicatorActivityLevel,
    ReplicatorConfiguration,
    ReplicatorType,
    UrlEndpointListener,
    UrlEndpointListenerConfiguration,
    ValueIndexConfiguration,
)


def ids(db: Database, sql: str, **params: object) -> list[str]:
    query = db.create_query(sql)
    query.parameters = params
    return sorted(r["id"] for r in query.execute())


@pytest.fixture
def db(tmp_path: Path) -> Database:
    db = Database("ix", DatabaseConfiguration(directory=tmp_path))
    col = db.default_collection()
    with db.in_batch():
        for i in range(200):
            col.save(MutableDocument(f"d{i:03}", {"n": i, "who": {"last": f"L{i % 10}"}}))
    yield db
    db.close()


def test_a_value_index_answers_the_query_and_gives_the_same_rows(db: Database) -> None:
    sql = "SELECT meta().id FROM _ WHERE who.last = $last"
    before = ids(db, sql, last="L3")
    assert len(before) == 20
    assert "USING INDEX" not in db.create_query(sql).explain()
    db.default_collection().create_index("byLast", ValueIndexConfiguration(["who.last"]))
    query = db.create_query(sql)
    query.parameters = {"last": "L3"}
    assert "USING INDEX ix_" in query.explain()
    assert ids(db, sql, last="L3") == before
    ordered = db.create_query("SELECT n FROM _ ORDER BY who.last, n LIMIT 3")
    assert "USING INDEX ix_" in ordered.explain()
    assert [r["n"] for r in ordered.execute()] == [0, 10, 20]


def test_indexes_persist_and_are_listed(tmp_path: Path) -> None:
    with Database("p", DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.default_collection()
        col.save(MutableDocument("a", {"x": 1, "t": "hello world"}))
        col.create_index("byX", ValueIndexConfiguration(["x"]))
        col.create_index("text", FullTextIndexConfiguration(["t"], language=None))
        assert col.indexes == ["byX", "text"]
    with Database("p", DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.default_collection()
        assert col.indexes == ["byX", "text"]
        assert col.get_index("byX") == ValueIndexConfiguration(["x"])
        assert col.get_index("nope") is None
        assert "USING INDEX ix_" in db.create_query("SELECT x FROM _ WHERE x = 1").explain()
        col.save(MutableDocument("b", {"x": 2, "t": "goodbye world"}))
        assert ids(db, "SELECT meta().id FROM _ WHERE MATCH(text, 'world')") == ["a", "b"]


def test_creating_again_replacing_and_deleting(db: Database) -> None:
    col = db.default_collection()
    col.create_index("i", ValueIndexConfiguration(["n"]))
    col.create_index("i", ValueIndexConfiguration(["n"]))  # the same: nothing happens
    assert col.indexes == ["i"]
    col.create_index("i", ValueIndexConfiguration(["who.last"]))  # another: replaced
    assert col.get_index("i") == ValueIndexConfiguration(["who.last"])
    col.delete_index("i")
    col.delete_index("i")  # none: nothing happens
    assert col.indexes == []
    assert "USING INDEX" not in db.create_query("SELECT n FROM _ WHERE who.last = 'x'").explain()


def test_bad_index_configurations_raise(db: Database) -> None:
    col = db.default_collection()
    with pytest.raises(InvalidQueryError):
        col.create_index("bad", ValueIndexConfiguration(["n +"]))
    with pytest.raises(InvalidQueryError):
        col.create_index("bad", ValueIndexConfiguration(["n = $p"]))
    with pytest.raises(InvalidArgumentError):
        col.create_index("bad", ValueIndexConfiguration([]))
    with pytest.raises(InvalidArgumentError):
        col.create_index("", ValueIndexConfiguration(["n"]))
    with pytest.raises(InvalidArgumentError):
        col.create_index("bad", FullTextIndexConfiguration(["n"], language="en_' || 1 || '"))
    assert col.indexes == []


def test_a_partial_value_index(db: Database) -> None:
    col = db.default_collection()
    col.create_index("low", ValueIndexConfiguration(["n"], where="n < 50"))
    sql = "SELECT meta().id FROM _ WHERE n < 50 AND n = 7"
    assert ids(db, sql) == ["d007"]


def test_full_text_index_follows_saves_deletions_and_purges(db: Database) -> None:
    col = db.default_collection()
    col.create_index("body", FullTextIndexConfiguration(["text"], language="en"))
    col.save(MutableDocument("t1", {"text": "Swimming pools and sea views"}))
    col.save(MutableDocument("t2", {"text": "A quiet library"}))
    match = "SELECT meta().id FROM _ WHERE MATCH(body, $q)"
    assert ids(db, match, q="swim") == ["t1"]
    assert ids(db, match, q="view") == ["t1"]
    assert ids(db, match, q="the") == []
    doc = col.get("t1")
    assert doc is not None
    changed = doc.to_mutable()
    changed["text"] = "A library of books"
    col.save(changed)
    assert ids(db, match, q="swim") == []
    assert ids(db, match, q="library") == ["t1", "t2"]
    current = col.get("t1")
    assert current is not None
    col.delete(current)
    assert ids(db, match, q="library") == ["t2"]
    col.purge("t2")
    assert ids(db, match, q="library") == []


def test_dropping_a_collection_drops_its_indexes(tmp_path: Path) -> None:
    with Database("drop", DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.create_collection("c", "s")
        col.save(MutableDocument("a", {"t": "alpha"}))
        col.create_index("t", FullTextIndexConfiguration(["t"]))
        db.delete_collection("c", "s")
        again = db.create_collection("c", "s")
        again.save(MutableDocument("b", {"t": "alpha"}))
        assert again.indexes == []
        again.create_index("t", FullTextIndexConfiguration(["t"]))
        assert ids(db, "SELECT meta().id FROM s.c WHERE MATCH(t, 'alpha')") == ["b"]


def test_replicated_revisions_are_indexed(tmp_path: Path) -> None:
    with (
        Database("server", DatabaseConfiguration(directory=tmp_path)) as server,
        Database("client", DatabaseConfiguration(directory=tmp_path)) as client,
    ):
        target = server.default_collection()
        target.create_index("text", FullTextIndexConfiguration(["t"], language="en"))
        target.create_index("byN", ValueIndexConfiguration(["n"]))
        source = client.default_collection()
        with client.in_batch():
            for i in range(50):
                source.save(MutableDocument(f"r{i}", {"n": i, "t": f"replicated note {i}"}))
        config = UrlEndpointListenerConfiguration(
            collections=[target], network_interface="127.0.0.1", disable_tls=True
        )
        with UrlEndpointListener(config) as listener:
            rconfig = ReplicatorConfiguration(
                f"ws://127.0.0.1:{listener.port}/server", replicator_type=ReplicatorType.PUSH
            )
            rconfig.add_collection(source)
            with Replicator(rconfig) as replicator:
                status = replicator.wait_for(ReplicatorActivityLevel.STOPPED, timeout=60)
            assert status.error is None, status.error
        assert len(ids(server, "SELECT meta().id FROM _ WHERE MATCH(text, 'notes')")) == 50
        assert ids(server, "SELECT meta().id FROM _ WHERE n = 7") == ["r7"]


def test_an_array_index_answers_unnest_and_any(tmp_path: Path) -> None:
    with Database("arr", DatabaseConfiguration(directory=tmp_path)) as db:
        col = db.default_collection()
        with db.in_batch():
            for i in range(100):
                contacts = [
                    {"type": "email" if j % 2 else "phone", "v": f"{i}-{j}"} for j in range(3)
                ]
                col.save(
                    MutableDocument(f"p{i:03}", {"contacts": contacts, "likes": ["x", f"l{i}"]})
                )
        unnest = (
            "SELECT meta(p).id, c.v FROM _ AS p UNNEST p.contacts AS c "
            "WHERE c.type = 'email' ORDER BY c.v"
        )
        anyq = "SELECT meta().id FROM _ WHERE ANY l IN likes SATISFIES l = 'l7' END"
        before_unnest = [r.to_list() for r in db.create_query(unnest).execute()]
        before_any = ids(db, anyq)
        assert len(before_unnest) == 100 and before_any == ["p007"]
        col.create_index("contactType", ArrayIndexConfiguration("contacts", ["type"]))
        col.create_index("likes", ArrayIndexConfiguration("likes"))
        query = db.create_query(unnest)
        assert "ix_" in query.explain() and "json_each" not in query.explain()
        assert [r.to_list() for r in query.execute()] == before_unnest
        assert "USING" in db.create_query(anyq).explain()
        assert ids(db, anyq) == before_any
        # kept up to date by writes
        doc = col.get("p007")
        assert doc is not None
        changed = doc.to_mutable()
        changed["likes"] = ["y"]
        col.save(changed)
        assert ids(db, anyq) == []
        col.save(MutableDocument("new", {"likes": ["l7"], "contacts": []}))
        assert ids(db, anyq) == ["new"]
        col.purge("new")
        assert ids(db, anyq) == []
        assert col.get_index("likes") == ArrayIndexConfiguration("likes")


def test_bad_match_terms_are_refused_with_the_problem(db: Database) -> None:
    col = db.default_collection()
    col.create_index("text", FullTextIndexConfiguration(["t"]))
    with pytest.raises(InvalidQueryError, match="MATCH terms"):
        db.create_query("SELECT meta().id FROM _ WHERE MATCH(text, '\"unclosed')")
    query = db.create_query("SELECT meta().id FROM _ WHERE MATCH(text, $q)")
    with pytest.raises(InvalidQueryError, match="MATCH terms"):
        query.parameters = {"q": "(pool"}
    query.parameters = {"q": "pool"}
    assert list(query.execute()) == []


def test_odd_values_never_make_a_document_impossible_to_store(db: Database) -> None:
    col = db.default_collection()
    col.create_index("regex", ValueIndexConfiguration(["REGEXP_LIKE(pattern, '(')"]))
    col.create_index("text", FullTextIndexConfiguration(["odd"], language="en"))
    odd = {"pattern": "x" * 10, "odd": {"deep": [[["ü" * 50, 1.5, None, True]]]}}
    col.save(MutableDocument("odd", odd))
    assert col.get("odd") is not None
    assert ids(db, "SELECT meta().id FROM _ WHERE MATCH(text, 'üüü*')") == ["odd"]


def test_a_language_without_a_stemmer_matches_words_as_they_are(db: Database) -> None:
    col = db.default_collection()
    col.create_index("text", FullTextIndexConfiguration(["t"], language="tlh"))
    col.save(MutableDocument("k", {"t": "Swimming the pools"}))
    assert ids(db, "SELECT meta().id FROM _ WHERE MATCH(text, 'the')") == ["k"]
    assert ids(db, "SELECT meta().id FROM _ WHERE MATCH(text, 'swim')") == []


def test_a_query_made_before_an_index_was_replaced_reads_the_new_one(db: Database) -> None:
    col = db.default_collection()
    col.save(MutableDocument("a", {"rooms": [{"k": "x"}], "tags": [{"k": "y"}]}))
    col.save(MutableDocument("b", {"rooms": [{"k": "y"}], "tags": [{"k": "x"}]}))
    col.create_index("ai", ArrayIndexConfiguration("rooms", ["k"]))
    query = db.create_query("SELECT meta().id FROM _ WHERE ANY r IN rooms SATISFIES r.k = 'x' END")
    assert [r["id"] for r in query.execute()] == ["a"]
    col.create_index("ai", ArrayIndexConfiguration("tags", ["k"]))
    assert [r["id"] for r in query.execute()] == ["a"]


def test_full_text_misuse_is_refused_when_the_query_is_created(db: Database) -> None:
    col = db.default_collection()
    col.create_index("text", FullTextIndexConfiguration(["t"]))
    for sql in (
        "SELECT meta().id FROM _ WHERE MATCH(text, 'a') OR n = 1",
        "SELECT meta().id FROM _ WHERE NOT MATCH(text, 'a')",
        "SELECT meta().id FROM _ WHERE MATCH(text, 'a') AND MATCH(text, 'b')",
        "SELECT RANK(text) FROM _",
        "SELECT MATCH(text, 'a') FROM _ WHERE MATCH(text, 'a')",
    ):
        with pytest.raises(InvalidQueryError):
            db.create_query(sql)


def test_an_index_cannot_depend_on_the_local_time_zone(db: Database) -> None:
    with pytest.raises(InvalidQueryError):
        db.default_collection().create_index("d", ValueIndexConfiguration(["MILLIS_TO_STR(n)"]))
    db.default_collection().create_index("u", ValueIndexConfiguration(["MILLIS_TO_UTC(n)"]))


def test_each_side_of_a_self_join_searches_its_own_text(db: Database) -> None:
    col = db.create_collection("sj", "t")
    col.create_index("ft", FullTextIndexConfiguration(["t"], language=None))
    for i in range(3):
        col.save(MutableDocument(f"s{i}", {"k": i, "t": f"word{i}"}))
    base = "SELECT a.k, b.k FROM t.sj AS a JOIN t.sj AS b ON a.k < 9 WHERE MATCH(a.ft, 'word1')"
    plain = sorted(r.to_list() for r in db.create_query(base).execute())
    assert plain == [[1, 0], [1, 1], [1, 2]]
    ranked = db.create_query(base.replace("SELECT a.k, b.k", "SELECT a.k, b.k, RANK(a.ft)"))
    assert sorted(r.to_list()[:2] for r in ranked.execute()) == plain
    for sql in (
        base.replace("SELECT a.k, b.k", "SELECT RANK(b.ft)"),
        base + " AND MATCH(_.ft, 'x')".replace("_.ft", "a.ft"),
        "SELECT k FROM t.sj WHERE MATCH(ft, 'x') AND MATCH(sj.ft, 'y')",
    ):
        with pytest.raises(InvalidQueryError):
            db.create_query(sql)
    both = db.create_query(
        "SELECT a.k, b.k FROM t.sj AS a JOIN t.sj AS b ON a.k < 9 "
        "WHERE MATCH(a.ft, 'word1') AND MATCH(b.ft, 'word2')"
    )
    assert [r.to_list() for r in both.execute()] == [[1, 2]]
