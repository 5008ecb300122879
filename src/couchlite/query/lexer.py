"""The tokens of SQL++ for Mobile: what the parser reads instead of characters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from couchlite import _tuning
from couchlite.errors import InvalidQueryError

__all__ = ["KEYWORDS", "Token", "tokenize"]

#: reserved words: never read as a name unless quoted with backticks
KEYWORDS: Final = frozenset(
    """ALL AND ANY AS ASC BETWEEN BY CASE COLLATE CROSS DESC DISTINCT ELSE END EVERY EXISTS FALSE
    FROM GROUP HAVING IN INNER IS JOIN LEFT LIKE LIMIT MISSING NOT NULL OFFSET ON OR ORDER OUTER
    SATISFIES SELECT SOME THEN TRUE UNNEST VALUED WHEN WHERE""".split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "name", "quoted" (a `name`), "keyword", "string", "number", "param", "op", "end"
    text: str  # keywords upper-cased; strings and quoted names unescaped
    pos: int
    value: int | float | None = None  # numbers


_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
    | (?P<name>[^\W\d]\w*)
    | (?P<param>\$\w+)
    | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<quoted>`(?:[^`]|``)*`)
    | (?P<op>\|\||==|!=|<>|<=|>=|[-+*/%=<>(),.\[\]{}:])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; InvalidQueryError where no token
    starts (an unterminated string, a stray character) or when the text is too long."""
    if len(text) > _tuning.QUERY_MAX_LENGTH:
        raise InvalidQueryError(
            f"the query is {len(text)} characters long; the limit is {_tuning.QUERY_MAX_LENGTH}"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidQueryError("the query is not valid Unicode", position=exc.start) from None
    tokens: list[Token] = []
    pos = 0
    end = len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            what = text[pos]
            problem = "unterminated string or name" if what in "'\"`" else f"unexpected {what!r}"
            raise InvalidQueryError(problem, position=pos)
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "number":
            value: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", raw, pos, value))
        elif kind == "name":
            upper = raw.upper()
            if upper in KEYWORDS:
                tokens.append(Token("keyword", upper, pos))
            else:
                tokens.append(Token("name", raw, pos))
        elif kind == "param":
            if raw[1:].upper() in KEYWORDS:  # as in Couchbase Lite's grammar: ``$missing``
                raise InvalidQueryError(f"a parameter cannot be named {raw[1:]!r}", position=pos)
            tokens.append(Token("param", raw[1:], pos))
        elif kind == "string":
            quote = raw[0]
            tokens.append(Token("string", raw[1:-1].replace(quote * 2, quote), pos))
        elif kind == "quoted":
            tokens.append(Token("quoted", raw[1:-1].replace("``", "`"), pos))
        elif kind == "op":
            tokens.append(Token("op", "!=" if raw == "<>" else "=" if raw == "==" else raw, pos))
        pos = m.end()
    tokens.append(Token("end", "", end))
    return tokens
