"""The syntax tree of a SQL++ ``SELECT``: what the parser makes and the translator reads.

Every node records ``pos``, the offset in the query text where it starts, so that an error
found after parsing (an unknown collection or index) can still point at its place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ArrayLiteral",
    "Between",
    "Binary",
    "Call",
    "Case",
    "CollectionRef",
    "Expr",
    "In",
    "Is",
    "Join",
    "Literal",
    "Match",
    "Meta",
    "ObjectLiteral",
    "OrderTerm",
    "Param",
    "Path",
    "Quantified",
    "Rank",
    "ResultColumn",
    "Select",
    "Star",
    "Unary",
    "Unnest",
]


@dataclass(frozen=True, slots=True)
class Expr:
    pos: int


@dataclass(frozen=True, slots=True)
class Literal(Expr):
    """A number, string, ``TRUE``/``FALSE``, ``NULL`` (None) or ``MISSING`` (values.MISSING)."""

    value: Any


@dataclass(frozen=True, slots=True)
class ArrayLiteral(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ObjectLiteral(Expr):
    items: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Param(Expr):
    """``$name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Path(Expr):
    """A property path: ``steps`` (keys and literal array indexes) from ``base``.

    ``base`` None: the path starts at a name, which the translator resolves -- the first step
    may be a collection alias, an ``ANY``/``UNNEST`` variable, or a property of the document.
    """

    base: Expr | None
    steps: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Meta(Expr):
    """``meta([alias]).field``; ``field`` None is ``meta()`` itself (the whole dictionary)."""

    alias: str | None
    field: str | None


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # "NOT", "-", "+"
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str  # "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||", "AND", "OR", "LIKE"
    left: Expr
    right: Expr
    negated: bool = False  # NOT LIKE


@dataclass(frozen=True, slots=True)
class Is(Expr):
    operand: Expr
    kind: str  # "NULL", "MISSING", "VALUED", or "EXPR" (``a IS b``)
    negated: bool
    other: Expr | None = None


@dataclass(frozen=True, slots=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool


@dataclass(frozen=True, slots=True)
class In(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Case(Expr):
    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr | None


@dataclass(frozen=True, slots=True)
class Quantified(Expr):
    """``ANY | EVERY | ANY AND EVERY var IN source SATISFIES condition END``."""

    kind: str  # "ANY", "EVERY", "ANY AND EVERY"
    variable: str
    source: Expr
    condition: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A function call; ``star``: ``COUNT(*)``."""

    name: str  # upper case
    args: tuple[Expr, ...]
    star: bool = False


@dataclass(frozen=True, slots=True)
class Match(Expr):
    """``MATCH([alias.]index, terms)``."""

    alias: str | None
    index: str
    terms: Expr


@dataclass(frozen=True, slots=True)
class Rank(Expr):
    alias: str | None
    index: str


@dataclass(frozen=True, slots=True)
class Star(Expr):
    """``*`` or ``alias.*`` in the select list."""

    alias: str | None


@dataclass(frozen=True, slots=True)
class ResultColumn:
    expr: Expr
    alias: str | None


@dataclass(frozen=True, slots=True)
class CollectionRef:
    pos: int
    scope: str | None  # None: as written, without a scope
    name: str
    alias: str | None


@dataclass(frozen=True, slots=True)
class Join:
    collection: CollectionRef
    on: Expr | None
    left_outer: bool


@dataclass(frozen=True, slots=True)
class Unnest:
    pos: int
    source: Expr
    alias: str | None
    left_outer: bool


@dataclass(frozen=True, slots=True)
class OrderTerm:
    expr: Expr
    descending: bool


@dataclass(frozen=True, slots=True)
class Select:
    distinct: bool
    columns: tuple[ResultColumn, ...]
    source: CollectionRef | None
    joins: tuple[Join | Unnest, ...] = ()
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderTerm, ...] = ()
    limit: Expr | None = None
    offset: Expr | None = None
    #: every ``$name`` the query mentions, in order of first appearance
    params: tuple[str, ...] = field(default=())
