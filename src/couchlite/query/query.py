"""``Query``, ``ResultSet`` and ``Result``: SQL++ queries over a database, Couchbase Lite's API.

A query is parsed, translated and checked by SQLite when it is created (so that a bad query
fails there, as in Couchbase Lite); ``execute()`` then only binds the parameters and runs the
prepared SQL, which SQLite keeps in its statement cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, overload

import orjson

from couchlite.errors import InvalidArgumentError, InvalidQueryError
from couchlite.query import ast, fts
from couchlite.query.live import LiveQuery, LiveResults, QueryChange
from couchlite.query.parser import parse, parse_expression
from couchlite.query.translate import CollectionInfo, Column, Compiled, translate
from couchlite.query.udf import path_key
from couchlite.query.values import MISSING, decode, encode

if TYPE_CHECKING:
    from couchlite.database.changes import ListenerToken
    from couchlite.database.collection import Collection
    from couchlite.database.database import Database
    from couchlite.database.engine import Engine

__all__ = ["Query", "Result", "ResultSet"]


class _Catalog:
    """The translator's view of a database: its collections and their full-text indexes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def find_collection(self, scope: str, name: str) -> CollectionInfo | None:
        for state in list(self._engine.collections.values()):
            if state.scope == scope and state.name == name and not state.dropped:
                fts: dict[str, tuple[str, str | None, bool]] = {}
                unnest: dict[str, str] = {}
                for row in self._engine.store.index_rows(state.id):
                    if row.kind == "fts" and row.side_table:
                        fts[row.name] = _fts_info(row.spec, row.side_table)
                    elif row.kind == "array" and row.side_table:
                        path = parse_expression(orjson.loads(row.spec)["path"])
                        if isinstance(path, ast.Path):
                            unnest.setdefault(path_key(path.steps), row.side_table)
                return CollectionInfo(state.id, scope, name, f"kv_{state.id}", fts, unnest)
        return None


def _fts_info(spec: str, table: str | None) -> tuple[str, str | None, bool]:
    data = orjson.loads(spec)
    assert table is not None
    return table, data.get("language"), bool(data.get("ignore_accents"))


class Result:
    """One row: indexable by column name (``r["name"]``) or position (``r[0]``).

    A column whose value is MISSING is absent: ``r["x"]`` raises ``KeyError`` and ``get``
    returns the default; by position it reads ``None``, as ``to_list()`` does.
    """

    __slots__ = ("_columns", "_index", "_row")

    def __init__(self, columns: tuple[Column, ...], index: dict[str, int], row: tuple[Any, ...]):
        self._columns = columns
        self._index = index
        self._row = row

    def _value(self, i: int) -> Any:
        raw = self._row[i]
        if self._columns[i].kind == "doc":
            return MISSING if raw is None else orjson.loads(raw)
        return decode(raw)

    @overload
    def __getitem__(self, key: int) -> Any: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            raw = self._row[key]
            if raw is None:
                return None
            if type(raw) is not bytes:  # a number or a string: as SQLite gave it
                return raw
            value = self._value(key)
            return None if value is MISSING else value
        i = self._index.get(key)
        value = MISSING if i is None else self._value(i)
        if value is MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """The value of column ``key``, or ``default`` when it is MISSING or not a column."""
        i = self._index.get(key)
        value = MISSING if i is None else self._value(i)
        return default if value is MISSING else value

    def __contains__(self, key: object) -> bool:
        i = self._index.get(key) if isinstance(key, str) else None
        return i is not None and self._row[i] is not None

    def keys(self) -> list[str]:
        """The names of the columns that have a value."""
        return [c.name for c, raw in zip(self._columns, self._row, strict=True) if raw is not None]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._columns)

    def to_dict(self) -> dict[str, Any]:
        """The row as a dictionary of the columns that have a value."""
        out = {}
        for i, column in enumerate(self._columns):
            value = self._value(i)
            if value is not MISSING:
                out[column.name] = value
        return out

    def to_list(self) -> list[Any]:
        """The row's values in column order (``None`` for MISSING)."""
        return [self[i] for i in range(len(self._columns))]

    def to_json(self) -> str:
        """The row as JSON text (the columns that have a value)."""
        return orjson.dumps(self.to_dict()).decode()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Result({self.to_dict()!r})"


