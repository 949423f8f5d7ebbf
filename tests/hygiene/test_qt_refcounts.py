"""The installed PySide6 keeps Python's reference counts straight across signals and slots.

PySide6 6.12.0 released one reference to None (a Qt signal delivered to a Python slot) or to True
(`Signal.emit()` called from Python) every time. On Python 3.11 those objects are not immortal, so
after a few thousand signals, which a long run easily sends, the interpreter aborted with
"deallocating None" or "deallocating True or False". pyproject.toml keeps that build out; this test
fails if such a build is installed anyway.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox


class _Emitter(QObject):
    text = Signal(str)
    flag = Signal(bool)


def test_slot_calls_leave_none_and_bools_reference_counts_alone(qapp):
    emitter = _Emitter()
    seen: list[int] = []
    emitter.text.connect(lambda _text: None)
    emitter.flag.connect(lambda on: seen.append(on))
    box = QCheckBox()  # a signal Qt itself emits, into a Python slot
    box.toggled.connect(lambda on: None)
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for i in range(200):
        emitter.text.emit("step")
        emitter.flag.emit(i % 2 == 0)
        box.setChecked(i % 2 == 0)
    seen.clear()
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    drift = [a - b for a, b in zip(after, before, strict=True)]
    assert all(abs(d) < 50 for d in drift), (
        f"reference counts of None/True/False moved by {drift} over 600 slot calls: this PySide6 "
        "build mismanages references and will crash a long session")
