"""The protocol core imports no I/O: no ``asyncio``, ``socket``, ``ssl``, ``sqlite3``,
``websockets``, no transport and no database, directly or through the couchlite modules it
imports.

Checked on the source (AST), following couchlite imports transitively: importing any
``couchlite`` submodule runs the package's ``__init__`` (the whole façade, asyncio included),
so a subprocess check of ``sys.modules`` could not tell the core's imports from the façade's.
Imports under ``if TYPE_CHECKING:`` are not followed (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
FORBIDDEN = {"asyncio", "socket", "ssl", "sqlite3", "websockets", "concurrent", "threading"}
FORBIDDEN_COUCHLITE = ("couchlite.transport", "couchlite.database", "couchlite.storage")


def _module_path(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            for child in ast.walk(node):
                if isinstance(child, ast.Import):
                    names.update(alias.name for alias in child.names)
                elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                    names.add(child.module)
                    names.update(f"{child.module}.{alias.name}" for alias in child.names)

    visit(tree.body)
    return names


def _closure(root: str) -> dict[str, set[str]]:
    """Every couchlite module reachable from ``root`` (skipping the ``couchlite`` package
    itself, see the module docstring), with its runtime imports."""
    seen: dict[str, set[str]] = {}
    todo = [root] + [
        f"{root}.{p.stem}"
        for p in (SRC / root.replace(".", "/")).glob("*.py")
        if p.stem != "__init__"
    ]
    while todo:
        name = todo.pop()
        if name in seen or name == "couchlite":
            continue
        path = _module_path(name)
        if path is None:
            continue  # a name imported from a module, not a module
        imports = _runtime_imports(path)
        seen[name] = imports
        todo.extend(i for i in imports if i.startswith("couchlite."))
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)))  # parent packages
    return seen


def test_the_protocol_core_imports_no_io() -> None:
    modules = _closure("couchlite.replicator.protocol")
    assert "couchlite.replicator.protocol.changes" in modules  # the walk found the core
    offenders = [
        f"{module} imports {name}"
        for module, imports in modules.items()
        for name in imports
        if name.split(".")[0] in FORBIDDEN or name.startswith(FORBIDDEN_COUCHLITE)
    ]
    assert offenders == []
