"""Dates: aware datetimes saved as ISO-8601 strings with their offset (``Z`` for UTC, as
Couchbase Lite writes them), dates as ``YYYY-MM-DD``, naive datetimes refused naming their
path; ``Document.get_date`` reads them back."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from couchlite import Database, InvalidArgumentError, MutableDocument

UTC = dt.UTC
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _saved(db: Database, props: dict[str, object]) -> dict[str, object]:
    col = db.default_collection()
    col.save(MutableDocument("d", props))
    stored: dict[str, object] = orjson.loads(col["d"].to_json())
    return stored


def test_aware_datetimes_and_dates_are_saved_as_iso_strings(db: Database) -> None:
    stored = _saved(
        db,
        {
            "utc": dt.datetime(2024, 3, 1, 12, 30, 5, 123000, tzinfo=UTC),
            "whole": dt.datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC),
            "india": dt.datetime(2024, 3, 1, 18, 0, tzinfo=IST),
            "west": dt.datetime(
                1999, 12, 31, 23, 59, 59, 5, tzinfo=dt.timezone(-dt.timedelta(hours=8))
            ),
            "day": dt.date(2024, 2, 29),
            "deep": [{"at": dt.datetime(2000, 1, 1, tzinfo=UTC)}],
        },
    )
    assert stored == {
        "utc": "2024-03-01T12:30:05.123Z",
        "whole": "2024-03-01T12:30:05Z",
        "india": "2024-03-01T18:00:00+05:30",
        "west": "1999-12-31T23:59:59.000005-08:00",
        "day": "2024-02-29",
        "deep": [{"at": "2000-01-01T00:00:00Z"}],
    }


def test_naive_datetime_is_refused_naming_its_path(db: Database) -> None:
    col = db.default_collection()
    doc = MutableDocument("d", {"a": {"b": [1, dt.datetime(2024, 1, 1)]}})
    with pytest.raises(InvalidArgumentError, match=r"naive datetime.*'a\.b\[1\]'"):
        col.save(doc)
    assert col.get("d") is None


def test_get_date_round_trips(db: Database) -> None:
    values = {
        "utc": dt.datetime(2024, 3, 1, 12, 30, 5, 123000, tzinfo=UTC),
        "india": dt.datetime(2024, 3, 1, 18, 0, tzinfo=IST),
        "micro": dt.datetime(2024, 3, 1, 0, 0, 0, 654321, tzinfo=UTC),
    }
    col = db.default_collection()
    col.save(MutableDocument("d", values))
    doc = col["d"]
    for key, value in values.items():
        got = doc.get_date(key)
        assert got == value and got is not None and got.utcoffset() == value.utcoffset()
    assert doc.get_date("missing") is None


def test_get_date_reads_what_couchbase_lite_writes_and_nothing_else(db: Database) -> None:
    col = db.default_collection()
    col.save(
        MutableDocument(
            "d",
            {
                "cbl": "2017-01-01T00:00:00.000Z",
                "compact_offset": "2017-01-01T01:00:00+0100",
                "local": "2017-01-01T08:00:00",
                "day": "2017-01-01",
                "word": "yesterday",
                "number": 1483228800000,
                "bad_day": "2017-02-30",
            },
        )
    )
    doc = col["d"]
    epoch = dt.datetime(2017, 1, 1, tzinfo=UTC)
    assert doc.get_date("cbl") == epoch
    assert doc.get_date("compact_offset") == epoch
    local = doc.get_date("local")
    assert local is not None and local.tzinfo is not None
    assert local.replace(tzinfo=None) == dt.datetime(2017, 1, 1, 8)  # local time, as in CBL
    day = doc.get_date("day")
    assert day is not None and day.replace(tzinfo=None) == dt.datetime(2017, 1, 1)
    assert doc.get_date("word") is None
    assert doc.get_date("number") is None
    assert doc.get_date("bad_day") is None


def test_mutable_document_keeps_date_objects_until_saved() -> None:
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    doc = MutableDocument("d", {"when": when, "list": [dt.date(2024, 5, 6)]})
    assert doc.get_date("when") is when
    copied = doc.to_dict()
    assert copied["when"] is when and copied["list"] == [dt.date(2024, 5, 6)]
    assert orjson.loads(doc.to_json()) == {
        "when": "2024-05-06T07:08:09Z",
        "list": ["2024-05-06"],
    }
    with pytest.raises(InvalidArgumentError, match="naive"):
        MutableDocument("n", {"t": dt.datetime(2024, 1, 1)}).to_json()
