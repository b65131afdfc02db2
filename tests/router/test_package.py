"""The router's public surface and its one allowed dependency (sluice.core)."""

from __future__ import annotations

import ast
from pathlib import Path

import sluice.router


def test_exported_members() -> None:
    assert sorted(sluice.router.__all__) == [
        "DestinationSpec", "GENERATED_HEADER", "Match", "Rule", "RuleSet", "RulesError",
        "decide", "is_generated", "load_rules", "parse_rules", "with_user_rules"]
    for name in sluice.router.__all__:
        assert getattr(sluice.router, name) is not None


def test_router_imports_only_core() -> None:
    folder = Path(sluice.router.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("sluice"):
                    assert name.startswith(("sluice.core", "sluice.router")), (path, name)
