"""The layer rules of docs/architecture: enforced by inspecting every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "couchlite"

IO_MODULES = {"asyncio", "socket", "ssl", "sqlite3", "websockets"}

RULES: dict[str, set[str]] = {
    # the sans-I/O cores: bytes and values in, bytes and values out
    "blip": IO_MODULES,
    "model": IO_MODULES,
    # the replication engine gets storage and transport injected
    "replicator": {"sqlite3", "websockets"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "couchlite":  # from couchlite import errors -> couchlite.errors
                names.update(f"couchlite.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py")) if (SRC / package).exists() else []


@pytest.mark.parametrize("package", sorted(RULES))
def test_forbidden_imports(package: str) -> None:
    forbidden = RULES[package]
    offenders = []
    for path in _modules(package):
        for name in _imports(path):
            if name.split(".")[0] in forbidden:
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


@pytest.mark.parametrize("package", ["model", "storage", "blip", "transport"])
def test_lower_layers_do_not_import_the_facade(package: str) -> None:
    offenders = []
    for path in _modules(package):
        for name in _imports(path):
            if name in {"couchlite", "couchlite.database"} or name.startswith(
                ("couchlite.database.", "couchlite.listener", "couchlite.replicator")
            ):
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_rules_inspect_real_modules() -> None:
    # guards against the rules silently checking nothing after a package is renamed
    assert _modules("model") and _modules("blip")
