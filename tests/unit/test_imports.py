"""Imports only point down the architecture map's folder table; nothing imports ops."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# folder -> the project folders it may import (besides itself); the stdlib and libraries always.
ALLOWED = {
    "core": set(),
    "connectors": {"core"},
    "gateway": {"core", "connectors"},
    "normalizer": {"core", "connectors", "ticket_service"},
    "router": {"core", "ticket_service"},
    "rules": {"core", "ticket_service"},
    "ticket_service": {"core"},
    "console": {"core", "ticket_service"},
    "portal": {"core", "connectors", "ticket_service"},
    "ops": {"core", "connectors", "gateway", "normalizer", "router", "rules", "ticket_service", "console", "portal"},
}


def _imports(tree: ast.AST):
    """(line, top-level module) of every absolute import, TYPE_CHECKING ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def offending_arrows() -> list[str]:
    found = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for line, top in _imports(tree):
                if top in ALLOWED and top != folder and top not in allowed:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {folder} -> {top}")
    return found


def test_every_import_points_down_the_table():
    assert offending_arrows() == []


def test_the_walk_sees_the_project():
    # Guards the test above against walking nothing: the gateway does import connectors.
    seen = {top for path in (ROOT / "gateway").rglob("*.py") for _, top in _imports(ast.parse(path.read_text()))}
    assert {"core", "connectors"} <= seen
