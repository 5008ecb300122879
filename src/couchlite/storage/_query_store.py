"""The query half of ``SQLiteStore``: running translated queries on a reader connection, and
keeping the SQLite objects behind query indexes (see ``query.indexes``)."""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

import orjson

from couchlite.errors import CouchliteError, DatabaseError, InvalidQueryError
from couchlite.storage._connections import StoreConnections, translate
from couchlite.storage._query_functions import register_query_functions

__all__ = ["IndexRow", "QueryStore"]


class IndexRow(NamedTuple):
    coll_id: int
    name: str
    kind: str
    spec: str
    side_table: str | None


def _query_error(exc: sqlite3.Error, what: str) -> CouchliteError:
    if isinstance(exc, sqlite3.OperationalError) and "database is locked" not in str(exc):
        return InvalidQueryError(f"{what}: {exc}")
    return translate(exc, what)


class QueryStore(StoreConnections):
    """Queries and indexes, over the connections of a store."""

    def run_query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of the (translated) query ``sql``, read from one snapshot."""
        conn = self._reader()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _query_error(exc, "the query failed") from exc

    def explain_query(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """SQLite's plan for ``sql``: ``(id, parent, notused, detail)`` rows."""
        # on a connection of its own, opened for this: an EXPLAIN program never checks the
        # schema, so a statement cached by a long-lived connection would keep showing the plan
        # of before an index was created
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise translate(exc, "explaining the query") from exc
        try:
            register_query_functions(conn)
            return conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _query_error(exc, "the query cannot be compiled") from exc
        finally:
            conn.close()

    def check_query(self, sql: str, params: dict[str, Any]) -> None:
        """Let SQLite compile ``sql`` (``InvalidQueryError`` if it cannot), without running it."""
        conn = self._reader()
        try:
            conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _query_error(exc, "the query cannot be compiled") from exc

    def index_rows(self, coll_id: int | None = None) -> list[IndexRow]:
        """The indexes of one collection (or of all), by name."""
        where = "" if coll_id is None else f" WHERE coll = {int(coll_id)}"
        rows = self._fetchall(
            f"SELECT coll, name, kind, spec, side_table FROM indexes{where} ORDER BY coll, name"
        )
        return [IndexRow(*row) for row in rows]

    def create_index(
        self,
        coll_id: int,
        name: str,
        plan: tuple[str, str, list[str], list[str], str | None],
    ) -> bool:
        """Create index ``name`` from ``plan`` (kind, spec, create statements, drop statements,
        side table) in one transaction, replacing an index of that name with another
        configuration; False if the same index exists already (nothing is done)."""
        kind, spec, create, drop, side_table = plan

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT kind, spec, drop_sql FROM indexes WHERE coll = ? AND name = ?",
                (coll_id, name),
            ).fetchone()
            if row is not None:
                if row[0] == kind and row[1] == spec:
                    return False
                for statement in orjson.loads(row[2]):
                    conn.execute(statement)
            for statement in create:
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO indexes (coll, name, kind, spec, drop_sql, side_table) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (coll_id, name, kind, spec, orjson.dumps(drop).decode(), side_table),
            )
            return True

        try:
            return self._write(run)
        except DatabaseError as exc:
            raise InvalidQueryError(f"cannot create index {name!r}: {exc}") from exc

    def delete_index(self, coll_id: int, name: str) -> bool:
        """Drop index ``name``; False if there is none."""

        def run(conn: sqlite3.Connection) -> bool:
            return drop_indexes(conn, coll_id, name) > 0

        return self._write(run)


def drop_indexes(conn: sqlite3.Connection, coll_id: int, name: str | None = None) -> int:
    """Drop index ``name`` of a collection (all of them with None), on the writer's
    connection; the number dropped."""
    where, params = (
        ("coll = ?", (coll_id,)) if name is None else ("coll = ? AND name = ?", (coll_id, name))
    )
    rows = conn.execute(f"SELECT drop_sql FROM indexes WHERE {where}", params).fetchall()
    for (drop_sql,) in rows:
        for statement in orjson.loads(drop_sql):
            conn.execute(statement)
    conn.execute(f"DELETE FROM indexes WHERE {where}", params)
    return len(rows)
