"""The router's public surface and its allowed dependencies: sluice.core, and sluice.space
(the outbox publishes into the built-in shared space), which itself imports only sluice.core."""

from __future__ import annotations

import ast
from pathlib import Path

import sluice.router
import sluice.space


def test_exported_members() -> None:
    assert sorted(sluice.router.__all__) == [
        "DestinationSpec", "GENERATED_HEADER", "Match", "Rule", "RuleSet", "RulesError",
        "decide", "is_generated", "load_rules", "parse_rules", "with_user_rules"]
    for name in sluice.router.__all__:
        assert getattr(sluice.router, name) is not None


def _imports_only(package: object, allowed: tuple[str, ...]) -> None:
    folder = Path(package.__file__).parent  # type: ignore[attr-defined]
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.startswith("sluice"):
                    assert name.startswith(allowed), (path, name)


def test_router_imports_only_core_and_space() -> None:
    _imports_only(sluice.router, ("sluice.core", "sluice.router", "sluice.space"))


def test_space_imports_only_core() -> None:
    _imports_only(sluice.space, ("sluice.core", "sluice.space"))
