"""The SQL++ date functions, computed the way Couchbase Lite 3.2 computes them.

Dates are ISO-8601 strings (``YYYY-MM-DD``, optionally ``[T| ]hh:mm[:ss[.fff]]`` and a zone
``Z``/``±hh[:]mm``; a time alone is accepted where Couchbase Lite accepts one, on 2000-01-01) or
integer milliseconds since the Unix epoch. A string without a zone is local time, except where
Couchbase Lite reads it as UTC (``DATE_ADD_STR``) or ignores zones (``DATE_DIFF_STR`` compares
the written fields, as Couchbase Server does). Output uses an optional *format*: an example date
(``'1111-11-11'``: date only; ``'11:11:11.111Z'``: time with milliseconds and zone) or ``%``
tokens (``%F``, ``%Y-%m-%d``, ``%T``, ``%H:%M:%S``, ``%s``, ``%z``, ``%Ez``); an unusable format
means the default, ``YYYY-MM-DDThh:mm:ss[.mmm]±hhmm`` (``Z`` for UTC, milliseconds when non-zero).

Couchbase Lite's oddities kept, because queries observe them: ``MILLIS_TO_*``/``STR_TO_*`` answer
null for MISSING, while ``DATE_DIFF_*``/``DATE_ADD_*`` answer MISSING for any unusable argument.
Its garbage is not kept: an unknown component gives null (not ``-1`` / 1969-12-31).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Final

from couchlite.query.values import MISSING

__all__ = [
    "date_add_millis",
    "date_add_str",
    "date_diff_millis",
    "date_diff_str",
    "millis_to_str",
    "millis_to_tz",
    "millis_to_utc",
    "str_to_millis",
    "str_to_tz",
    "str_to_utc",
]

_DAY: Final = 86_400_000
# The calendar arithmetic stops being meaningful long before Python's ints do: bound it where
# JavaScript's Date does (±100,000,000 days), which also keeps years printable.
_MAX_MILLIS: Final = 100_000_000 * _DAY
_INT64: Final = 2**63

_DATE = re.compile(r"(-?)([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?")
_ZONE = re.compile(r"[ \t\n\v\f\r]*(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?[ \t\n\v\f\r]*\Z")

_MONTHS_PER: Final = {
    "month": 1,
    "quarter": 3,
    "year": 12,
    "decade": 120,
    "century": 1200,
    "millennium": 12000,
}
_MILLIS_PER: Final = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": _DAY,
    "week": 7 * _DAY,
}


@dataclass(slots=True)
class _Date:
    """A parsed date string: its written fields, and its zone offset (None: no zone)."""

    year: int = 2000
    month: int = 1
    day: int = 1
    hour: int = 0
    minute: int = 0
    second: float = 0.0
    tz: int | None = None


@dataclass(frozen=True, slots=True)
class _Format:
    ymd: bool
    separator: str  # between date and time: "T" or " "
    hms: bool
    millis: bool
    zone: str | None  # None: no zone; "": +hhmm; ":": +hh:mm


_ISO: Final = _Format(True, "T", True, True, "")
_DATE_ONLY: Final = _Format(True, "T", False, False, None)


# -- calendar -------------------------------------------------------------------------------------


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (``day`` may overflow the month)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _day_of_year(millis: int) -> int:
    days = millis // _DAY
    year = _civil_from_days(days)[0]
    return days - _days_from_civil(year, 1, 1) + 1


def _tdiv(a: int, b: int) -> int:
    """Integer division truncating toward zero, as C's (the N1QL algorithms rely on it)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _leap_years_before(year: int) -> int:
    year = year - 1 if year > 0 else year + 1
    return _tdiv(year, 4) - _tdiv(year, 100) + _tdiv(year, 400)


def _round_half_away(x: float) -> int:
    floor = math.floor(x)
    diff = x - floor
    return floor + 1 if diff > 0.5 or (diff == 0.5 and x > 0) else floor


# -- local time -----------------------------------------------------------------------------------


def _local_offset_at_wall(d: _Date) -> int:
    """Minutes east of UTC of the local zone at the local wall time ``d`` (DST included)."""
    seconds = int(d.second)
    try:
        instant = time.mktime((d.year, d.month, d.day, d.hour, d.minute, seconds, 0, 0, -1))
    except (OverflowError, ValueError):
        return -time.timezone // 60
    wall = _days_from_civil(d.year, d.month, d.day) * 86400 + d.hour * 3600 + d.minute * 60
    return (wall + seconds - int(instant)) // 60


