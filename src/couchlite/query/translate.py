"""A parsed SQL++ ``SELECT`` as one SQLite statement, with the names of its result columns.

The statement reads each collection's document table (``kv_<id>``: ``seq``, ``doc_id``,
``rev``, ``flags``, ``body``, ``expiration``), skipping tombstones unless the query asks about
``meta().deleted``; ``UNNEST`` and ``ANY`` walk arrays with SQLite's ``json_each`` (or read
the element table of an array index over that array); ``MATCH``
joins the full-text index's FTS4 table on the document's sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from couchlite.errors import InvalidQueryError
from couchlite.query import ast
from couchlite.query._expressions import Scope, Source, Translator

__all__ = ["Catalog", "CollectionInfo", "Column", "Compiled", "translate"]


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    coll_id: int
    scope: str
    name: str
    table: str
    #: full-text indexes: name -> (FTS table, language, ignore accents)
    fts: dict[str, tuple[str, str | None, bool]]
    #: array indexes: indexed array path (``udf.path_key``) -> element table
    unnest: dict[str, str]


class Catalog(Protocol):
    """What the translator may ask about the database."""

    def find_collection(self, scope: str, name: str) -> CollectionInfo | None: ...


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    #: "value": an encoded value; "doc": a stored body (``*``), NULL for no document
    kind: str


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    columns: tuple[Column, ...]
    #: ``$name`` -> the SQL parameter it is bound to
    params: dict[str, str]
    #: the collections the query reads (what a live query watches)
    collections: tuple[int, ...]
    #: MATCH terms to check: (literal text or None, parameter or None, language, ignore accents)
    fts_terms: tuple[tuple[str | None, str | None, str | None, bool], ...] = ()


def translate(select: ast.Select, catalog: Catalog) -> Compiled:
    _check_full_text(select)
    sources: list[Source] = []
    main_ref = select.source or ast.CollectionRef(0, None, "_", None)
    sources.append(_source(main_ref, catalog, 0))
    for join in select.joins:
        if isinstance(join, ast.Join):
            sources.append(_source(join.collection, catalog, len(sources)))
    aliases = [s.alias for s in sources]
    if len(set(aliases)) != len(aliases):
        raise InvalidQueryError("two collections have the same alias", position=main_ref.pos)
    scope = Scope(sources)
    tr = Translator(scope)

    # FROM and its joins
    main = sources[0]
    # (join keyword, source or None, the rest of the clause): tombstone filters are added at the
    # end, once it is known whether any expression asked about meta().deleted
    from_parts: list[tuple[str, Source | None, str]] = []
    next_source = 1
    for join in select.joins:
        if isinstance(join, ast.Join):
            source = sources[next_source]
            next_source += 1
            tr.filtering = True
            on = tr.condition(join.on) if join.on is not None else "1"
            tr.filtering = False
            kind = "LEFT JOIN" if join.left_outer else "JOIN"
            from_parts.append((kind, source, f"{source.table} AS {source.sql} ON ({on})"))
        else:
            each = scope.fresh("u")
            kind = "LEFT JOIN" if join.left_outer else "JOIN"
            name = join.alias or _default_name(join.source) or each
            indexed = tr.element_table(join.source)
            if indexed is not None:  # an array index holds the items, indexed
                owner, table = indexed
                on = f"{table} AS {each} ON {each}.seq = {owner.sql}.seq"
                from_parts.append((kind, None, on))
                scope.variables[name] = f"{each}.body"
            else:
                source_sql = tr.value(join.source)
                clause = f"json_each(cl_json_array({source_sql})) AS {each} ON 1"
                from_parts.append((kind, None, clause))
                scope.variables[name] = f"cl_each({each}.type, {each}.value)"

    # columns (after the joins, so that UNNEST variables are known)
    tr.aggregates_allowed = True
    columns: list[Column] = []
    column_sql: list[str] = []
    by_alias: dict[str, str] = {}
    unnamed = 0
    seen: dict[str, int] = {}
    explicit: set[str] = set()
    for col in select.columns:
        expr = col.expr
        if isinstance(expr, ast.Star):
            source = tr._source(expr.alias, expr.pos)
            sql, kind, name = source.column("body"), "doc", col.alias or source.alias
        else:
            sql, kind = tr.value(expr), "value"
            if isinstance(expr, ast.Param):
                # as Couchbase Lite reads a boolean parameter back: the number 1.0 or 0.0
                sql = f"(CASE {sql} WHEN x'02' THEN 1.0 WHEN x'01' THEN 0.0 ELSE {sql} END)"
            name = col.alias or _default_name(expr) or ""
            if not name:
                unnamed += 1
                name = f"${unnamed}"
        if col.alias is not None:
            if col.alias in explicit:
                raise InvalidQueryError(f"duplicate alias {col.alias!r}", position=expr.pos)
            explicit.add(col.alias)
            by_alias[col.alias] = sql
        count = seen.get(name, 0) + 1
        seen[name] = count
        columns.append(Column(name if count == 1 else f"{name} #{count}", kind))
        column_sql.append(sql)
    tr.aggregates_allowed = False

    tr.filtering = True
    where = tr.condition(select.where) if select.where is not None else None
    tr.filtering = False
    group = [tr.value(g) for g in select.group_by]
    tr.aggregates_allowed = True
    having = tr.condition(select.having) if select.having is not None else None
    order = []
    for term in select.order_by:
        sql = _alias_ref(term.expr, by_alias) or tr.value(term.expr)
        order.append(sql + (" DESC" if term.descending else ""))
    tr.aggregates_allowed = False
    # a count as SQLite needs one: an integer, never negative (a negative LIMIT would mean
    # none in SQLite; Couchbase Lite returns no rows); MISSING (an unbound parameter): no bound
    limit = (
        f"coalesce(max(0, CAST(cl_num({tr.value(select.limit)}) AS INTEGER)), -1)"
        if select.limit is not None
        else None
    )
    offset = (
        f"coalesce(max(0, CAST(cl_num({tr.value(select.offset)}) AS INTEGER)), 0)"
        if select.offset is not None
        else None
    )

    for fts in scope.fts_joins.values():
        if not fts.matches:
            raise InvalidQueryError(
                "RANK of a full-text index needs a MATCH of it in WHERE", position=fts.pos
            )
        on = f"{fts.table} AS {fts.sql} ON {fts.sql}.docid = {fts.source.sql}.seq"
        from_parts.append(("JOIN", None, on))
    conditions = [_live(main)] if not main.wants_deleted else []
    if where is not None:
        conditions.append(where)
    from_sql = f"{main.table} AS {main.sql}"
    for kind, joined, clause in from_parts:
        live = f" AND {_live(joined)}" if joined is not None and not joined.wants_deleted else ""
        from_sql += f" {kind} {clause}{live}"

    parts = ["SELECT DISTINCT" if select.distinct else "SELECT", ", ".join(column_sql)]
    parts.append(f"FROM {from_sql}")
    if conditions:
        parts.append("WHERE " + " AND ".join(conditions))
    if group:
        parts.append("GROUP BY " + ", ".join(group))
    if having is not None:
        parts.append("HAVING " + having)
    if order:
        parts.append("ORDER BY " + ", ".join(order))
    if limit is not None or offset is not None:
        parts.append(f"LIMIT {limit if limit is not None else -1}")
        if offset is not None:
            parts.append(f"OFFSET {offset}")
    return Compiled(
        " ".join(parts),
        tuple(columns),
        dict(scope.params),
        tuple(dict.fromkeys(s.coll_id for s in sources)),
        tuple(scope.fts_terms),
    )


def _source(ref: ast.CollectionRef, catalog: Catalog, index: int) -> Source:
    scope, name = ref.scope, ref.name
    if scope is None and name == "_":
        scope, name, default_alias = "_default", "_default", "_"
    elif scope is None:
        scope, default_alias = "_default", name
    else:
        default_alias = name
    found = catalog.find_collection(scope, name)
    if found is None:
        raise InvalidQueryError(f"there is no collection {scope}.{name}", position=ref.pos)
    return Source(
        ref.alias or default_alias, f"t{index}", found.table, found.coll_id, found.fts, found.unnest
    )


def _live(source: Source) -> str:
    return f"({source.sql}.flags & 1) = 0"


def _default_name(expr: ast.Expr) -> str | None:
    """Couchbase Lite's name for an unaliased column: a path's last key, a meta property."""
    if isinstance(expr, ast.Path) and isinstance(expr.steps[-1], str):
        return expr.steps[-1]
    if isinstance(expr, ast.Meta) and expr.field is not None:
        return expr.field
    return None


def _alias_ref(expr: ast.Expr, by_alias: dict[str, str]) -> str | None:
    if isinstance(expr, ast.Path) and expr.base is None and len(expr.steps) == 1:
        step = expr.steps[0]
        if isinstance(step, str):
            return by_alias.get(step)
    return None


def _check_full_text(select: ast.Select) -> None:
    """Refuse, when the query is created, a MATCH anywhere but in the WHERE clause's top-level
    ``AND``s, which SQLite's full-text search cannot run. (Two MATCHes of one index, and a RANK
    of an index no MATCH searches, are refused as the query is translated.)"""
    allowed: list[ast.Match] = []
    if select.where is not None:
        conjuncts = [select.where]
        while conjuncts:
            e = conjuncts.pop()
            if isinstance(e, ast.Binary) and e.op == "AND":
                conjuncts += [e.left, e.right]
            elif isinstance(e, ast.Match):
                allowed.append(e)
    for node in _nodes(select):
        if isinstance(node, ast.Match) and not any(node is m for m in allowed):
            raise InvalidQueryError(
                "MATCH must be one of the conditions ANDed in WHERE", position=node.pos
            )


def _nodes(select: ast.Select) -> list[ast.Expr]:
    """Every expression node of the statement (iteratively: no recursion to exhaust)."""
    roots: list[object] = [c.expr for c in select.columns]
    roots += [select.where, select.having, select.limit, select.offset, *select.group_by]
    roots += [t.expr for t in select.order_by]
    for join in select.joins:
        roots.append(join.on if isinstance(join, ast.Join) else join.source)
    found: list[ast.Expr] = []
    stack = [r for r in roots if isinstance(r, ast.Expr)]
    while stack:
        node = stack.pop()
        found.append(node)
        for name in node.__slots__:
            child = getattr(node, name)
            children = child if isinstance(child, tuple) else (child,)
            for item in children:
                pairs = item if isinstance(item, tuple) else (item,)
                stack.extend(x for x in pairs if isinstance(x, ast.Expr))
    return found
