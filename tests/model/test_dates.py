"""``model.dates``: the ISO-8601 strings dates are stored as, and what is read back."""

from __future__ import annotations

import datetime as dt

import pytest

from couchlite.errors import InvalidArgumentError
from couchlite.model.dates import format_date, parse_date

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2024-01-02T03:04:05.120Z"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC), "2024-01-02T03:04:05.000001Z"),
        (
            dt.datetime(2024, 1, 2, tzinfo=dt.timezone(-dt.timedelta(hours=3, minutes=30))),
            "2024-01-02T00:00:00-03:30",
        ),
        (dt.datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00Z"),
        (dt.date(2024, 1, 2), "2024-01-02"),
    ],
)
def test_format_and_parse_back(value: dt.date, text: str) -> None:
    assert format_date(value) == text
    if isinstance(value, dt.datetime):
        assert parse_date(text) == value


def test_naive_and_second_offsets_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"naive.*'x'"):
        format_date(dt.datetime(2024, 1, 1), "x")
    odd = dt.timezone(dt.timedelta(seconds=30))
    with pytest.raises(InvalidArgumentError, match="seconds"):
        format_date(dt.datetime(2024, 1, 1, tzinfo=odd))


@pytest.mark.parametrize(
    "text",
    [
        None,
        5,
        "",
        "2024",
        "2024-13-01",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00+25:00",
        "2024-01-01Tnoon",
        "x" * 100,
    ],
)
def test_not_dates(text: object) -> None:
    assert parse_date(text) is None


def test_lenient_forms() -> None:
    expected = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert parse_date("2024-01-02 03:04:05.123456789Z") == expected
    assert parse_date("2024-01-02T03:04:05.123456+00:00") == expected
    assert parse_date("2024-01-02T04:04:05.123456+0100") == expected
    assert parse_date("2024-01-02T03:04Z") == expected.replace(second=0, microsecond=0)
