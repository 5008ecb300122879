"""JSON deltas in Couchbase Lite's format (Fleece ``JSONDelta``; notes §6.1).

A delta is a JSON value read *relative to* an old value; :func:`apply_delta` turns the old value
and the delta into the new value, :func:`create_delta` computes the delta of two values, and
``apply_delta(old, create_delta(old, new)) == new`` holds for every pair of JSON values (with
types kept exactly: ``1`` and ``1.0`` and ``True`` are three different values).

Theory of operation
-------------------
The forms, as Fleece writes and reads them:

* a scalar ``v`` -- replaced by ``v``. Only *under* a dict key or array index: at the top level,
  and whenever ``v`` is an array or an object, the wrapped form ``[v]`` is used instead, since a
  bare array or object would be read as one of the forms below;
* ``[v]`` -- replaced by (or, for a key the old object lacks, inserted as) ``v``;
* ``[]`` -- deleted (a key of an object);
* ``{...}`` over an object -- per key, a delta of the old value at that key; keys the delta
  does not name are unchanged, and a key the old object lacks is an insertion;
* ``{...}`` over an array -- keys are decimal indexes with a delta of that item, plus at most
  one ``"N-"`` whose value (an array) replaces every item from index ``N`` on: how an array
  grows or shrinks (``"N-": []`` truncates);
* ``["<ops>", 0, 2]`` -- an edit of a string, over its UTF-8 *bytes*: ``n=`` copies ``n`` bytes,
  ``n-`` skips ``n`` bytes, ``n+<n bytes>|`` inserts ``n`` bytes (the ``|`` is a check, not a
  delimiter: the inserted bytes may contain ``|``); copies and skips must cover the old string;
* ``{}`` at the top level -- no change (what :func:`create_delta` returns for equal values).

:func:`apply_delta` also reads JsonDiffPatch's legacy forms, as Fleece does: ``[old, new]``
(replace) and ``[old, 0, 0]`` (delete). Anything else -- another array length, an unknown mode,
a ``{...}`` over a scalar, a deletion where nothing exists, a bad array key, a string edit that
does not fit the old string -- raises :class:`CorruptDeltaError` (LiteCore ``CORRUPT_DELTA``,
which a receiver answers with ``HTTP``/422 so that the sender resends the whole body).

Creating follows Fleece's rules, so that our deltas look like Couchbase Lite's: objects by key;
arrays index by index, then ``"N-"`` for the tail (no moves: detecting them is ambiguous and
costly, and Fleece does not either); two empty arrays are equal, one empty and one not is a
replacement. Strings get an edit only when the new string has at least
:data:`MIN_STRING_DIFF_BYTES` UTF-8 bytes: the diff comes from ``diff-match-patch`` (the same
algorithm and cleanups Fleece uses, with :data:`STRING_DIFF_TIMEOUT_S`), run over code points, so
every edit falls on a UTF-8 character boundary by construction -- what Fleece gets by snapping
byte ranges outwards. The edit is abandoned for a plain replacement as soon as the op string
comes within :data:`STRING_DIFF_MARGIN_BYTES` of the new string's length (Fleece's rule; we also
count the final ``n=``, which Fleece leaves out, so ours is never the longer choice).

Values are what ``orjson.loads`` produces: ``dict`` (string keys), ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``. :func:`apply_delta` does not copy: the result shares unchanged
sub-values with ``old`` (neither input is modified). Both functions recurse once per nesting
level; JSON documents are far shallower than Python's recursion limit (orjson itself refuses to
encode deeper than 255 levels).
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson
from diff_match_patch import diff_match_patch

from couchlite.errors import InvalidArgumentError, LiteCoreCode

#: New strings shorter than this (in UTF-8 bytes) are replaced, never diffed (Fleece
#: ``gMinStringDiffLength``): below it an edit cannot win by much and costs a diff.
MIN_STRING_DIFF_BYTES: Final = 60
#: Upper bound on one string diff (Fleece ``gTextDiffTimeout``); past it diff-match-patch returns
#: a coarser (still correct) diff.
STRING_DIFF_TIMEOUT_S: Final = 0.25
#: A string edit must be at least this much shorter than the new string, else it is replaced.
STRING_DIFF_MARGIN_BYTES: Final = 6

_DELETION_MODE: Final = 0
_TEXT_DIFF_MODE: Final = 2
#: Longest decimal count accepted in a string edit (10 digits covers any real string).
_MAX_COUNT_DIGITS: Final = 10


class CorruptDeltaError(InvalidArgumentError):
    """A delta is malformed, or does not fit the value it is applied to."""

    default_code = LiteCoreCode.CORRUPT_DELTA


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: ``_diff`` found no difference
_UNCHANGED: Final = _Marker("UNCHANGED")
#: ``_apply`` over a value that does not exist (a key being inserted)
_ABSENT: Final = _Marker("ABSENT")
#: ``_apply`` produced a deletion (the key is to be removed)
_DELETED: Final = _Marker("DELETED")


# --- creating ----------------------------------------------------------------------------------


def create_delta(old: Any, new: Any) -> Any:
    """The delta that turns ``old`` into ``new`` (``{}`` when they are equal)."""
    delta = _diff(old, new, nested=False)
    return {} if delta is _UNCHANGED else delta


def _diff(old: Any, new: Any, *, nested: bool) -> Any:
    if old is new:
        return _UNCHANGED
    old_type, new_type = type(old), type(new)
    if old_type is dict and new_type is dict:
        if _same_container(old, new):
            return _UNCHANGED
        return _diff_dict(old, new)
    if old_type is list and new_type is list:
        if old and new:
            if _same_container(old, new):
                return _UNCHANGED
            return _diff_list(old, new)
        if not old and not new:
            return _UNCHANGED
        # exactly one is empty: a replacement (below), as Fleece writes it
    elif old_type is new_type and _same_scalar(old, new):
        return _UNCHANGED
    elif old_type is str and new_type is str:
        ops = string_delta(old, new)
        if ops is not None:
            return [ops, 0, _TEXT_DIFF_MODE]
    if nested and new_type is not dict and new_type is not list:
        return new
    return [new]


def _diff_dict(old: dict[str, Any], new: dict[str, Any]) -> Any:
    out: dict[str, Any] = {}
    kept = 0
    for key, value in new.items():
        if key in old:
            kept += 1
            delta = _diff(old[key], value, nested=True)
            if delta is not _UNCHANGED:
                out[key] = delta
        elif type(value) is dict or type(value) is list:
            out[key] = [value]
        else:
            out[key] = value
    if kept < len(old):  # some old key is gone: find which
        for key in old:
            if key not in new:
                out[key] = []
    return out if out else _UNCHANGED


def _diff_list(old: list[Any], new: list[Any]) -> Any:
    out: dict[str, Any] = {}
    common = min(len(old), len(new))
    for index in range(common):
        delta = _diff(old[index], new[index], nested=True)
        if delta is not _UNCHANGED:
            out[str(index)] = delta
    if len(old) != len(new):
        out[f"{common}-"] = new[common:]
    return out if out else _UNCHANGED


def _same_container(a: dict[str, Any] | list[Any], b: dict[str, Any] | list[Any]) -> bool:
    """Fast exact equality of two containers, for the common case of an unchanged subtree.

    ``==`` runs in C but equates ``1``, ``1.0`` and ``True``; the JSON texts tell those apart
    (and ``-0.0`` from ``0.0``), so only values equal both ways count as unchanged. Dicts with
    the same items in another order fail the second test and are simply compared key by key.
    """
    if a != b:
        return False
    try:
        return orjson.dumps(a) == orjson.dumps(b)
    except orjson.JSONEncodeError:  # not JSON-encodable (too deep...): compare item by item
        return False


def _same_scalar(a: Any, b: Any) -> bool:
    """Equality of two scalars of the same type, strict enough for a round trip."""
    if type(a) is float:
        # 0.0 == -0.0, yet they are different JSON texts; NaN cannot occur in JSON
        return bool(a == b and math.copysign(1.0, a) == math.copysign(1.0, b))
    return bool(a == b)


def string_delta(old: str, new: str) -> str | None:
    """The ``n=``/``n-``/``n+...|`` edit turning ``old`` into ``new``, or ``None`` when a
    replacement is at least as good (``new`` too short, or the edit not clearly smaller)."""
    limit = len(new.encode("utf-8")) - STRING_DIFF_MARGIN_BYTES
    if limit + STRING_DIFF_MARGIN_BYTES < MIN_STRING_DIFF_BYTES:
        return None
    dmp = diff_match_patch()
    dmp.Diff_Timeout = STRING_DIFF_TIMEOUT_S
    diffs = dmp.diff_main(old, new)
    if len(diffs) > 2:
        # the cleanups Fleece's patch_make applies: fewer, larger, human-sensible edits
        dmp.diff_cleanupSemantic(diffs)
        dmp.diff_cleanupEfficiency(diffs)
    parts: list[bytes] = []
    size = 0
    copied = 0  # bytes of equal text not yet written as "n="
    for op, text in diffs:
        data = text.encode("utf-8")
        if op == dmp.DIFF_EQUAL:
            copied += len(data)
            continue
        if copied:
            part = b"%d=" % copied
            parts.append(part)
            size += len(part)
            copied = 0
        part = b"%d-" % len(data) if op == dmp.DIFF_DELETE else b"%d+%s|" % (len(data), data)
        parts.append(part)
        size += len(part)
        if size >= limit:
            return None
    if copied:
        part = b"%d=" % copied
        parts.append(part)
        size += len(part)
    if size >= limit or not parts:
        return None
    return b"".join(parts).decode("utf-8")


# --- applying ----------------------------------------------------------------------------------


def apply_delta(old: Any, delta: Any) -> Any:
    """``old`` changed by ``delta``; :class:`CorruptDeltaError` if the delta does not fit."""
    result = _apply(old, delta)
    if result is _DELETED:
        raise CorruptDeltaError("a delta cannot delete the whole value")
    return result


def _apply(old: Any, delta: Any) -> Any:
    delta_type = type(delta)
    if delta_type is list:
        return _apply_array_form(old, delta)
    if delta_type is dict:
        old_type = type(old)
        if old_type is dict:
            return _patch_dict(old, delta)
        if old_type is list:
            return _patch_list(old, delta)
        if not delta and old is not _ABSENT:
            return old  # "{}": no change, whatever the old value is
        raise CorruptDeltaError("invalid {...} in delta")
    return delta  # a scalar replaces


def _apply_array_form(old: Any, delta: list[Any]) -> Any:
    count = len(delta)
    if count == 1:
        return delta[0]
    if old is _ABSENT and count != 3:
        raise CorruptDeltaError("invalid deletion or replacement of a missing value in delta")
    if count == 0:
        return _DELETED
    if count == 2:
        return delta[1]  # JsonDiffPatch [old, new]
    if count == 3:
        mode = delta[2]
        if type(mode) is not int:
            raise CorruptDeltaError("unknown mode in delta")
        if mode == _DELETION_MODE:  # JsonDiffPatch [old, 0, 0]
            if old is _ABSENT:
                raise CorruptDeltaError("invalid deletion in delta")
            return _DELETED
        if mode == _TEXT_DIFF_MODE:
            ops = delta[0]
            if type(old) is not str:
                raise CorruptDeltaError("invalid text edit in delta: the old value is no string")
            if type(ops) is not str or not ops:
                raise CorruptDeltaError("invalid text edit in delta")
            return apply_string_delta(old, ops)
        raise CorruptDeltaError("unknown mode in delta")
    raise CorruptDeltaError("bad array count in delta")


def _patch_dict(old: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in old.items():
        if key in delta:
            changed = _apply(value, delta[key])
            if changed is not _DELETED:
                out[key] = changed
        else:
            out[key] = value
    for key, value in delta.items():
        if key not in old:
            out[key] = _apply(_ABSENT, value)  # an insertion; "[]" here raises
    return out


def _patch_list(old: list[Any], delta: dict[str, Any]) -> list[Any]:
    size = len(old)
    tail_at: int | None = None
    items: dict[int, Any] = {}
    for key, value in delta.items():
        index = _array_key(key)
        if key.endswith("-"):
            if tail_at is not None or index > size:
                raise CorruptDeltaError(f"invalid array remainder {key!r} in delta")
            if type(value) is not list:
                raise CorruptDeltaError("invalid array remainder in delta")
            tail_at = index
        elif index >= size:
            raise CorruptDeltaError(f"array index {key!r} out of range in delta")
        else:
            items[index] = value
    end = size if tail_at is None else tail_at
    if items and max(items) >= end:
        raise CorruptDeltaError("array index past the remainder in delta")
    out = old[:end]
    for index, value in items.items():
        changed = _apply(old[index], value)
        if changed is _DELETED:
            raise CorruptDeltaError("invalid deletion of an array item in delta")
        out[index] = changed
    if tail_at is not None:
        out.extend(delta[f"{tail_at}-"])
    return out


def _array_key(key: str) -> int:
    digits = key[:-1] if key.endswith("-") else key
    # canonical decimal only: "01", "+1", " 1" or non-ASCII digits are no index Fleece would write
    if (
        not digits
        or not digits.isascii()
        or not digits.isdigit()
        or (len(digits) > 1 and digits[0] == "0")
        or len(digits) > _MAX_COUNT_DIGITS
    ):
        raise CorruptDeltaError(f"invalid array key {key!r} in delta")
    return int(digits)


def apply_string_delta(old: str, ops: str) -> str:
    """Apply an ``n=``/``n-``/``n+...|`` edit to ``old`` (counts are UTF-8 bytes)."""
    source = old.encode("utf-8")
    code = ops.encode("utf-8")
    out = bytearray()
    pos = 0
    i = 0
    end = len(code)
    while i < end:
        j = i
        while j < end and 0x30 <= code[j] <= 0x39:
            j += 1
        if j in (i, end) or j - i > _MAX_COUNT_DIGITS:
            raise CorruptDeltaError("invalid count in text delta")
        count = int(code[i:j])
        op = code[j]
        i = j + 1
        if op == 0x3D:  # '=' copy
            if pos + count > len(source):
                raise CorruptDeltaError("invalid length in text delta")
            out += source[pos : pos + count]
            pos += count
        elif op == 0x2D:  # '-' skip
            if pos + count > len(source):
                raise CorruptDeltaError("invalid length in text delta")
            pos += count
        elif op == 0x2B:  # '+' insert
            if i + count >= end or code[i + count] != 0x7C:
                raise CorruptDeltaError("missing insertion delimiter in text delta")
            out += code[i : i + count]
            i += count + 1
        else:
            raise CorruptDeltaError("unknown op in text delta")
    if pos != len(source):
        raise CorruptDeltaError("length mismatch in text delta")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptDeltaError("text delta splits a UTF-8 character") from None


__all__ = [
    "MIN_STRING_DIFF_BYTES",
    "STRING_DIFF_MARGIN_BYTES",
    "STRING_DIFF_TIMEOUT_S",
    "CorruptDeltaError",
    "apply_delta",
    "apply_string_delta",
    "create_delta",
    "string_delta",
]
