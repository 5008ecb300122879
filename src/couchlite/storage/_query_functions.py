"""The SQL functions of queries and indexes, registered on every connection of a store: an
expression index or a full-text trigger calls them on whichever connection writes."""

from __future__ import annotations

import sqlite3

from couchlite.query.udf import AGGREGATES, SCALARS


def register_query_functions(conn: sqlite3.Connection) -> None:
    for name, nargs, fn, deterministic in SCALARS:
        conn.create_function(name, nargs, fn, deterministic=deterministic)
    for name, nargs, cls in AGGREGATES:
        conn.create_aggregate(name, nargs, cls)