def _local_offset_at(millis: int) -> int:
    """Minutes east of UTC of the local zone at the instant ``millis``."""
    try:
        offset = time.localtime(millis // 1000).tm_gmtoff
    except (OverflowError, OSError, ValueError):
        return -time.timezone // 60
    return int(offset / 60)


# -- parsing --------------------------------------------------------------------------------------


def _parse_time(text: str, d: _Date) -> bool:
    """Reads ``hh:mm[:ss[.f…]][zone]`` (all of ``text``) into ``d``; False if it is not one."""
    match = _TIME.match(text)
    if match is None:
        return False
    hour, minute = int(match[1]), int(match[2])
    second = int(match[3]) if match[3] else 0
    if hour > 24 or minute > 59 or second > 59:
        return False
    fraction = 0.0
    if match[4]:
        # digit by digit, like the C parser, so that the double is the same
        scale = 1.0
        for digit in match[4]:
            fraction = fraction * 10.0 + (ord(digit) - 48)
            scale *= 10.0
        fraction /= scale
    zone = _ZONE.match(text, match.end())
    if zone is None:
        return False
    if zone[1]:
        d.tz = 0
    elif zone[2]:
        zone_hours, zone_minutes = int(zone[3]), int(zone[4])
        if zone_hours > 14 or zone_minutes > 59:
            return False
        d.tz = (zone_hours * 60 + zone_minutes) * (-1 if zone[2] == "-" else 1)
    d.hour, d.minute, d.second = hour, minute, second + fraction
    return True


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _parse(text: Any, *, time_only: bool = True) -> _Date | None:
    """The date string ``text`` parsed, or None. ``time_only``: a bare time is acceptable."""
    if type(text) is not str:
        return None
    d = _Date()
    match = _DATE.match(text)
    if match is None:
        return d if time_only and _parse_time(text, d) else None
    year, month, day = int(match[2]), int(match[3]), int(match[4])
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    d.year, d.month, d.day = (-year if match[1] else year), month, day
    rest = text[match.end() :].lstrip(" \t\n\v\f\rT")
    if rest and not _parse_time(rest, d):
        return None
    return d


def _to_millis(d: _Date, *, local: bool) -> int:
    """The instant ``d`` denotes; without a zone it is local time if ``local``, else UTC."""
    tz = d.tz
    if tz is None:
        tz = _local_offset_at_wall(d) if local else 0
    days = _days_from_civil(d.year, d.month, d.day)
    wall = days * _DAY + d.hour * 3_600_000 + d.minute * 60_000 + _round_half_away(d.second * 1000)
    return wall - tz * 60_000


def _from_millis(millis: int) -> _Date:
    days, rest = divmod(millis, _DAY)
    year, month, day = _civil_from_days(days)
    seconds, milli = divmod(rest, 1000)
    hour, seconds = divmod(seconds, 3600)
    minute, seconds = divmod(seconds, 60)
    return _Date(year, month, day, hour, minute, seconds + milli / 1000.0, 0)


# -- formats --------------------------------------------------------------------------------------


def _format_of(value: Any) -> _Format:
    """The output format an argument asks for: the default unless it is a usable format."""
    if type(value) is not str or not value:
        return _ISO
    found = _token_format(value) if value[0] == "%" else _example_format(value)
    return _ISO if found is None else found


def _assemble(
    ymd: bool, hms: bool, separator: str | None, millis: bool, zone: str | None
) -> _Format | None:
    if ymd and hms:
        return None if separator is None else _Format(True, separator, True, millis, zone)
    if ymd:
        return _DATE_ONLY
    return _Format(False, "T", True, millis, zone) if hms else None


def _example_format(text: str) -> _Format | None:
    zone: str | None = None
    if text[-1] == "Z":
        zone, text = "", text[:-1]
    elif len(text) >= 5:
        colon = text[-3] == ":"
        start = len(text) - (6 if colon else 5)
        if start >= 0 and text[start] in "+-":
            zone, text = (":" if colon else ""), text[:start]
    hms = millis = False
    if len(text) >= 8:
        millis = text[-4] == "."
        clock = text[:-4] if millis else text
        if (not millis or len(text) >= 12) and clock[-3] == ":" and clock[-6] == ":":
            hms, text = True, clock[:-8]
    separator = None
    if hms and text:
        if text[-1] not in " T":
            return None
        separator, text = text[-1], text[:-1]
    ymd = len(text) >= 10 and text[-3] == text[-6] and text[-3] in "-/"
    if (separator is not None and not (ymd and hms)) or (zone is not None and not hms):
        return None
    return _assemble(ymd, hms, separator, millis and hms, zone)


def _token_format(text: str) -> _Format | None:
    # A strict subset of the date library's tokens, read as Couchbase Lite reads them, quirks
    # included (queries observe them): each step wants two more characters, so a trailing
    # ``%T`` or ``%z`` is ignored, and a zone is only read after ``%s``.
    end, i = len(text), 1
    if end < 2:
        return None
    ymd = text[i] in "FY"
    if text[i] == "F":
        i += 1
    elif text[i] == "Y":
        if text[i + 1 : i + 7] not in ("-%m-%d", "/%m/%d"):
            return None
        i += 7
    if i >= end:
        return _DATE_ONLY if ymd else None
    separator = None
    if ymd:
        if text[i] in " T":
            separator, i = text[i], i + 1
        if i >= end or text[i] != "%":
            return None
        i += 1
    if end - i < 2:
        return _DATE_ONLY if ymd else None
    hms = millis = False
    token, i = text[i], i + 1
    if token == "T":
        hms = millis = True
    elif token == "H":
        if text[i : i + 6] != ":%M:%S":
            return None
        hms, i = True, i + 6
    if end - i >= 2:
        if text[i] != "%":
            return None
        i += 1
        if hms and text[i : i + 1] == "s":
            millis, i = True, i + 1
        elif hms and text[i : i + 1] == ".":
            millis, i = millis or text[i : i + 2] == ".s", i + 2
        if end - i >= 2:
            percent = text.find("%", i)
            start = percent + 1 if percent >= 0 else i
            zone = {"z": "", "Ez": ":"}.get(text[start : start + 2])
            return None if zone is None else _assemble(ymd, hms, separator, millis, zone)
    return _assemble(ymd, hms, separator, millis, None)


def _year(year: int) -> str:
    return f"{year:04d}" if year >= 0 else f"-{-year:04d}"


def _render(millis: int, offset: int, fmt: _Format) -> str | None:
    """``millis`` written in the zone ``offset`` minutes east of UTC, as ``fmt`` says."""
    if not -_MAX_MILLIS <= millis <= _MAX_MILLIS or abs(offset) > 100_000:
        return None
    days, rest = divmod(millis + offset * 60_000, _DAY)
    parts = []
    if fmt.ymd:
        year, month, day = _civil_from_days(days)
        parts.append(f"{_year(year)}-{month:02d}-{day:02d}")
    if fmt.hms:
        if fmt.ymd:
            parts.append(fmt.separator)
        seconds, milli = divmod(rest, 1000)
        parts.append(f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")
        if fmt.millis and milli:
            parts.append(f".{milli:03d}")
        if fmt.zone is not None:
            if offset == 0:
                parts.append("Z")
            else:
                sign = "-" if offset < 0 else "+"
                hours, minutes = divmod(abs(offset), 60)
                parts.append(f"{sign}{hours:02d}{fmt.zone}{minutes:02d}")
    return "".join(parts)


def _int64(value: Any) -> int | None:
    """An integer argument as Couchbase Lite reads one (numbers truncated), else None."""
    if type(value) not in (bool, int, float):
        return None
    if type(value) is float and not math.isfinite(value):
        return None
    number = int(value)
    return number if -_INT64 <= number < _INT64 else None


# -- the functions --------------------------------------------------------------------------------

_NO_FORMAT: Final = object()


def millis_to_str(millis: Any, fmt: Any = _NO_FORMAT) -> Any:
    """MILLIS_TO_STR(ms[, fmt]): ``ms`` as a local date string."""
    ms = _int64(millis)
    if ms is None:
        return None
    return _render(ms, _local_offset_at(ms), _format_of(fmt))


def millis_to_utc(millis: Any, fmt: Any = _NO_FORMAT) -> Any:
    """MILLIS_TO_UTC(ms[, fmt]): ``ms`` as a UTC date string."""
    ms = _int64(millis)
    return None if ms is None else _render(ms, 0, _format_of(fmt))


def millis_to_tz(millis: Any, tz: Any, fmt: Any = _NO_FORMAT) -> Any:
    """MILLIS_TO_TZ(ms, minutes[, fmt]): ``ms`` as a date string ``minutes`` east of UTC."""
    ms, offset = _int64(millis), _int64(tz)
    if ms is None or offset is None:
        return None
    return _render(ms, offset, _format_of(fmt))


def str_to_millis(date: Any) -> Any:
    """STR_TO_MILLIS(date): milliseconds since the epoch (a date is required, not a time)."""
    d = _parse(date, time_only=False)
    return None if d is None else _to_millis(d, local=True)


def str_to_utc(date: Any, fmt: Any = _NO_FORMAT) -> Any:
    """STR_TO_UTC(date[, fmt]): the date string rewritten in UTC."""
    d = _parse(date)
    return None if d is None else _render(_to_millis(d, local=True), 0, _format_of(fmt))


def str_to_tz(date: Any, tz: Any, fmt: Any = _NO_FORMAT) -> Any:
    """STR_TO_TZ(date, minutes[, fmt]): the date string rewritten ``minutes`` east of UTC."""
    d, offset = _parse(date), _int64(tz)
    if d is None or offset is None:
        return None
    return _render(_to_millis(d, local=True), offset, _format_of(fmt))


def _diff(left: _Date, right: _Date, part: Any) -> Any:
    # Field-wise, as Couchbase Server does: the difference between the days (hours, …) the two
    # dates are on, not the number of whole days between them.
    unit = part.lower() if type(part) is str else ""
    if unit not in _MILLIS_PER and unit not in _MONTHS_PER:
        return MISSING
    t_left, t_right = _to_millis(left, local=False), _to_millis(right, local=False)
    sign = 1
    if t_left < t_right:
        left, right, t_left, t_right, sign = right, left, t_right, t_left, -1
    years = left.year - right.year
    days = years * 365 + _day_of_year(t_left) - _day_of_year(t_right)
    if years:
        days += _leap_years_before(left.year) - _leap_years_before(right.year)
    hours = days * 24 + left.hour - right.hour
    minutes = hours * 60 + left.minute - right.minute
    seconds = minutes * 60 + int(left.second) - int(right.second)
    millis = seconds * 1000 + int((math.modf(left.second)[0] - math.modf(right.second)[0]) * 1000)
    quarter_l, quarter_r = (left.month + 2) // 3, (right.month + 2) // 3
    result = {
        "millisecond": millis,
        "second": seconds,
        "minute": minutes,
        "hour": hours,
        "day": days,
        "week": _tdiv(days, 7),
        "month": abs(left.year * 12 + left.month - right.year * 12 - right.month),
        "quarter": abs(left.year * 4 + quarter_l) - (right.year * 4 + quarter_r),
        "year": years,
        "decade": _tdiv(years, 10),
        "century": _tdiv(years, 100),
        "millennium": _tdiv(years, 1000),
    }[unit]
    return result * sign


def date_diff_str(date1: Any, date2: Any, part: Any) -> Any:
    """DATE_DIFF_STR(date1, date2, part): ``date1 - date2`` in whole ``part``\\ s."""
    left, right = _parse(date1), _parse(date2)
    if left is None or right is None:
        return MISSING
    return _diff(left, right, part)


def date_diff_millis(millis1: Any, millis2: Any, part: Any) -> Any:
    """DATE_DIFF_MILLIS(ms1, ms2, part): ``ms1 - ms2`` in whole ``part``\\ s (UTC fields)."""
    left, right = _int64(millis1), _int64(millis2)
    if left is None or right is None or max(abs(left), abs(right)) > _MAX_MILLIS:
        return MISSING
    return _diff(_from_millis(left), _from_millis(right), part)


def _add(start: _Date, amount: Any, part: Any) -> Any:
    """The instant ``start + amount * part`` (a zone-less start is UTC); MISSING or None."""
    count = _int64(amount)
    if count is None:
        return MISSING
    unit = part.lower() if type(part) is str else ""
    tz = start.tz or 0
    time_of_day = start.hour * 3_600_000 + (start.minute - tz) * 60_000
    time_of_day += int(start.second * 1000)
    year, month = start.year, start.month
    if unit in _MILLIS_PER:
        time_of_day += count * _MILLIS_PER[unit]
    elif unit in _MONTHS_PER:
        year, month = divmod(year * 12 + month - 1 + count * _MONTHS_PER[unit], 12)
        month += 1
        if abs(year) > 400_000:
            return None
    else:
        return None
    # a day past the end of the month spills into the next one, as the date library does
    millis = (_days_from_civil(year, month, 1) + start.day - 1) * _DAY + time_of_day
    return millis if -_MAX_MILLIS <= millis <= _MAX_MILLIS else None


def date_add_str(date: Any, amount: Any, part: Any, fmt: Any = _NO_FORMAT) -> Any:
    """DATE_ADD_STR(date, n, part[, fmt]): the date string ``n`` ``part``\\ s later."""
    start = _parse(date)
    if start is None:
        return MISSING
    millis = _add(start, amount, part)
    if millis is None or millis is MISSING:
        return millis
    return _render(millis, start.tz or 0, _format_of(fmt))


def date_add_millis(millis: Any, amount: Any, part: Any) -> Any:
    """DATE_ADD_MILLIS(ms, n, part): milliseconds ``n`` ``part``\\ s after ``ms`` (UTC)."""
    ms = _int64(millis)
    if ms is None:
        return MISSING
    return None if abs(ms) > _MAX_MILLIS else _add(_from_millis(ms), amount, part)
