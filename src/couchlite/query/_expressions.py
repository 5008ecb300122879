"""SQL++ expressions as SQLite expressions over ``query.values``' encoding.

Each expression translates two ways: ``value`` (the SQL++ value, encoded) and ``condition``
(its truth: 1, 0, or NULL for MISSING, which is what ``WHERE``, ``AND``, ``OR`` and ``NOT`` use).
Comparisons, logic, ``IN``, ``LIKE``, ``BETWEEN`` and ``IS`` give 1/0 both ways, as Couchbase
Lite's do; literals ``TRUE``/``FALSE``, stored booleans and boolean functions are JSON booleans
as values. Everything SQLite does natively (comparison, ordering, three-valued logic with
MISSING as NULL) stays native, so that expression indexes match and the planner can use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from couchlite.errors import InvalidQueryError
from couchlite.query import ast
from couchlite.query.functions import FUNCTIONS, KNOWN_UNSUPPORTED
from couchlite.query.udf import function_sql_name, path_key
from couchlite.query.values import MISSING, encode

__all__ = ["AGGREGATE_NAMES", "FtsJoin", "Scope", "Source", "Translator", "sql_literal"]

AGGREGATE_NAMES: Final = frozenset({"COUNT", "SUM", "AVG", "MIN", "MAX", "ARRAY_AGG"})
_BOOLEAN_NODES: Final = (ast.Is, ast.Between, ast.In, ast.Quantified, ast.Match)
_META_FIELDS: Final = ("id", "sequence", "revisionID", "deleted", "expiration")


@dataclass(slots=True)
class Source:
    """A collection the query reads, as the SQL names it."""

    alias: str  # its SQL++ alias
    sql: str  # its table alias in the SQL (``t0``); empty in an index definition
    table: str
    coll_id: int
    #: full-text indexes of the collection: name -> (FTS table, language, ignore accents)
    fts: dict[str, tuple[str, str | None, bool]] = field(default_factory=dict)
    #: array indexes: the path (``udf.path_key``) of an indexed array -> its element table
    unnest: dict[str, str] = field(default_factory=dict)
    wants_deleted: bool = False

    def column(self, name: str) -> str:
        return f"{self.sql}.{name}" if self.sql else name


@dataclass(slots=True)
class FtsJoin:
    sql: str  # its table alias
    table: str
    source: Source
    language: str | None
    ignore_accents: bool
    pos: int  # where the query first names it
    matches: int = 0  # MATCHes that search it (exactly one is what FTS can run)


@dataclass(slots=True)
class Scope:
    """What names mean where an expression is translated."""

    sources: list[Source]
    #: ANY/UNNEST variables: name -> SQL of its (encoded) value
    variables: dict[str, str] = field(default_factory=dict)
    #: ``$name`` -> SQL parameter name
    params: dict[str, str] = field(default_factory=dict)
    #: by (collection alias, index name): a self-join's two sides search separately
    fts_joins: dict[tuple[str, str], FtsJoin] = field(default_factory=dict)
    #: the terms of each MATCH given as text or a parameter, checked before the query runs:
    #: (the literal text or None, the parameter name or None, language, ignore accents)
    fts_terms: list[tuple[str | None, str | None, str | None, bool]] = field(default_factory=list)
    counter: int = 0

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def sql_literal(value: object) -> str:
    """A constant as SQL text, in ``values``' encoding."""
    encoded = encode(value)
    if encoded is None:
        return "NULL"
    if isinstance(encoded, bytes):
        return f"x'{encoded.hex()}'"
    if isinstance(encoded, str):
        if "\x00" in encoded:  # SQL text cannot hold a NUL; a blob read as text can
            return f"CAST(x'{encoded.encode().hex()}' AS TEXT)"
        return "'" + encoded.replace("'", "''") + "'"
    if isinstance(encoded, float):
        return repr(encoded)
    return str(encoded)


