"""Dates in documents: ISO-8601 strings, as Couchbase Lite stores them.

JSON has no date type; Couchbase Lite (``MutableDocument.setDate``, Fleece's date formatting)
stores a date as an ISO-8601 string and ``Document.getDate`` parses one back. Here:

* an aware ``datetime`` is written ``YYYY-MM-DDTHH:MM:SS``, then the fraction of a second
  when there is one (three digits for whole milliseconds, as Couchbase Lite writes them, six
  when the value has microseconds: no precision is lost), then its offset -- ``Z`` when it is
  zero (UTC), as Couchbase Lite writes it, else ``+HH:MM``;
* a naive ``datetime`` is refused: it names no instant, and every reader of the document
  (another device, Sync Gateway, a query) would have to guess its time zone;
* a ``date`` is written ``YYYY-MM-DD``: a calendar date, the date-only ISO-8601 form that
  Couchbase Lite's date parsing and query functions accept.

:func:`parse_date` reads what Couchbase Lite's date parser reads: a full date-time with ``Z``,
an offset (``+HH:MM`` or ``+HHMM``) or none, a space instead of the ``T``, any number of
fractional digits, or a date alone. As there, a string without an offset is in local time.
"""

from __future__ import annotations

import datetime as dt
import re

from couchlite.errors import InvalidArgumentError

_DATE_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)"
    r"(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?"
    r"\s*(Z|z|[+-]\d\d(?::?\d\d)?)?)?",
    re.ASCII,
)


def format_date(value: dt.date, path: str = "") -> str:
    """The ISO-8601 string a ``datetime`` or ``date`` is stored as (see the module docstring);
    ``InvalidArgumentError`` naming ``path`` for a naive ``datetime``."""
    if not isinstance(value, dt.datetime):
        return value.isoformat()
    offset = value.utcoffset()
    where = f" at {path!r}" if path else ""
    if offset is None:
        raise InvalidArgumentError(
            f"naive datetime {value.isoformat()}{where}: give it a time zone "
            "(e.g. datetime.now(timezone.utc)) so that it names one instant everywhere"
        )
    minutes, rest = divmod(offset, dt.timedelta(minutes=1))
    if rest:
        raise InvalidArgumentError(
            f"datetime {value.isoformat()}{where} has an offset of seconds from UTC, which "
            "ISO-8601 cannot write"
        )
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    micros = value.microsecond
    if micros:
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    if not minutes:
        return text + "Z"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def parse_date(text: object) -> dt.datetime | None:
    """The aware ``datetime`` an ISO-8601 string names, or ``None`` if ``text`` is not one
    (see the module docstring)."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    match = _DATE_TIME.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction + "00000")[:6]) if fraction else 0
    try:
        value = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micros,
        )
    except ValueError:  # no such day or time
        return None
    if zone is None:
        return value.astimezone()  # local time, as Couchbase Lite reads it
    if zone in ("Z", "z"):
        return value.replace(tzinfo=dt.UTC)
    digits = zone[1:].replace(":", "")
    hours, mins = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or mins > 59:
        return None
    offset = dt.timedelta(hours=hours, minutes=mins)
    return value.replace(tzinfo=dt.timezone(offset if zone[0] == "+" else -offset))


__all__ = ["format_date", "parse_date"]
