"""A long file name in the viewer's title keeps its start and end in view, the rest in the tooltip."""

from __future__ import annotations

from stablenew.gui.widgets.elided_label import ElidedLabel

NAME = "qde2a1e7b-00005-0000-a-lighthouse-on-a-cliff-at-dusk.png · 512×512"


def test_a_long_name_is_shortened_in_the_middle_and_shown_whole_when_it_fits(qtbot):
    label = ElidedLabel()
    qtbot.addWidget(label)
    label.set_full_text(NAME)
    label.resize(160, 24)
    label.show()
    qtbot.waitExposed(label)
    shown = label.text()
    assert "…" in shown and len(shown) < len(NAME)
    assert shown.startswith("qde") and shown.endswith("512×512")
    assert label.toolTip() == NAME and label.full_text() == NAME
    label.resize(label.fontMetrics().horizontalAdvance(NAME) + 40, 24)
    qtbot.waitUntil(lambda: label.text() == NAME, timeout=2000)
