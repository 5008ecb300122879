"""Index configurations, and the SQLite objects that make each index.

* A value index is an SQLite expression index on the document table, over exactly the SQL
  that the translator writes for the same expressions, so a query's ``WHERE`` or ``ORDER BY``
  on them is answered from the index. SQLite keeps it up to date by itself.
* An array index is an element table (a row per item of the array at its path) kept by
  triggers, with an index over its expressions; ``UNNEST`` and ``ANY`` over the path read it.
* A full-text index is an FTS4 table keyed by document sequence, holding the processed text of
  each expression (``query.fts``), kept up to date by triggers on the document table, which
  fire for every write: saves, deletions, purges and replicated revisions alike. (The writer
  connection runs with ``recursive_triggers`` so that ``INSERT OR REPLACE`` fires the delete
  trigger of the row it replaces.)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from couchlite.errors import InvalidArgumentError, InvalidQueryError
from couchlite.query import ast, fts
from couchlite.query._expressions import Scope, Source, Translator, sql_literal
from couchlite.query.parser import parse_expression
from couchlite.query.udf import path_key

__all__ = [
    "ArrayIndexConfiguration",
    "FullTextIndexConfiguration",
    "IndexConfiguration",
    "IndexPlan",
    "ValueIndexConfiguration",
    "config_from_spec",
    "plan_index",
]


@dataclass(frozen=True)
class ValueIndexConfiguration:
    """A value index over SQL++ expressions (``["name.last", "age"]``); ``where`` makes it a
    partial index over the documents that satisfy it."""

    expressions: list[str]
    where: str | None = None

    kind = "value"

    def _spec(self) -> dict[str, Any]:
        return {"expressions": list(self.expressions), "where": self.where}


@dataclass(frozen=True)
class FullTextIndexConfiguration:
    """A full-text index over SQL++ expressions; ``language`` (e.g. ``"en"``, or None for no
    stemming and no stop words) and ``ignore_accents`` shape how words are matched."""

    expressions: list[str]
    language: str | None = "en"
    ignore_accents: bool = False
    where: str | None = field(default=None)

    kind = "fts"

    def _spec(self) -> dict[str, Any]:
        return {
            "expressions": list(self.expressions),
            "language": self.language,
            "ignore_accents": self.ignore_accents,
            "where": self.where,
        }


@dataclass(frozen=True)
class ArrayIndexConfiguration:
    """An index of the items of the array at property ``path`` (``"contacts"``): one entry per
    item, over ``expressions`` evaluated on the item (``["type", "address.city"]``), or on the
    item itself when there are none. ``UNNEST`` and ``ANY ... SATISFIES`` over that path use it."""

    path: str
    expressions: list[str] | None = None

    kind = "array"

    def _spec(self) -> dict[str, Any]:
        return {"path": self.path, "expressions": self.expressions}


IndexConfiguration = ValueIndexConfiguration | FullTextIndexConfiguration | ArrayIndexConfiguration


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """What creating one index takes: statements to run, in order, and to undo it."""

    kind: str
    spec: str  # the configuration, as JSON (what is stored, and read back)
    create: list[str]
    drop: list[str]
    #: the FTS table of a full-text index (what MATCH joins)
    side_table: str | None = None


def config_from_spec(kind: str, spec: str) -> IndexConfiguration:
    data = orjson.loads(spec)
    if kind == "value":
        return ValueIndexConfiguration(data["expressions"], data.get("where"))
    if kind == "array":
        return ArrayIndexConfiguration(data["path"], data.get("expressions"))
    return FullTextIndexConfiguration(
        data["expressions"],
        data.get("language"),
        bool(data.get("ignore_accents")),
        data.get("where"),
    )


#: what a full-text index's ``language`` may be: a language code, with a region or not
_LANGUAGE = re.compile(r"[A-Za-z]{2,16}(?:_[A-Za-z0-9]{2,8})?")


def object_name(coll_id: int, name: str, spec: str) -> str:
    """The name of the SQLite object behind index ``name`` with configuration ``spec``: a
    digest, so that any index name is safe, and of the configuration too, so that a query
    translated for an index that was since replaced under the same name fails (and is
    translated again) instead of reading the new index's table as if it were the old one."""
    digest = hashlib.sha1(f"{name}\x00{spec}".encode()).hexdigest()[:16]
    return f"ix_{int(coll_id)}_{digest}"