class Translator:
    """Translates expressions within one ``Scope``; ``aggregates_allowed`` in projections,
    ``HAVING`` and ``ORDER BY``."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.aggregates_allowed = False
        #: translating WHERE or a join's ON: where asking about meta().deleted means that
        #: deleted documents are wanted (as in Couchbase Lite; elsewhere it only reads 0)
        self.filtering = False

    # --- entry points ------------------------------------------------------------------------

    def value(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Literal):
            return sql_literal(e.value)
        if isinstance(e, ast.Path):
            return self._path(e)
        if isinstance(e, ast.Param):
            return self._param(e.name)
        if isinstance(e, ast.Meta):
            return self._meta(e)
        if isinstance(e, ast.Binary):
            return self._binary(e)
        if isinstance(e, ast.Unary):
            if e.op == "NOT":
                return f"(NOT {self.condition(e.operand)})"
            return f"(-{self._number(e.operand)})"
        if isinstance(e, ast.Quantified):
            return f"(CASE WHEN {self.condition(e)} THEN x'02' ELSE x'01' END)"
        if isinstance(e, _BOOLEAN_NODES):
            return self.condition(e)
        if isinstance(e, ast.Case):
            return self._case(e)
        if isinstance(e, ast.Call):
            return self._call(e)
        if isinstance(e, ast.ArrayLiteral):
            return f"cl_array({', '.join(self.value(i) for i in e.items)})"
        if isinstance(e, ast.ObjectLiteral):
            parts = [f"{sql_literal(k)}, {self.value(v)}" for k, v in e.items]
            return f"cl_object({', '.join(parts)})"
        if isinstance(e, ast.Rank):
            join = self._fts(e.alias, e.index, e.pos)
            return f"cl_rank(matchinfo({join.sql}.{join.table}, 'pcx'))"
        if isinstance(e, ast.Star):
            raise InvalidQueryError("* is only allowed in the select list", position=e.pos)
        raise InvalidQueryError("unsupported expression", position=e.pos)

    def condition(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Literal) and isinstance(e.value, bool):
            return "1" if e.value else "0"
        if isinstance(e, ast.Binary) and (e.op in ("AND", "OR", "LIKE") or _is_comparison(e)):
            return self._binary(e)
        if isinstance(e, ast.Unary) and e.op == "NOT":
            return f"(NOT {self.condition(e.operand)})"
        if isinstance(e, ast.Is):
            return self._is(e)
        if isinstance(e, ast.Between):
            neg = "NOT " if e.negated else ""
            return (
                f"({self.value(e.operand)} {neg}BETWEEN {self.value(e.low)} "
                f"AND {self.value(e.high)})"
            )
        if isinstance(e, ast.In):
            if not e.items:
                return "1" if e.negated else "0"
            neg = "NOT " if e.negated else ""
            values = [self.value(i) for i in e.items]
            for item in e.items:  # a stored boolean is in [1] as it equals 1
                flag = _boolean_of(item)
                if flag is not None:
                    values.append(flag)
            operand = self._comparable(e.operand, e.items)
            return f"({operand} {neg}IN ({', '.join(values)}))"
        if isinstance(e, ast.Quantified):
            return self._quantified(e)
        if isinstance(e, ast.Match):
            join = self._fts(e.alias, e.index, e.pos)
            join.matches += 1
            if join.matches > 1:
                raise InvalidQueryError(f"{e.index} is searched twice", position=e.pos)
            terms = self.value(e.terms)
            text = e.terms.value if isinstance(e.terms, ast.Literal) else None
            param = e.terms.name if isinstance(e.terms, ast.Param) else None
            if isinstance(text, str) or param is not None:
                checked = (text if isinstance(text, str) else None, param)
                self.scope.fts_terms.append((*checked, join.language, join.ignore_accents))
            lang = sql_literal(join.language) if join.language else "NULL"
            return (
                f"({join.sql}.{join.table} MATCH cl_fts_query({terms}, {lang}, "
                f"{int(join.ignore_accents)}))"
            )
        return f"cl_truth({self.value(e)})"

    # --- pieces ------------------------------------------------------------------------------

    def _param(self, name: str) -> str:
        sql = self.scope.params.get(name)
        if sql is None:
            sql = self.scope.params[name] = f":p{len(self.scope.params)}"
        return sql

    def _source(self, alias: str | None, pos: int) -> Source:
        if alias is None:
            return self.scope.sources[0]
        for source in self.scope.sources:
            if source.alias == alias:
                return source
        raise InvalidQueryError(f"unknown collection alias {alias!r}", position=pos)

    def element_table(self, e: ast.Expr) -> tuple[Source, str] | None:
        """The source and element table of an array index over the array ``e`` reads, if
        ``e`` is a document's property path that one covers."""
        if not isinstance(e, ast.Path) or e.base is not None:
            return None
        first, steps = e.steps[0], e.steps
        if isinstance(first, str) and first in self.scope.variables:
            return None
        source = self.scope.sources[0]
        for candidate in self.scope.sources:
            if candidate.alias == first and len(steps) > 1:
                source, steps = candidate, steps[1:]
                break
        table = source.unnest.get(path_key(steps))
        return None if table is None else (source, table)

    def _path(self, e: ast.Path) -> str:
        if e.base is not None:
            return _at(self.value(e.base), e.steps)
        first, rest = e.steps[0], e.steps[1:]
        if isinstance(first, str):
            variable = self.scope.variables.get(first)
            if variable is not None:
                return _at(variable, rest)
            if len(self.scope.sources) and any(s.alias == first for s in self.scope.sources):
                source = self._source(first, e.pos)
                if not rest:
                    return f"cl_doc({source.column('body')})"
                return _at(source.column("body"), rest)
        return _at(self.scope.sources[0].column("body"), e.steps)

    def _meta(self, e: ast.Meta) -> str:
        source = self._source(e.alias, e.pos)
        if e.field is None:
            parts = [f"'{name}', {_meta_field(source, name)}" for name in _META_FIELDS]
            return f"cl_object({', '.join(parts)})"
        if e.field not in _META_FIELDS:
            raise InvalidQueryError(f"meta() has no property {e.field!r}", position=e.pos)
        if e.field == "deleted" and self.filtering:
            source.wants_deleted = True
        return _meta_field(source, e.field)

    def _comparable(self, e: ast.Expr, others: tuple[ast.Expr, ...]) -> str:
        """``e`` as an operand of a comparison with ``others``. ``meta().id``, ``revisionID``
        and ``sequence`` are columns, written with a unary ``+`` so that no column affinity
        converts the other side (``meta().id = 17`` compares a string with a number); the
        plain column, whose index the planner can use, is kept where affinity cannot change
        the outcome: against literals of the column's own type."""
        sql = self.value(e)
        if not (isinstance(e, ast.Meta) and sql.startswith("+")):
            return sql
        kind = int if e.field == "sequence" else str
        if others and all(isinstance(o, ast.Literal) and type(o.value) is kind for o in others):
            return sql[1:]
        return sql

    def _number(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Literal) and type(e.value) in (int, float):
            return self.value(e)
        if isinstance(e, ast.Binary) and e.op in ("+", "-", "*", "/", "%"):
            return self.value(e)
        return f"cl_num({self.value(e)})"

    def _binary(self, e: ast.Binary) -> str:
        op = e.op
        if op in ("AND", "OR"):
            return f"({self.condition(e.left)} {op} {self.condition(e.right)})"
        if op in ("+", "-", "*", "/", "%"):
            return f"({self._number(e.left)} {op} {self._number(e.right)})"
        if op == "||":
            return f"cl_concat({self.value(e.left)}, {self.value(e.right)})"
        if op == "LIKE":
            like = f"cl_like({self.value(e.left)}, {self.value(e.right)})"
            return f"(NOT {like})" if e.negated else like
        left = self._comparable(e.left, (e.right,))
        right = self._comparable(e.right, (e.left,))
        if op in ("=", "!="):
            # meta().deleted is the number 1 or 0, and equals TRUE or FALSE
            for meta, literal, other in ((e.left, e.right, left), (e.right, e.left, right)):
                if (
                    isinstance(meta, ast.Meta)
                    and meta.field == "deleted"
                    and isinstance(literal, ast.Literal)
                    and isinstance(literal.value, bool)
                ):
                    return f"({other} {op} {int(literal.value)})"
            # a stored boolean equals the number 1 or 0 (``free_breakfast = 1``)
            for number, other in ((e.right, left), (e.left, right)):
                flag = _boolean_of(number)
                if flag is not None:
                    neg = "NOT " if op == "!=" else ""
                    return f"({other} {neg}IN ({self.value(number)}, {flag}))"
        if (
            op == "="
            and isinstance(e.left, ast.Meta)
            and isinstance(e.right, ast.Param)
            and e.left.field in ("id", "revisionID")
            and left.startswith("+")
        ):
            # the column and its index, and no affinity: only a string can equal an ID (and an
            # unbound parameter, NULL, keeps the comparison MISSING)
            return f"({left[1:]} = {right} AND nullif(typeof({right}), 'null') = 'text')"
        return f"({left} {op} {right})"

    def _is(self, e: ast.Is) -> str:
        v = self.value(e.operand)
        if e.kind == "NULL":
            return f"({v} IS {'NOT ' if e.negated else ''}x'00')"
        if e.kind == "MISSING":
            return f"({v} IS {'NOT ' if e.negated else ''}NULL)"
        if e.kind == "VALUED":
            return f"coalesce({v} IN (x'00'), 1)" if e.negated else f"coalesce({v} != x'00', 0)"
        assert e.other is not None
        return f"({v} IS {'NOT ' if e.negated else ''}{self.value(e.other)})"

    def _case(self, e: ast.Case) -> str:
        parts = ["CASE"]
        if e.operand is not None:
            parts.append(self.value(e.operand))
            for when, then in e.whens:
                parts.append(f"WHEN {self.value(when)} THEN {self.value(then)}")
        else:
            for when, then in e.whens:
                parts.append(f"WHEN {self.condition(when)} THEN {self.value(then)}")
        # no ELSE: null, not MISSING (as Couchbase Lite)
        otherwise = self.value(e.otherwise) if e.otherwise is not None else "x'00'"
        parts.append(f"ELSE {otherwise} END")
        return "(" + " ".join(parts) + ")"

    def _quantified(self, e: ast.Quantified) -> str:
        each = self.scope.fresh("q")
        indexed = self.element_table(e.source) if e.kind == "ANY" else None
        source = f"json_each(cl_json_array({self.value(e.source)})) AS {each}"
        saved = self.scope.variables.get(e.variable)
        variable = f"{each}.body" if indexed else f"cl_each({each}.type, {each}.value)"
        self.scope.variables[e.variable] = variable
        try:
            cond = self.condition(e.condition)
        finally:
            if saved is None:
                del self.scope.variables[e.variable]
            else:
                self.scope.variables[e.variable] = saved
        if indexed is not None:
            # the array index's element table answers it (and its index, for the condition)
            owner, table = indexed
            return f"({owner.column('seq')} IN (SELECT seq FROM {table} AS {each} WHERE {cond}))"
        any_sql = f"EXISTS (SELECT 1 FROM {source} WHERE {cond})"
        every_sql = f"NOT EXISTS (SELECT 1 FROM {source} WHERE ({cond}) IS NOT 1)"
        if e.kind == "ANY":
            return f"({any_sql})"
        if e.kind == "EVERY":
            return f"({every_sql})"
        return f"(EXISTS (SELECT 1 FROM {source}) AND {every_sql})"

    def _call(self, e: ast.Call) -> str:
        name = e.name
        if name == "$INDEX":
            return f"cl_index({self.value(e.args[0])}, {self.value(e.args[1])})"
        if name in AGGREGATE_NAMES and (e.star or len(e.args) == 1):
            if not self.aggregates_allowed:
                raise InvalidQueryError(
                    f"{name}() is an aggregate and cannot be used here", position=e.pos
                )
            if e.star:
                return "count(*)"
            self.aggregates_allowed = False  # no aggregate inside an aggregate
            try:
                arg = self.value(e.args[0])
            finally:
                self.aggregates_allowed = True
            if name == "COUNT":
                return f"count(nullif({arg}, x'00'))"
            if name in ("SUM", "AVG"):
                return f"coalesce({name.lower()}(cl_num(nullif({arg}, x'00'))), x'00')"
            if name in ("MIN", "MAX"):
                return f"{name.lower()}(nullif({arg}, x'00'))"
            return f"cl_array_agg({arg})"
        spec = FUNCTIONS.get(name)
        if spec is None:
            why = "is not supported" if name in KNOWN_UNSUPPORTED else "is not a function"
            raise InvalidQueryError(f"{name} {why}", position=e.pos)
        count = len(e.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            raise InvalidQueryError(
                f"{name} takes {_arity(spec.min_args, spec.max_args)}, not {count}",
                position=e.pos,
            )
        args = ", ".join(self.value(a) for a in e.args)
        return f"{function_sql_name(name)}({args})"

    def _fts(self, alias: str | None, index: str, pos: int) -> FtsJoin:
        sources = [self._source(alias, pos)] if alias is not None else self.scope.sources
        for source in sources:
            found = source.fts.get(index)
            if found is not None:
                key = (source.alias, index)
                join = self.scope.fts_joins.get(key)
                if join is None:
                    table, language, ignore_accents = found
                    join = FtsJoin(
                        self.scope.fresh("f"), table, source, language, ignore_accents, pos
                    )
                    self.scope.fts_joins[key] = join
                return join
        raise InvalidQueryError(f"there is no full-text index {index!r}", position=pos)


def _meta_field(source: Source, name: str) -> str:
    if name == "deleted":
        return f"({source.column('flags')} & 1)"
    if name == "expiration":  # stored in seconds, read in milliseconds
        return f"CAST(round({source.column('expiration')} * 1000) AS INTEGER)"
    column = {"id": "doc_id", "sequence": "seq", "revisionID": "rev"}[name]
    # unary +: no column affinity, so that meta().id = 17 compares a string with a number
    return f"+{source.column(column)}"


def _at(base: str, steps: tuple[str | int, ...]) -> str:
    if not steps:
        return base
    return f"cl_path({base}, {sql_literal(path_key(steps))})"


def _boolean_of(e: ast.Expr) -> str | None:
    """The stored boolean that equals ``e`` if it is the number 1 or 0 (as SQL text)."""
    if isinstance(e, ast.Literal) and type(e.value) is int:
        return {1: "x'02'", 0: "x'01'"}.get(e.value)
    return None


def _is_comparison(e: ast.Binary) -> bool:
    return e.op in ("=", "!=", "<", "<=", ">", ">=")


def _arity(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


def is_constant(e: ast.Expr) -> bool:
    """Whether ``e`` reads no document (a literal, or made only of literals)."""
    if isinstance(e, ast.Literal):
        return e.value is not MISSING
    if isinstance(e, ast.ArrayLiteral):
        return all(is_constant(i) for i in e.items)
    return False
