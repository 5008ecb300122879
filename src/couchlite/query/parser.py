"""SQL++ for Mobile's grammar: a recursive-descent parser for statements and a precedence-
climbing one for expressions, from tokens to the tree of ``query.ast``.

Precedence, loosest first: ``OR``; ``AND``; ``NOT``; comparisons (``= != < <= > >= LIKE IN IS
BETWEEN``); ``||``; ``+ -``; ``* / %``; unary minus; then paths (``.name``, ``[index]``).
"""

from __future__ import annotations

from typing import Final

from couchlite import _tuning
from couchlite.errors import InvalidQueryError
from couchlite.query import ast
from couchlite.query.lexer import Token, tokenize
from couchlite.query.values import MISSING

__all__ = ["parse", "parse_expression"]

_COMPARISONS: Final = frozenset({"=", "!=", "<", "<=", ">", ">="})
_OR_BP, _AND_BP, _NOT_BP, _CMP_BP, _CONCAT_BP, _ADD_BP, _MUL_BP, _UNARY_BP = range(1, 9)
_BINARY: Final = {
    "||": _CONCAT_BP,
    "+": _ADD_BP,
    "-": _ADD_BP,
    "*": _MUL_BP,
    "/": _MUL_BP,
    "%": _MUL_BP,
}
_QUANTIFIERS: Final = frozenset({"ANY", "SOME", "EVERY"})


def parse(text: str) -> ast.Select:
    """The tree of the ``SELECT`` statement ``text``; InvalidQueryError naming the offset of the
    first problem."""
    return _Parser(text).statement()


