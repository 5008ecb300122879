"""The SQL functions a translated query calls: SQL++ semantics that SQLite lacks, over the values
of ``query.values``. Pure functions; ``storage`` registers them on every connection (an
expression index or a trigger that calls one must find it on whichever connection writes).

Every function takes and returns SQLite values in ``values``' encoding. Paths and patterns
arrive as constants of the query text, so their parsed forms are cached (bounded).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Final

import orjson

from couchlite import _tuning
from couchlite.query import fts
from couchlite.query.functions import FUNCTIONS
from couchlite.query.values import (
    FALSE,
    MISSING,
    NULL,
    TRUE,
    SqlValue,
    decode,
    encode,
    parse_container,
    path_value,
    truth,
)

__all__ = ["AGGREGATES", "SCALARS", "function_sql_name", "path_key"]

log = logging.getLogger("couchlite.query")

# one parsed body, shared by a row's paths: SQLite evaluates them one after another on one
# row, so the last body seen is nearly always the one asked for next (a tuple is replaced
# whole, so a reader on another thread sees a consistent pair, at worst a stale one it rejects)
_last: tuple[bytes, Any] = (b"", MISSING)


def _container(value: SqlValue) -> Any:
    global _last
    if type(value) is not bytes:
        return MISSING
    cached = _last
    if cached[0] is value or cached[0] == value:
        return cached[1]
    parsed = parse_container(value)
    _last = (value, parsed)
    return parsed


def path_key(steps: tuple[str | int, ...]) -> str:
    """The constant naming ``steps`` in the SQL text (the same steps, the same text: an index
    expression and a query's expression must be written identically to be matched)."""
    return orjson.dumps(list(steps)).decode()


@functools.lru_cache(maxsize=_tuning.QUERY_COMPILED_CACHE)
def _steps(key: str) -> tuple[str | int, ...]:
    return tuple(orjson.loads(key))


def cl_path(value: SqlValue, key: str) -> SqlValue:
    """The value at path ``key`` inside a body or an encoded array or object."""
    root = _container(value)
    if root is MISSING:
        return None
    return encode(path_value(root, _steps(key)))


def cl_doc(body: SqlValue) -> SqlValue:
    """A stored body as an encoded object (a tombstone or no row: MISSING)."""
    if type(body) is not bytes or not body:
        return None
    return encode(_container(body))


def cl_num(value: SqlValue) -> SqlValue:
    """``value`` as arithmetic sees it: null and false are 0, true is 1; strings are left for
    SQLite to convert (``'1' + 1`` is 2, ``'x' * 2`` is 0)."""
    if type(value) is not bytes:
        return value
    return 1 if value == TRUE else 0


def cl_truth(value: SqlValue) -> int | None:
    """SQL++ truthiness as SQLite's: 1, 0, or NULL for MISSING."""
    result = truth(decode(value))
    return None if result is None else int(result)


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def cl_concat(left: SqlValue, right: SqlValue) -> SqlValue:
    """``left || right``: MISSING if either is; null reads ``"null"``; arrays and objects null."""
    if left is None or right is None:
        return None
    a, b = _text(decode(left)), _text(decode(right))
    if a is None or b is None:
        return NULL
    return a + b


# A LIKE pattern as its runs between ``%``: each run a string and the positions in it that
# ``_`` leaves free. Matching finds each run at its leftmost place after the previous one, which
# is exact for these patterns and takes at most len(value) x len(pattern) steps (a backtracking
# regular expression can take exponentially many on ``%a%a%a...b``).
_Run = tuple[str, tuple[int, ...]]


@functools.lru_cache(maxsize=_tuning.QUERY_COMPILED_CACHE)
def _like_runs(pattern: str) -> tuple[_Run, ...] | None:
    """The runs of ``pattern``; None if it ends in a lone escape (it then matches nothing, as
    in SQLite)."""
    runs: list[_Run] = []
    chars: list[str] = []
    free: list[int] = []
    escaped = False
    for char in pattern:
        if escaped:
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            runs.append(("".join(chars), tuple(free)))
            chars, free = [], []
        elif char == "_":
            free.append(len(chars))
            chars.append("_")
        else:
            chars.append(char)
    if escaped:
        return None
    runs.append(("".join(chars), tuple(free)))
    return tuple(runs)


def _run_at(value: str, at: int, run: _Run) -> bool:
    text, free = run
    if not free:
        return value.startswith(text, at)
    if at + len(text) > len(value):
        return False
    return all(i in free or value[at + i] == char for i, char in enumerate(text))


def _find_run(value: str, run: _Run, start: int, stop: int) -> int:
    text, free = run
    if not free:
        return value.find(text, start, stop)
    for at in range(start, stop - len(text) + 1):
        if _run_at(value, at, run):
            return at
    return -1


def _like(value: str, pattern: str) -> bool:
    runs = _like_runs(pattern)
    if runs is None:
        return False
    first, last = runs[0], runs[-1]
    if len(runs) == 1:
        return len(value) == len(first[0]) and _run_at(value, 0, first)
    if not _run_at(value, 0, first):
        return False
    pos, tail = len(first[0]), len(value) - len(last[0])
    if tail < pos:
        return False
    for run in runs[1:-1]:
        found = _find_run(value, run, pos, tail)
        if found < 0:
            return False
        pos = found + len(run[0])
    return _run_at(value, tail, last)


def cl_like(value: SqlValue, pattern: SqlValue) -> int | None:
    """``value LIKE pattern``, case-sensitive as in Couchbase Lite (``\\`` escapes)."""
    if value is None or pattern is None:
        return None
    if type(value) is not str or type(pattern) is not str:
        return 0
    return 1 if _like(value, pattern) else 0


def cl_json_array(value: SqlValue) -> str | None:
    """The JSON text of the array ``value`` holds, for ``json_each``; NULL otherwise."""
    if type(value) is bytes and value[:1] == b"\x03":
        return value[5:].decode()  # past the kind and the number of items
    return None


def cl_each(kind: str | None, value: SqlValue) -> SqlValue:
    """One ``json_each`` row's value, encoded (``json_each`` gives SQLite's view of JSON)."""
    if kind is None:
        return None
    if kind == "null":
        return NULL
    if kind == "true":
        return TRUE
    if kind == "false":
        return FALSE
    if kind in ("array", "object"):
        assert isinstance(value, str)
        return encode(orjson.loads(value))
    return value


def cl_array(*items: SqlValue) -> SqlValue:
    """An array literal; a MISSING item is left out, as in a stored document."""
    return encode([decode(item) for item in items if item is not None])


def cl_object(*pairs: SqlValue) -> SqlValue:
    """An object literal from ``key, value, ...``; MISSING values are left out."""
    out = {}
    for i in range(0, len(pairs) - 1, 2):
        key, value = pairs[i], pairs[i + 1]
        if value is not None and isinstance(key, str):
            out[key] = decode(value)
    return encode(out)


def cl_index(value: SqlValue, index: SqlValue) -> SqlValue:
    """``value[index]`` with a computed index (or key)."""
    root = _container(value)
    step = decode(index)
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if root is MISSING or not isinstance(step, (str, int)) or isinstance(step, bool):
        return None
    return encode(path_value(root, (step,)))


def cl_fts_text(value: SqlValue, language: str | None, ignore_accents: int) -> Any:
    """The text a full-text index stores for a document's value of one indexed expression.

    Never raises: it runs in the triggers of every write, and no document (a peer's least of
    all) may become impossible to store because its text is odd."""
    try:
        return fts.index_text(decode(value), language or None, bool(ignore_accents))
    except Exception:
        log.warning("a full-text index could not process a value; it is not indexed")
        return None


def cl_fts_query(terms: SqlValue, language: str | None, ignore_accents: int) -> str:
    """A user's full-text terms as the processed index text is searched."""
    text = decode(terms)
    if not isinstance(text, str):
        return fts.MATCH_NOTHING
    try:
        return fts.match_query(text, language or None, bool(ignore_accents))
    except fts.FullTextQueryError:
        # terms given as text or parameters were checked before the query ran; computed
        # terms that are unusable match nothing
        return fts.MATCH_NOTHING


def cl_rank(matchinfo: bytes) -> float:
    return fts.rank(matchinfo)


class _ArrayAgg:
    """``ARRAY_AGG(x)``: the group's values (MISSING ones left out), in row order."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def step(self, value: SqlValue) -> None:
        if value is not None:
            self.items.append(decode(value))

    def finalize(self) -> SqlValue:
        return encode(self.items)


def function_sql_name(name: str) -> str:
    """The SQL name of SQL++ function ``name`` (a prefix keeps it clear of SQLite's own)."""
    return "cl_fn_" + name.lower()


def _library(name: str, fn: Callable[..., Any]) -> Callable[..., SqlValue]:
    # a function of the library never raises into SQLite: one may sit in an expression index,
    # where an exception would make a document impossible to store
    def call(*args: SqlValue) -> SqlValue:
        try:
            return encode(fn(*[decode(arg) for arg in args]))
        except Exception:
            log.warning("%s raised on its arguments; its value is null", name)
            return NULL

    return call


#: (SQL name, number of arguments (-1: any), function, deterministic)
SCALARS: Final[list[tuple[str, int, Callable[..., Any], bool]]] = [
    ("cl_path", 2, cl_path, True),
    ("cl_doc", 1, cl_doc, True),
    ("cl_num", 1, cl_num, True),
    ("cl_truth", 1, cl_truth, True),
    ("cl_concat", 2, cl_concat, True),
    ("cl_like", 2, cl_like, True),
    ("cl_json_array", 1, cl_json_array, True),
    ("cl_each", 2, cl_each, True),
    ("cl_array", -1, cl_array, True),
    ("cl_object", -1, cl_object, True),
    ("cl_index", 2, cl_index, True),
    ("cl_fts_text", 3, cl_fts_text, True),
    ("cl_fts_query", 3, cl_fts_query, True),
    ("cl_rank", 1, cl_rank, True),
    *(
        (function_sql_name(spec.name), -1, _library(spec.name, spec.fn), spec.deterministic)
        for spec in FUNCTIONS.values()
    ),
]

#: (SQL name, number of arguments, aggregate class)
AGGREGATES: Final[list[tuple[str, int, type]]] = [("cl_array_agg", 1, _ArrayAgg)]
