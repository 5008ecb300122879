"""Property: for random documents and random WHERE clauses, a query gives the same rows with
and without value indexes on the properties it reads (an index changes the plan, never the
answer), and ORDER BY on an indexed property gives the same order."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from couchlite import Database, DatabaseConfiguration, MutableDocument, ValueIndexConfiguration
from couchlite.query.udf import cl_like

KEYS = ("a", "b", "c")
scalars = st.one_of(
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(["", "x", "y", "Z", "xy"]),
    st.none(),
    st.booleans(),
)
values = st.one_of(scalars, st.lists(st.integers(-2, 2), max_size=3))
documents = st.lists(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=3), min_size=1, max_size=25
)


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


paths = st.sampled_from(KEYS)
comparisons = st.builds(
    lambda p, op, v: f"{p} {op} {literal(v)}",
    paths,
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    scalars,
)
tests = st.one_of(
    comparisons,
    st.builds(
        lambda p, k, n: f"{p} IS {'NOT ' if n else ''}{k}",
        paths,
        st.sampled_from(["NULL", "MISSING", "VALUED"]),
        st.booleans(),
    ),
    st.builds(
        lambda p, lo, hi: f"{p} BETWEEN {literal(lo)} AND {literal(hi)}",
        paths,
        st.integers(-5, 5),
        st.integers(-5, 5),
    ),
    st.builds(
        lambda p, items: f"({p} IN [{', '.join(map(literal, items))}])",
        paths,
        st.lists(scalars, min_size=1, max_size=3),
    ),
)
conditions = st.recursive(
    tests,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} AND {b})", inner, inner),
        st.builds(lambda a, b: f"({a} OR {b})", inner, inner),
        st.builds(lambda a: f"(NOT {a})", inner),
    ),
    max_leaves=4,
)


def rows(db: Database, sql: str) -> list[Any]:
    return [r.to_list() for r in db.create_query(sql).execute()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs=documents, where=conditions, order_key=paths)
def test_indexes_never_change_results(
    docs: list[dict[str, Any]], where: str, order_key: str
) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        Database("prop", DatabaseConfiguration(directory=Path(tmp))) as db,
    ):
        col = db.default_collection()
        with db.in_batch():
            for i, body in enumerate(docs):
                col.save(MutableDocument(f"d{i:02}", body))
        filtered = f"SELECT meta().id FROM _ WHERE {where}"
        ordered = f"SELECT meta().id, {order_key} FROM _ ORDER BY {order_key}, meta().id"
        before = sorted(rows(db, filtered))
        before_order = rows(db, ordered)
        for key in KEYS:
            col.create_index(f"by_{key}", ValueIndexConfiguration([key]))
        col.create_index("by_ab", ValueIndexConfiguration(["a", "b"]))
        assert sorted(rows(db, filtered)) == before, where
        assert rows(db, ordered) == before_order


def like_reference(value: str, pattern: str) -> bool:
    out, escaped = [], False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    if escaped:  # a lone escape at the end: SQLite's LIKE matches nothing
        return False
    return re.fullmatch("".join(out), value, re.DOTALL) is not None


@settings(max_examples=500, deadline=None)
@given(value=st.text("ab%_\\é", max_size=8), pattern=st.text("ab%_\\é", max_size=8))
def test_like_matches_as_its_regular_expression_would(value: str, pattern: str) -> None:
    assert bool(cl_like(value, pattern)) == like_reference(value, pattern)


def test_like_takes_linear_steps_where_backtracking_would_explode() -> None:
    assert cl_like("a" * 5000, "%a" * 40 + "%b") == 0
    assert cl_like("ab" * 2000, "%a_%" * 30) == 1