def parse_expression(text: str) -> ast.Expr:
    """The tree of one expression (an index's expressions are written this way)."""
    parser = _Parser(text)
    expr = parser.expression()
    parser.expect_end()
    return expr


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        #: parenthesis depth at which the innermost clause began (see _in_list)
        self.clause_depth = 0
        self.parens = 0
        self.params: list[str] = []

    # --- tokens ------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.text in words

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def accept_kw(self, word: str) -> bool:
        if self.is_kw(word):
            self.i += 1
            return True
        return False

    def accept_op(self, op: str) -> bool:
        if self.is_op(op):
            self.i += 1
            return True
        return False

    def fail(self, problem: str, tok: Token | None = None) -> InvalidQueryError:
        tok = tok or self.tok
        found = "the end of the query" if tok.kind == "end" else repr(tok.text)
        return InvalidQueryError(f"{problem}, found {found}", position=tok.pos)

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.fail(f"expected {word}")
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if not self.is_op(op):
            raise self.fail(f"expected {op!r}")
        return self.advance()

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            raise self.fail("unexpected text after the query")

    def name(self, what: str = "a name") -> str:
        if self.tok.kind in ("name", "quoted"):
            return self.advance().text
        raise self.fail(f"expected {what}")

    # --- statement ---------------------------------------------------------------------------

    def statement(self) -> ast.Select:
        self.expect_kw("SELECT")
        distinct = self.accept_kw("DISTINCT")
        if not distinct:
            self.accept_kw("ALL")
        columns = [self.result_column()]
        while self.accept_op(","):
            columns.append(self.result_column())
        source = None
        joins: list[ast.Join | ast.Unnest] = []
        if self.accept_kw("FROM"):
            source = self.collection_ref()
            while (join := self.join()) is not None:
                joins.append(join)
        where = self.clause_expression() if self.accept_kw("WHERE") else None
        group_by: list[ast.Expr] = []
        having = None
        if self.accept_kw("GROUP"):
            self.expect_kw("BY")
            group_by.append(self.clause_expression())
            while self.accept_op(","):
                group_by.append(self.clause_expression())
            if self.accept_kw("HAVING"):
                having = self.clause_expression()
        order_by: list[ast.OrderTerm] = []
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            order_by.append(self.order_term())
            while self.accept_op(","):
                order_by.append(self.order_term())
        limit = self.clause_expression() if self.accept_kw("LIMIT") else None
        offset = self.clause_expression() if self.accept_kw("OFFSET") else None
        self.expect_end()
        return ast.Select(
            distinct=distinct,
            columns=tuple(columns),
            source=source,
            joins=tuple(joins),
            where=where,
            group_by=tuple(group_by),
            having=having,
            order_by=tuple(order_by),
            limit=limit,
            offset=offset,
            params=tuple(dict.fromkeys(self.params)),
        )

    def result_column(self) -> ast.ResultColumn:
        tok = self.tok
        if self.accept_op("*"):
            return ast.ResultColumn(ast.Star(tok.pos, None), None)
        if (
            tok.kind in ("name", "quoted")
            and self.peek().text == "."
            and self.peek(2).kind == "op"
            and self.peek(2).text == "*"
        ):
            self.i += 3
            return ast.ResultColumn(ast.Star(tok.pos, tok.text), None)
        expr = self.clause_expression()
        # (a column alias needs AS: Couchbase Lite refuses ``SELECT id x``)
        alias = self.name("an alias") if self.accept_kw("AS") else None
        return ast.ResultColumn(expr, alias)

    def collection_ref(self) -> ast.CollectionRef:
        tok = self.tok
        first = self.name("a collection")
        scope, name = None, first
        if self.is_op(".") and self.peek().kind in ("name", "quoted"):
            self.advance()
            scope, name = first, self.name("a collection")
        alias = None
        if self.accept_kw("AS"):
            alias = self.name("an alias")
        elif self.tok.kind in ("name", "quoted"):
            alias = self.advance().text
        return ast.CollectionRef(tok.pos, scope, name, alias)

    def join(self) -> ast.Join | ast.Unnest | None:
        left_outer = False
        if self.is_kw("LEFT"):
            self.advance()
            self.accept_kw("OUTER")
            left_outer = True
        elif self.is_kw("INNER", "CROSS"):
            cross = self.advance().text == "CROSS"
            if cross and not self.is_kw("JOIN"):
                raise self.fail("expected JOIN")
        elif not self.is_kw("JOIN", "UNNEST"):
            return None
        if self.is_kw("UNNEST"):
            pos = self.advance().pos
            source = self.expression()
            alias = None
            if self.accept_kw("AS"):
                alias = self.name("an alias")
            elif self.tok.kind in ("name", "quoted"):
                alias = self.advance().text
            return ast.Unnest(pos, source, alias, left_outer)
        self.expect_kw("JOIN")
        ref = self.collection_ref()
        on = self.clause_expression() if self.accept_kw("ON") else None
        if on is None and left_outer:
            raise self.fail("a LEFT JOIN needs ON")
        return ast.Join(ref, on, left_outer)

    def order_term(self) -> ast.OrderTerm:
        expr = self.clause_expression()
        descending = False
        if self.accept_kw("DESC"):
            descending = True
        else:
            self.accept_kw("ASC")
        return ast.OrderTerm(expr, descending)

    # --- expressions -------------------------------------------------------------------------

    def clause_expression(self) -> ast.Expr:
        saved = self.clause_depth
        self.clause_depth = self.parens
        try:
            return self.expression()
        finally:
            self.clause_depth = saved

    def expression(self, min_bp: int = 0) -> ast.Expr:
        self.depth += 1
        if self.depth > _tuning.QUERY_MAX_DEPTH:
            raise InvalidQueryError(
                f"the query nests deeper than {_tuning.QUERY_MAX_DEPTH} levels",
                position=self.tok.pos,
            )
        try:
            left = self.prefix()
            while True:
                nxt = self.infix(left, min_bp)
                if nxt is None:
                    return left
                left = nxt
        finally:
            self.depth -= 1

    def infix(self, left: ast.Expr, min_bp: int) -> ast.Expr | None:
        tok = self.tok
        if tok.kind == "keyword":
            word = tok.text
            if word == "OR" and min_bp < _OR_BP:
                self.advance()
                return ast.Binary(left.pos, "OR", left, self.expression(_OR_BP))
            if word == "AND" and min_bp < _AND_BP:
                self.advance()
                return ast.Binary(left.pos, "AND", left, self.expression(_AND_BP))
            if min_bp >= _CMP_BP:
                return None
            negated = False
            if word == "NOT" and self.peek().kind == "keyword":
                if self.peek().text not in ("LIKE", "IN", "BETWEEN"):
                    return None
                self.advance()
                negated = True
                word = self.tok.text
            if word == "LIKE":
                self.advance()
                right = self.expression(_CMP_BP)
                return ast.Binary(left.pos, "LIKE", left, right, negated)
            if word == "IN":
                self.advance()
                return ast.In(left.pos, left, self.in_list(), negated)
            if word == "BETWEEN":
                self.advance()
                low = self.expression(_CMP_BP)
                self.expect_kw("AND")
                high = self.expression(_CMP_BP)
                return ast.Between(left.pos, left, low, high, negated)
            if word == "IS":
                self.advance()
                negated = self.accept_kw("NOT")
                for kind in ("NULL", "MISSING", "VALUED"):
                    if self.accept_kw(kind):
                        return ast.Is(left.pos, left, kind, negated)
                other = self.expression(_CMP_BP)
                return ast.Is(left.pos, left, "EXPR", negated, other)
            return None
        if tok.kind != "op":
            return None
        op = tok.text
        if op in _COMPARISONS and min_bp < _CMP_BP:
            self.advance()
            return ast.Binary(left.pos, op, left, self.expression(_CMP_BP))
        bp = _BINARY.get(op)
        if bp is not None and min_bp < bp:
            self.advance()
            return ast.Binary(left.pos, op, left, self.expression(bp))
        return None

    def in_list(self) -> tuple[ast.Expr, ...]:
        # SQL++ for Mobile takes only a literal list here; ``x IN likes`` is refused by
        # Couchbase Lite, and so is an unparenthesized ``IN [...]`` right before ORDER BY or
        # END (its grammar reads those keywords as part of the list's expression)
        close = "]" if self.is_op("[") else ")" if self.is_op("(") else None
        if close is None:
            raise self.fail("IN takes a literal list: [a, b, ...]")
        self.advance()
        self.parens += 1
        items: list[ast.Expr] = []
        if not self.is_op(close):
            items.append(self.expression())
            while self.accept_op(","):
                items.append(self.expression())
        self.parens -= 1
        self.expect_op(close)
        if self.parens == self.clause_depth and self.is_kw("ORDER", "END"):
            raise self.fail("put the IN [...] in parentheses before this")
        return tuple(items)

    def prefix(self) -> ast.Expr:
        tok = self.advance()
        kind, text = tok.kind, tok.text
        if kind == "number":
            assert tok.value is not None
            return self.postfix(ast.Literal(tok.pos, tok.value))
        if kind == "string":
            return self.postfix(ast.Literal(tok.pos, text))
        if kind == "param":
            self.params.append(text)
            return self.postfix(ast.Param(tok.pos, text))
        if kind == "keyword":
            if text == "NOT":
                return ast.Unary(tok.pos, "NOT", self.expression(_NOT_BP))
            if text in ("TRUE", "FALSE"):
                return self.postfix(ast.Literal(tok.pos, text == "TRUE"))
            if text == "NULL":
                return ast.Literal(tok.pos, None)
            if text == "MISSING":
                return ast.Literal(tok.pos, MISSING)
            if text == "CASE":
                return self.postfix(self.case(tok))
            if text in _QUANTIFIERS:
                return self.quantified(tok)
            raise self.fail("expected an expression", tok)
        if kind == "op":
            if text == "-":
                operand = self.expression(_UNARY_BP)
                if isinstance(operand, ast.Literal) and type(operand.value) in (int, float):
                    return ast.Literal(tok.pos, -operand.value)
                return ast.Unary(tok.pos, "-", operand)
            if text == "+":
                return self.expression(_UNARY_BP)
            if text == "(":
                self.parens += 1
                inner = self.expression()
                self.parens -= 1
                self.expect_op(")")
                return self.postfix(inner)
            if text == "[":
                items: list[ast.Expr] = []
                self.parens += 1
                if not self.is_op("]"):
                    items.append(self.expression())
                    while self.accept_op(","):
                        items.append(self.expression())
                self.parens -= 1
                self.expect_op("]")
                return self.postfix(ast.ArrayLiteral(tok.pos, tuple(items)))
            if text == "{":
                return self.postfix(self.object_literal(tok))
            raise self.fail("expected an expression", tok)
        if kind in ("name", "quoted"):
            if kind == "name" and self.is_op("("):
                return self.postfix(self.call(tok))
            return self.postfix(ast.Path(tok.pos, None, (text,)))
        raise self.fail("expected an expression", tok)

    def postfix(self, expr: ast.Expr) -> ast.Expr:
        while True:
            if self.is_op(".") and self.peek().kind in ("name", "quoted", "keyword"):
                self.advance()
                expr = _extend(expr, self.advance().text)
            elif self.is_op("["):
                if isinstance(expr, ast.Param):
                    raise self.fail("a parameter cannot be indexed")
                self.advance()
                self.parens += 1
                index = self.expression()
                self.parens -= 1
                self.expect_op("]")
                if isinstance(index, ast.Literal) and type(index.value) is int:
                    expr = _extend(expr, index.value)
                else:
                    expr = ast.Call(expr.pos, "$INDEX", (expr, index))
            else:
                return expr

    def case(self, tok: Token) -> ast.Expr:
        operand = None if self.is_kw("WHEN") else self.expression()
        whens: list[tuple[ast.Expr, ast.Expr]] = []
        while self.accept_kw("WHEN"):
            cond = self.expression()
            self.expect_kw("THEN")
            whens.append((cond, self.expression()))
        if not whens:
            raise self.fail("expected WHEN")
        otherwise = self.expression() if self.accept_kw("ELSE") else None
        self.expect_kw("END")
        return ast.Case(tok.pos, operand, tuple(whens), otherwise)

    def quantified(self, tok: Token) -> ast.Expr:
        kind = "EVERY" if tok.text == "EVERY" else "ANY"
        if kind == "ANY" and self.is_kw("AND") and self.peek().text == "EVERY":
            self.i += 2
            kind = "ANY AND EVERY"
        variable = self.name("a variable")
        self.expect_kw("IN")
        source = self.expression(_CMP_BP)
        self.expect_kw("SATISFIES")
        saved = self.clause_depth
        self.clause_depth = self.parens
        condition = self.expression()
        self.clause_depth = saved
        self.expect_kw("END")
        return ast.Quantified(tok.pos, kind, variable, source, condition)

    def object_literal(self, tok: Token) -> ast.Expr:
        items: list[tuple[str, ast.Expr]] = []
        self.parens += 1
        if not self.is_op("}"):
            while True:
                if self.tok.kind != "string":
                    raise self.fail("expected a string key")
                key = self.advance().text
                self.expect_op(":")
                items.append((key, self.expression()))
                if not self.accept_op(","):
                    break
        self.parens -= 1
        self.expect_op("}")
        return ast.ObjectLiteral(tok.pos, tuple(items))

    def call(self, tok: Token) -> ast.Expr:
        name = tok.text.upper()
        self.expect_op("(")
        self.parens += 1
        try:
            if name == "META":
                alias = None if self.is_op(")") else self.name("a collection alias")
                self.expect_op(")")
                if self.is_op(".") and self.peek().kind in ("name", "quoted"):
                    self.advance()
                    return ast.Meta(tok.pos, alias, self.advance().text)
                return ast.Meta(tok.pos, alias, None)
            if name in ("MATCH", "RANK"):
                first = self.name("a full-text index")
                alias = None
                if self.accept_op("."):
                    alias, first = first, self.name("a full-text index")
                if name == "RANK":
                    self.expect_op(")")
                    return ast.Rank(tok.pos, alias, first)
                self.expect_op(",")
                terms = self.expression()
                self.expect_op(")")
                return ast.Match(tok.pos, alias, first, terms)
            if name == "COUNT" and self.is_op("*"):
                self.advance()
                self.expect_op(")")
                return ast.Call(tok.pos, name, (), star=True)
            if self.is_kw("DISTINCT"):
                raise self.fail("DISTINCT is not supported in a function call")
            args: list[ast.Expr] = []
            if not self.is_op(")"):
                args.append(self.expression())
                while self.accept_op(","):
                    args.append(self.expression())
            self.expect_op(")")
            return ast.Call(tok.pos, name, tuple(args))
        finally:
            self.parens -= 1


def _extend(expr: ast.Expr, step: str | int) -> ast.Expr:
    if isinstance(expr, ast.Path):
        return ast.Path(expr.pos, expr.base, (*expr.steps, step))
    return ast.Path(expr.pos, expr, (step,))