class ResultSet:
    """The rows of one execution of a query, in order; iterate it as often as needed."""

    __slots__ = ("_columns", "_index", "_rows")

    def __init__(self, columns: tuple[Column, ...], rows: list[tuple[Any, ...]]) -> None:
        self._columns = columns
        self._index = {c.name: i for i, c in enumerate(columns)}
        self._rows = rows

    @property
    def column_names(self) -> list[str]:
        """The names of the columns, in order (Couchbase Lite's naming: a path's last key,
        ``$1``, ``$2``... for unnamed expressions, ``name #2`` for a repeated name)."""
        return [c.name for c in self._columns]

    def __iter__(self) -> Iterator[Result]:
        columns, index = self._columns, self._index
        return (Result(columns, index, row) for row in self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def all_results(self) -> list[Result]:
        """Every row, as a list."""
        return list(self)

    def _same_rows(self, other: ResultSet) -> bool:
        return self._rows == other._rows

    def __repr__(self) -> str:
        return f"<ResultSet of {len(self._rows)} rows: {self.column_names}>"


class Query:
    """A SQL++ query of one database: ``db.create_query("SELECT ...")``."""

    def __init__(self, database: Database, sql: str) -> None:
        if not isinstance(sql, str):
            raise InvalidArgumentError("a query is a string")
        self._database = database
        engine = self._engine = database._engine_or_raise()
        self._text = sql
        try:
            self._select = parse(sql)
            self._compiled = self._compile()
        except RecursionError:  # a chain of thousands of operators, say
            raise InvalidQueryError("the query is too deeply nested") from None
        self._parameters: dict[str, Any] = {}
        self._check_terms({})
        self._bound = self._bind({})
        engine.store.check_query(self._compiled.sql, self._bound)  # SQLite's own checks
        self._lock = threading.Lock()
        self._live: Any = None

    def _compile(self) -> Compiled:
        return translate(self._select, _Catalog(self._engine))

    def _bind(self, values: dict[str, Any]) -> dict[str, Any]:
        # (the SQL names the parameter ``:pN``; sqlite3 binds it by ``pN``)
        return {
            sql[1:]: encode(values[name]) if name in values else None
            for name, sql in self._compiled.params.items()
        }

    def _check_terms(self, values: dict[str, Any]) -> None:
        """Refuse full-text terms that cannot be searched for, naming the problem (SQLite would
        only say that a function failed)."""
        for text, param, language, ignore_accents in self._compiled.fts_terms:
            terms = text if param is None else values.get(param)
            if isinstance(terms, str):
                try:
                    fts.match_query(terms, language, ignore_accents)
                except fts.FullTextQueryError as exc:
                    raise InvalidQueryError(f"MATCH terms {terms!r}: {exc}") from exc

    @property
    def text(self) -> str:
        """The SQL++ text the query was made from."""
        return self._text

    @property
    def column_names(self) -> list[str]:
        """The names the result columns will have."""
        return [c.name for c in self._compiled.columns]

    @property
    def parameters(self) -> dict[str, Any]:
        """The values of the ``$name`` parameters (a copy; assign a new dict to change them).
        A parameter the query uses but that has no value is MISSING."""
        return dict(self._parameters)

    @parameters.setter
    def parameters(self, values: dict[str, Any] | None) -> None:
        values = dict(values or {})
        for name, value in values.items():
            if not isinstance(name, str):
                raise InvalidArgumentError("parameter names are strings")
            try:
                orjson.dumps(value)  # JSON only, and text that is valid Unicode
            except TypeError as exc:
                raise InvalidArgumentError(f"parameter {name!r}: {exc}") from exc
        self._check_terms(values)
        self._parameters = values
        self._bound = self._bind(values)
        live = self._live
        if live is not None:
            live.changed()

    def execute(self) -> ResultSet:
        """Run the query on the last committed state of the database."""
        compiled, bound = self._compiled, self._bound
        store = self._database._engine_or_raise().store
        try:
            rows = store.run_query(compiled.sql, bound)
        except InvalidQueryError:
            # an index it used may have been deleted since: translate again, once
            self._compiled = compiled = self._compile()
            self._check_terms(self._parameters)
            self._bound = bound = self._bind(self._parameters)
            rows = store.run_query(compiled.sql, bound)
        return ResultSet(compiled.columns, rows)

    def explain(self) -> str:
        """The SQL the query runs and SQLite's plan for it (shows which indexes are used)."""
        rows = self._engine.store.explain_query(self._compiled.sql, self._bound)
        depth: dict[int, int] = {}
        lines = [self._compiled.sql, ""]
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return "\n".join(lines) + "\n"

    def _read_collections(self) -> list[Collection]:
        engine = self._database._engine_or_raise()
        found = []
        for coll_id in self._compiled.collections:
            state = engine.collections.get(coll_id)
            collection = (
                None if state is None else self._database.collection(state.name, state.scope)
            )
            if collection is not None:
                found.append(collection)
        return found

    def add_change_listener(self, fn: Callable[[QueryChange], None]) -> ListenerToken:
        """Make this a live query: ``fn(QueryChange)`` gets the current results soon (on the
        query's own thread), then the new results after each commit to a collection the query
        reads that changes them. ``token.remove()`` stops it."""
        with self._lock:
            if self._live is None:
                self._live = LiveQuery(self, self._read_collections())
            live: LiveQuery = self._live
        return live.add(fn)

    def live_results(self) -> LiveResults:
        """``async for results in query.live_results()``: the results now, then whenever they
        change (the asyncio form of :meth:`add_change_listener`)."""
        return LiveResults(self)

    def _database_closed(self) -> bool:
        engine = self._database._engine
        return engine is None or engine.closed

    def __repr__(self) -> str:
        return f"<Query {self._text!r}>"
