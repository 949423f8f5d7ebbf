"""clicked(bool) and triggered(bool) hand their "checked" to the first parameter a slot can take:
a slot with an optional parameter (a name, a path) then receives False instead of asking for it
(issue 16: "Save current…" failed with 'bool' object has no attribute 'strip').

No method of our views connected straight to such a signal may take an optional positional
parameter; views call those slots through a lambda that drops "checked"."""

from __future__ import annotations

import ast
from pathlib import Path

GUI = Path(__file__).resolve().parents[2] / "stablenew" / "gui"
CHECKED_SIGNALS = {"clicked", "triggered"}


def _methods(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def _takes_an_optional_positional(func: ast.FunctionDef) -> bool:
    positional = [*func.args.posonlyargs, *func.args.args]
    if positional and positional[0].arg == "self":
        positional = positional[1:]
    return bool(positional) and (bool(func.args.defaults) or func.args.vararg is not None)


def _connected_slots(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, method name) of every `self.method` connected to clicked/triggered. (QMenu's
    addAction(text, slot) connects triggered() without "checked": not counted.)"""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        slots: list[ast.expr] = []
        if func.attr == "connect" and isinstance(func.value, ast.Attribute) \
                and func.value.attr in CHECKED_SIGNALS:
            slots = node.args[:1]
        for slot in slots:
            if isinstance(slot, ast.Attribute) and isinstance(slot.value, ast.Name) \
                    and slot.value.id == "self":
                found.append((node.lineno, slot.attr))
    return found


def test_no_view_slot_receives_checked_as_an_argument():
    wrong = []
    for file in sorted(GUI.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        methods = _methods(tree)
        for line, name in _connected_slots(tree):
            method = methods.get(name)
            if method is not None and _takes_an_optional_positional(method):
                wrong.append(f"{file.relative_to(GUI.parent)}:{line} {name}")
    assert not wrong, f"slots that would receive clicked/triggered's bool: {wrong}"


def test_the_check_finds_the_mistake_it_is_about():
    tree = ast.parse(
        "class Panel:\n"
        "    def __init__(self):\n"
        "        self.button.clicked.connect(self.save)\n"
        "        self.action.triggered.connect(self.load)\n"
        "        self.other.clicked.connect(self.fine)\n"
        "    def save(self, name=None): ...\n"
        "    def load(self, path: str | None = None): ...\n"
        "    def fine(self): ...\n")
    methods = _methods(tree)
    assert [name for _, name in _connected_slots(tree)
            if _takes_an_optional_positional(methods[name])] == ["save", "load"]
