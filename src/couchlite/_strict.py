"""Configuration objects that refuse misspelt attributes.

A configuration object is a plain mutable object: a user sets ``config.continuous = True``
and later hands it over. Python would accept ``config.continous = True`` just as silently and
the setting would be lost; Couchbase Lite's typed configuration classes make that a compile
error. :class:`StrictAttributes` restores the check at run time: assigning an attribute the class
does not declare raises :class:`AttributeError` naming it and suggesting the closest declared
name.

What a class declares: the names annotated in its body (dataclass fields included), its
``__slots__`` and its data descriptors (properties), along its whole MRO. Nothing else changes:
declared attributes and property setters work as before, and ``copy``/``pickle`` restore an
instance's ``__dict__`` without calling ``__setattr__`` (slot state goes through it, and slots
are declared).

The check exists only at run time: under ``TYPE_CHECKING`` the mixin defines no ``__setattr__``,
so type checkers keep reporting unknown attributes statically instead of treating every
assignment as valid.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import TYPE_CHECKING

__all__ = ["StrictAttributes", "declared_attributes", "unknown_attribute_error"]


@functools.cache
def declared_attributes(cls: type) -> frozenset[str]:
    """Every attribute name an instance of ``cls`` may be assigned (see the module docstring)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        names.update(inspect.get_annotations(klass))
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
        for name, value in klass.__dict__.items():
            if hasattr(type(value), "__set__"):  # property, slot member, custom descriptor
                names.add(name)
    names.discard("__dict__")
    names.discard("__weakref__")
    return frozenset(names)


def unknown_attribute_error(cls: type, name: str) -> AttributeError:
    """The error for assigning the undeclared attribute ``name`` on an instance of ``cls``."""
    public = sorted(n for n in declared_attributes(cls) if not n.startswith("_"))
    message = f"{cls.__name__} has no attribute {name!r}"
    matches = difflib.get_close_matches(name, public, n=1)
    if matches:
        message += f"; did you mean {matches[0]!r}?"
    elif public:
        message += f" (its attributes: {', '.join(public)})"
    # Deliberately no name=/obj=: the interpreter would append a second suggestion of its own.
    return AttributeError(message)


class StrictAttributes:
    """Mixin: assigning an attribute the class does not declare raises :class:`AttributeError`.

    ``config.continous = True`` raises ``AttributeError("ReplicatorConfiguration has no
    attribute 'continous'; did you mean 'continuous'?")``. Declare every attribute a class sets
    (an annotation in the class body, a slot or a property); private ones too.
    """

    __slots__ = ()

    if not TYPE_CHECKING:

        def __setattr__(self, name: str, value: object) -> None:
            cls = type(self)
            if name not in declared_attributes(cls):
                raise unknown_attribute_error(cls, name)
            super().__setattr__(name, value)
