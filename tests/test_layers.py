"""The shape of the code, enforced by inspecting every module's imports and size.

* The sans-I/O cores (``blip``, ``model``, ``replicator.protocol``) import no I/O module.
* SQLite lives behind ``storage``: nothing else imports ``sqlite3``.
* The replication engine gets storage and transport injected: ``replicator`` imports neither
  ``sqlite3`` nor ``websockets``, and of ``database`` only what the package exports
  (``couchlite.database``); type-only imports may name the public classes.
* Lower layers never import the façade; no two modules import each other, directly or through
  others (function-level imports count: they are how cycles hide); no module is too long to
  read in one sitting.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "couchlite"

IO_MODULES = {"asyncio", "socket", "ssl", "sqlite3", "websockets", "selectors", "threading"}

#: package (or module) -> top-level modules it may not import, at run time or for types
FORBIDDEN: dict[str, set[str]] = {
    "blip": IO_MODULES,
    "model": IO_MODULES,
    "replicator/protocol": IO_MODULES,
    "replicator": {"sqlite3", "websockets"},
}

#: longest module, in lines
MAX_MODULE_LINES = 600

#: modules of ``database`` the replicator may name in type-only imports (public classes)
PUBLIC_DATABASE_MODULES = {
    "couchlite.database",
    "couchlite.database.blob",
    "couchlite.database.collection",
    "couchlite.database.database",
    "couchlite.database.document",
}


@dataclass(frozen=True)
class Import:
    name: str  # the module imported (``from a.b import c``: ``a.b.c`` if that is a module)
    type_only: bool  # under ``if TYPE_CHECKING:``


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _imports(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name, id(node) in type_only))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append(Import(full if full in MODULES else base, id(node) in type_only))
    return found


def _modules(prefix: str) -> list[Path]:
    folder = SRC / prefix
    return sorted(folder.rglob("*.py")) if folder.is_dir() else []


def _rel(path: Path) -> str:
    return str(path.relative_to(SRC))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_forbidden_imports(package: str) -> None:
    forbidden = FORBIDDEN[package]
    offenders = [
        f"{_rel(path)} imports {imp.name}"
        for path in _modules(package)
        for imp in _imports(path)
        if imp.name.split(".")[0] in forbidden
    ]
    assert offenders == []


def test_only_storage_touches_sqlite() -> None:
    offenders = [
        f"{_rel(path)} imports {imp.name}"
        for path in MODULES.values()
        if not _rel(path).startswith("storage/")
        for imp in _imports(path)
        if imp.name.split(".")[0] == "sqlite3"
    ]
    assert offenders == []


def test_the_replicator_uses_only_what_the_database_package_exports() -> None:
    offenders = []
    for path in _modules("replicator"):
        for imp in _imports(path):
            if not imp.name.startswith("couchlite.database"):
                continue
            allowed = PUBLIC_DATABASE_MODULES if imp.type_only else {"couchlite.database"}
            if imp.name not in allowed:
                offenders.append(f"{_rel(path)} imports {imp.name}")
    assert offenders == []


@pytest.mark.parametrize("package", ["model", "storage", "blip", "transport", "tls"])
def test_lower_layers_do_not_import_the_facade(package: str) -> None:
    offenders = []
    for path in _modules(package):
        for imp in _imports(path):
            name = imp.name
            if name in {"couchlite", "couchlite.database"} or name.startswith(
                ("couchlite.database.", "couchlite.listener", "couchlite.replicator")
            ):
                offenders.append(f"{_rel(path)} imports {name}")
    assert offenders == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in the graph of run-time
    imports between couchlite modules (Tarjan's algorithm, iterative)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = set()
        for imp in _imports(path):
            if imp.type_only:
                continue
            name = imp.name
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_no_module_is_too_long() -> None:
    long = {
        _rel(path): lines
        for path in MODULES.values()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_rules_inspect_real_modules() -> None:
    # guards against the rules silently checking nothing after a package is renamed
    assert _modules("model") and _modules("blip") and _modules("storage")
    assert _modules("replicator/protocol")
    assert "couchlite.database.collection" in MODULES
