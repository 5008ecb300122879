"""What a conflict resolver's answer becomes: the same JSON a local save would write."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from couchlite import Blob, Database, DatabaseConfiguration, InvalidArgumentError, MutableDocument
from couchlite.database._replication_callbacks import resolution_body


def test_a_resolved_document_holding_dates_and_blobs_is_encoded_as_a_save_would(
    tmp_path: Path,
) -> None:
    with Database("db", DatabaseConfiguration(directory=tmp_path)) as db:
        collection = db.default_collection()
        when = dt.datetime(2026, 12, 2, 9, 30, 15, 250000, tzinfo=dt.UTC)
        doc = MutableDocument("d", {"at": when, "blob": Blob("text/plain", b"hi")})
        body = resolution_body(doc, collection, "d")
        assert body is not None
        decoded = orjson.loads(body)
        assert decoded["at"] == "2026-12-02T09:30:15.250Z"
        assert decoded["blob"]["@type"] == "blob"
        collection.save(MutableDocument("saved", {"at": when}))
        saved = collection.get("saved")
        assert saved is not None and saved.to_dict()["at"] == decoded["at"]


def test_a_resolved_document_with_a_naive_date_is_refused(tmp_path: Path) -> None:
    with Database("db", DatabaseConfiguration(directory=tmp_path)) as db:
        doc = MutableDocument("d", {"at": dt.datetime(2026, 12, 2, 9, 30)})
        with pytest.raises(InvalidArgumentError, match=r"naive|time zone|offset"):
            resolution_body(doc, db.default_collection(), "d")
