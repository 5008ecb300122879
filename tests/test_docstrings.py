"""Every public name of the API has a docstring: they are the API reference's source.

Found by introspection, like ``test_api_doc``: every class and function of
``couchlite.__all__``, and every public method and property defined on such a class or on one of
its couchlite bases, has its own docstring. A dataclass's docstring must not be the signature
``dataclass`` writes in when there is none.
"""

from __future__ import annotations

import inspect

import couchlite


def _couchlite_classes(cls: type) -> list[type]:
    return [klass for klass in cls.__mro__ if klass.__module__.split(".")[0] == "couchlite"]


def _undocumented_members(klass: type) -> list[str]:
    missing = []
    for name, value in vars(klass).items():
        if name.startswith("_"):
            continue
        function = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        is_member = isinstance(function, property) or inspect.isfunction(function)
        if is_member and not (function.__doc__ or "").strip():
            missing.append(f"{klass.__module__}.{klass.__qualname__}.{name}")
    return missing


def _has_own_docstring(klass: type) -> bool:
    doc = (klass.__dict__.get("__doc__") or "").strip()
    return bool(doc) and not doc.startswith(f"{klass.__name__}(")  # dataclass's stand-in


def test_every_exported_class_and_member_has_a_docstring() -> None:
    missing: set[str] = set()
    for name in couchlite.__all__:
        obj = getattr(couchlite, name)
        if inspect.isclass(obj):
            for klass in _couchlite_classes(obj):
                if not _has_own_docstring(klass):
                    missing.add(f"{klass.__module__}.{klass.__qualname__}")
                missing.update(_undocumented_members(klass))
        elif inspect.isfunction(obj) and not (obj.__doc__ or "").strip():
            missing.add(f"{obj.__module__}.{obj.__qualname__}")
    assert not missing, f"public names without a docstring: {sorted(missing)}"


def test_the_finder_sees_what_it_must() -> None:
    # The guard is only as good as its introspection: a class without a docstring, a dataclass
    # with the stand-in one, and undocumented methods and properties are all caught.
    from dataclasses import dataclass

    @dataclass
    class Bare:
        field: int

        @property
        def value(self) -> int:
            return self.field

        def method(self) -> None:
            pass

        @staticmethod
        def helper() -> None:
            pass

    assert not _has_own_docstring(Bare)
    assert len(_undocumented_members(Bare)) == 3
    assert _has_own_docstring(couchlite.Database)
