"""docs/api.md keeps up with the public API.

The reference is written by hand, so it falls behind silently unless something checks it: every
name of ``couchlite.__all__`` appears in it in backticks, every public member of every exported
class is mentioned in its code (inline spans or code blocks), and every ```python block at least
compiles. Found by introspection, so a new export or a new method fails here until it is
documented.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
from pathlib import Path

import pytest

import couchlite

API_MD = Path(__file__).resolve().parent.parent / "docs" / "api.md"

_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _text() -> str:
    return API_MD.read_text(encoding="utf-8")


def _inline_identifiers(text: str) -> set[str]:
    """Identifiers inside inline code spans (fenced blocks removed first)."""
    prose = _FENCED.sub("", text)
    return {word for span in _INLINE_CODE.findall(prose) for word in _IDENTIFIER.findall(span)}


def _code_identifiers(text: str) -> set[str]:
    """Identifiers anywhere in code: inline spans and fenced blocks."""
    words = _inline_identifiers(text)
    for block in _FENCED.findall(text):
        words.update(_IDENTIFIER.findall(block))
    return words


def _exported() -> list[str]:
    return [name for name in couchlite.__all__ if name != "__version__"]


def _is_stdlib(klass: type) -> bool:
    root = klass.__module__.split(".")[0]
    return root == "builtins" or root in sys.stdlib_module_names


def _own_public_names(klass: type) -> set[str]:
    """Public attributes defined in ``klass``'s body: methods, properties, constants, fields."""
    names = {name for name in vars(klass) if not name.startswith("_")}
    try:
        annotations = inspect.get_annotations(klass)
    except Exception:  # an annotation that cannot be evaluated: the body's names still count
        annotations = {}
    names.update(name for name in annotations if not name.startswith("_"))
    return names


def public_members(cls: type) -> set[str]:
    """What the reference must mention for ``cls``: the public members defined on it or on its
    couchlite bases, without enum members, and for exceptions only what each class adds (not
    what it overrides of a base, such as ``default_code``)."""
    members: set[str] = set()
    is_error = issubclass(cls, BaseException)
    for klass in cls.__mro__:
        if _is_stdlib(klass):
            continue
        own = _own_public_names(klass)
        if is_error:
            inherited: set[str] = set()
            for base in klass.__mro__[1:]:
                inherited |= set(vars(base)) | set(getattr(base, "__annotations__", {}))
            own -= inherited
        members |= own
    if issubclass(cls, enum.Enum):
        members -= set(cls.__members__)
    return members


def test_the_reference_exists_and_has_code() -> None:
    text = _text()
    assert _INLINE_CODE.search(text), "docs/api.md has no inline code"
    assert _PYTHON_BLOCK.search(text), "docs/api.md has no python examples"


def test_every_exported_name_appears_in_backticks() -> None:
    mentioned = _inline_identifiers(_text())
    missing = sorted(name for name in _exported() if name not in mentioned)
    assert not missing, f"couchlite.__all__ names missing from docs/api.md: {missing}"


def test_every_public_member_of_every_exported_class_is_mentioned() -> None:
    mentioned = _code_identifiers(_text())
    missing: list[str] = []
    for name in _exported():
        obj = getattr(couchlite, name)
        if not inspect.isclass(obj):
            continue
        missing.extend(
            f"{name}.{member}" for member in sorted(public_members(obj)) if member not in mentioned
        )
    assert not missing, f"public members missing from docs/api.md: {missing}"


def test_the_member_finder_sees_what_it_must() -> None:
    # The guard is only as good as its introspection: spot-check that it finds methods,
    # properties, dataclass fields, annotated attributes and error attributes, and leaves out
    # enum members, stdlib (Mapping) methods and overridden error defaults.
    from couchlite import (
        ChannelClosed,
        Collection,
        CouchliteError,
        ReplicatorActivityLevel,
        ReplicatorConfiguration,
        ReplicatorProgress,
        ReplicatorType,
    )

    assert {"save", "count", "changes", "get"} <= public_members(Collection)
    assert "items" not in public_members(Collection)
    assert {"fraction", "document_count", "completed"} <= public_members(ReplicatorProgress)
    assert {"target", "continuous", "add_collection"} <= public_members(ReplicatorConfiguration)
    assert {"pushes", "pulls"} == public_members(ReplicatorType)
    assert not public_members(ReplicatorActivityLevel)
    assert "default_transient" in public_members(CouchliteError)
    assert public_members(ChannelClosed) >= {"is_normal"}
    assert "default_code" in public_members(ChannelClosed)  # from CouchliteError, once


@pytest.mark.parametrize(
    "index", range(len(_PYTHON_BLOCK.findall(API_MD.read_text(encoding="utf-8"))))
)
def test_every_python_block_compiles(index: int) -> None:
    block = _PYTHON_BLOCK.findall(_text())[index]
    compile(block, f"docs/api.md python block {index + 1}", "exec")
