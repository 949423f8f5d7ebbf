"""Views import controllers and Qt, never a core room directly (what the import contract intends)."""

from __future__ import annotations

import ast
from pathlib import Path

import stablenew

CORE = ("pipeline", "learning", "randomizer", "cluster", "backends", "storage")
GUI = Path(stablenew.__file__).parent / "gui"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_no_view_imports_a_core_room_directly():
    bad = []
    for path in GUI.rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "stablenew" and len(parts) > 1 and parts[1] in CORE:
                bad.append(f"{path.relative_to(GUI)} imports {name}")
    assert not bad, bad


def test_the_scan_sees_a_direct_core_import(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("def f():\n    from stablenew.pipeline.config import PipelineConfig\n")
    assert "stablenew.pipeline.config" in _imports(sample)
