"""SQL++ queries and indexes: Couchbase Lite's query language over the SQLite store.

``parser`` (text to ``ast``), ``translate`` (``ast`` to one SQLite statement over
``values``' encoding), ``udf`` (the SQL functions those statements call), ``indexes`` (value
and full-text indexes), ``query`` (the public ``Query``/``ResultSet``/``Result``) and
``live`` (live queries).
"""

from __future__ import annotations

from couchlite.query.indexes import (
    ArrayIndexConfiguration,
    FullTextIndexConfiguration,
    ValueIndexConfiguration,
)
from couchlite.query.live import LiveResults, QueryChange
from couchlite.query.query import Query, Result, ResultSet

__all__ = [
    "ArrayIndexConfiguration",
    "FullTextIndexConfiguration",
    "LiveResults",
    "Query",
    "QueryChange",
    "Result",
    "ResultSet",
    "ValueIndexConfiguration",
]
