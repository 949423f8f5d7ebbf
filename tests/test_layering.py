"""The rooms' layering holds: core never loads Qt, and the import-linter contracts bite."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import stablenew

ROOT = Path(__file__).resolve().parents[1]
CORE = ("storage", "backends", "pipeline", "randomizer", "learning", "catalog", "gallery", "prompting",
        "cluster", "community")


def _core_modules() -> list[str]:
    names = []
    for room in CORE:
        pkg = f"stablenew.{room}"
        names.append(pkg)
        path = Path(stablenew.__file__).parent / room
        names += [f"{pkg}.{m.name}" for m in pkgutil.walk_packages([str(path)])]
    return names


def test_core_modules_load_no_qt_in_a_fresh_interpreter():
    modules = _core_modules()
    assert len(modules) > len(CORE), "no core modules found"
    code = textwrap.dedent(f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync', 'shiboken6'))
        print(','.join(qt))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"core modules loaded Qt: {out.stdout}"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, cwd=tree)


def test_contracts_hold_on_the_real_tree():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "stablenew", tree / "stablenew",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tools", tree / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_contract_fails_when_core_imports_qt(tmp_path):
    tree = _copy_tree(tmp_path)
    (tree / "stablenew" / "pipeline" / "_bad.py").write_text("import PySide6.QtCore\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "Core packages never import Qt" in result.stdout


def test_contract_fails_when_a_view_imports_a_core_room(tmp_path):
    tree = _copy_tree(tmp_path)
    (tree / "stablenew" / "gui" / "_bad.py").write_text("import stablenew.backends.errors\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "Views talk only to controllers" in result.stdout


def test_contract_fails_when_a_controller_imports_widgets(tmp_path):
    tree = _copy_tree(tmp_path)
    (tree / "stablenew" / "controller" / "_bad.py").write_text(
        "from PySide6.QtCore import QObject\nfrom PySide6 import QtGui\n")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "Controllers hold no widgets" in result.stdout