def _check(config: object, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("an index needs a non-empty name")
    if not isinstance(
        config, (ValueIndexConfiguration, FullTextIndexConfiguration, ArrayIndexConfiguration)
    ):
        raise InvalidArgumentError("not an index configuration")
    if isinstance(config, ArrayIndexConfiguration):
        if not isinstance(config.path, str) or not config.path:
            raise InvalidArgumentError("an array index needs the path of the array")
        if config.expressions is None:
            return
    exprs = config.expressions
    if (
        not isinstance(exprs, (list, tuple))
        or not exprs
        or not all(isinstance(e, str) for e in exprs)
    ):
        raise InvalidArgumentError("an index needs a list of expression strings")
    language = config.language if isinstance(config, FullTextIndexConfiguration) else None
    # a language is a code such as "en" or "en_US" (one without a stemmer means no stemming,
    # as in Couchbase Lite); nothing else may reach the SQL of the index's triggers
    if language is not None and not isinstance(language, str):
        raise InvalidArgumentError("a full-text index's language is a string, such as 'en'")
    if language and not _LANGUAGE.fullmatch(language):
        raise InvalidArgumentError(f"not a language code: {language!r}")


def _expressions(
    texts: list[str], condition: str | None, table: str, row: str
) -> tuple[list[str], str | None]:
    """The SQL of the expressions ``texts`` and of ``condition``, reading the columns of ``row``
    ("" for the table itself, ``new`` inside a trigger)."""
    source = Source("_", row, table, 0)
    tr = Translator(Scope([source]))
    try:
        exprs = [tr.value(parse_expression(text)) for text in texts]
        where = tr.condition(parse_expression(condition)) if condition else None
    except InvalidQueryError as exc:
        raise InvalidQueryError(f"bad index expression: {exc}") from exc
    if tr.scope.params or tr.scope.fts_joins or any("json_each" in e for e in exprs):
        raise InvalidQueryError("an index expression cannot use parameters, MATCH or ANY")
    return exprs, where


def plan_index(coll_id: int, table: str, name: str, config: IndexConfiguration) -> IndexPlan:
    _check(config, name)
    spec = orjson.dumps(config._spec()).decode()
    obj = object_name(coll_id, name, spec)
    if isinstance(config, ArrayIndexConfiguration):
        return _plan_array(obj, table, spec, config)
    if isinstance(config, ValueIndexConfiguration):
        exprs, where = _expressions(config.expressions, config.where, table, "")
        sql = f"CREATE INDEX {obj} ON {table} ({', '.join(exprs)})"
        if where:
            sql += f" WHERE {where}"
        return IndexPlan("value", spec, [sql], [f"DROP INDEX IF EXISTS {obj}"])
    lang = sql_literal(config.language) if config.language else "NULL"
    accents = int(config.ignore_accents)
    columns = [f"c{i}" for i in range(len(config.expressions))]

    def rows_of(row: str) -> str:
        exprs, where = _expressions(config.expressions, config.where, table, row)
        values = ", ".join(f"cl_fts_text({e}, {lang}, {accents})" for e in exprs)
        prefix, source = (f"{row}.", "") if row else ("", f" FROM {table}")
        live = f"({prefix}flags & 1) = 0"
        return f"SELECT {prefix}seq, {values}{source} WHERE {live}" + (
            f" AND {where}" if where else ""
        )

    create = [
        f"CREATE VIRTUAL TABLE {obj} USING fts4({', '.join(columns)}, tokenize={fts.TOKENIZER})"
    ]
    triggers, drop = _kept_by_triggers(
        obj, table, f"INSERT INTO {obj} (docid, {', '.join(columns)})", "docid", rows_of
    )
    return IndexPlan("fts", spec, create + triggers, drop, side_table=obj)


def _plan_array(obj: str, table: str, spec: str, config: ArrayIndexConfiguration) -> IndexPlan:
    """An element table (a row per array item: its document's sequence, its position, the item
    as ``body``) kept by triggers, and an index over the expressions on the items."""
    path = parse_expression(config.path)
    if not isinstance(path, ast.Path) or path.base is not None:
        raise InvalidQueryError(f"an array index path must be a property path: {config.path!r}")
    key = sql_literal(path_key(path.steps))

    def rows_of(row: str) -> str:
        doc, source = (row, "") if row else ("t", f" FROM {table} AS t,")
        items = f"json_each(cl_json_array(cl_path({doc}.body, {key}))) AS j"
        return (
            f"SELECT {doc}.seq, j.key, cl_each(j.type, j.value){source}"
            f"{' FROM' if row else ''} {items} WHERE ({doc}.flags & 1) = 0"
        )

    exprs, _ = _expressions(config.expressions or [], None, obj, "")
    create = [
        f"CREATE TABLE {obj} (seq INTEGER NOT NULL, pos INTEGER NOT NULL, body BLOB, "
        "PRIMARY KEY (seq, pos)) WITHOUT ROWID",
        f"CREATE INDEX {obj}_x ON {obj} ({', '.join(exprs) or 'body'})",
    ]
    triggers, drop = _kept_by_triggers(
        obj, table, f"INSERT INTO {obj} (seq, pos, body)", "seq", rows_of
    )
    return IndexPlan("array", spec, create + triggers, drop, side_table=obj)


def _kept_by_triggers(
    obj: str, table: str, insert: str, key: str, rows_of: Callable[[str], str]
) -> tuple[list[str], list[str]]:
    """The statements that fill side table ``obj`` from the live documents of ``table`` and
    keep it so: ``rows_of(row)`` selects the side rows of the document in ``row`` (``new`` in a
    trigger; "" for every live document), ``key`` is the side table's document sequence."""
    create = [
        f"{insert} {rows_of('')}",
        f"CREATE TRIGGER {obj}_ins AFTER INSERT ON {table} BEGIN {insert} {rows_of('new')}; END",
        f"CREATE TRIGGER {obj}_del AFTER DELETE ON {table} BEGIN "
        f"DELETE FROM {obj} WHERE {key} = old.seq; END",
        f"CREATE TRIGGER {obj}_upd AFTER UPDATE OF seq, flags, body ON {table} BEGIN "
        f"DELETE FROM {obj} WHERE {key} = old.seq; {insert} {rows_of('new')}; END",
    ]
    drop = [f"DROP TRIGGER IF EXISTS {obj}_{what}" for what in ("ins", "del", "upd")]
    return create, [*drop, f"DROP TABLE IF EXISTS {obj}"]
