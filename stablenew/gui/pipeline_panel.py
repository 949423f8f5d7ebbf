"""PipelinePanel: the stage cards; reads and shows card values as dotted config paths."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from stablenew.controller.field_spec import FieldSpec
from stablenew.gui.cards.editors import FieldEditor
from stablenew.gui.cards.stage_card import CollapsibleSection, StageCard

CARD_TITLES = {
    "txt2img": ("Text to image", "prompt, model, sampler, size"),
    "img2img": ("Image to image", "redraw the image"),
    "adetailer": ("ADetailer", "fix faces and hands"),
    "upscale": ("Upscale", "enlarge the result"),
}


class PipelinePanel(QScrollArea):
    """The four stage cards; `values()` is exactly what Run sends.

    Built from field specs alone (controller/cards.py at start-up, so it paints before the
    models load); `bind` then joins it to the PipelineController.
    """

    values_changed = Signal(str)

    def __init__(self, sections: Mapping[str, Sequence[FieldSpec]], pickers: Collection[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PipelinePanel")
        self.controller: Any = None
        self._pickers = frozenset(pickers)
        self.setWidgetResizable(True)
        # A column narrower than the cards scrolls sideways too: never cut off a field's right half.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.editors: dict[str, FieldEditor] = {}
        self.cards: dict[str, StageCard] = {}
        inner = QWidget()
        inner.setObjectName("PipelineCards")
        layout = QVBoxLayout(inner)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(10)
        for stage in ("txt2img", "img2img", "adetailer", "upscale"):
            specs = list(sections[stage])
            switch = self._editor(next(s for s in specs if s.name == "enabled"))
            editors = [self._editor(s) for s in specs if s.name != "enabled"]
            subs: list[CollapsibleSection] = []
            if stage == "txt2img":
                for sub in ("txt2img.hires", "txt2img.refiner"):
                    sub_specs = sections[sub]
                    sub_switch = self._editor(next(s for s in sub_specs if s.name == "enabled"))
                    subs.append(CollapsibleSection(
                        sub_switch, [self._editor(s) for s in sub_specs if s.name != "enabled"]))
            if stage == "adetailer":
                editors += [self._editor(s) for s in sections["adetailer.passes.0"]]
                second = sections.get("adetailer.passes.1")
                if second:  # its switch, then the fields of the second detector pass
                    subs.append(CollapsibleSection(self._editor(second[0]),
                                                   [self._editor(s) for s in second[1:]]))
            title, subtitle = CARD_TITLES[stage]
            card = StageCard(title, switch, editors, subs, subtitle=subtitle)
            self.cards[stage] = card
            layout.addWidget(card)
        layout.addStretch(1)
        self.setWidget(inner)

    def bind(self, controller: Any) -> None:
        """Join the PipelineController: the cards show its config (as the last session left
        them), configs it loads later, and tell it of every change."""
        self.controller = controller
        self.set_values(controller.values_of(controller.config))
        controller.config_loaded.connect(self.set_values)
        self.values_changed.connect(controller.cards_changed)

    def _editor(self, spec: FieldSpec) -> FieldEditor:
        editor = FieldEditor(spec, picker=spec.path in self._pickers, parent=self)
        editor.changed.connect(self.values_changed)
        self.editors[spec.path] = editor
        return editor

    def editor(self, path: str) -> FieldEditor:
        return self.editors[path]

    def values(self) -> dict[str, Any]:
        return {path: editor.value() for path, editor in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for path, value in values.items():
            editor = self.editors.get(path)
            if editor is not None:
                editor.set_value(value)

    def refresh_choices(self, *_args) -> None:
        """Fill the pickers from the connected server's listings."""
        if self.controller is None:
            return
        for path, editor in self.editors.items():
            if path in self._pickers:
                editor.set_choices(self.controller.choices(path))
                # A default the server lacks is not offered as if it were there.
                fallback = self.controller.fallback_choice(path, editor.value())
                if fallback is not None:
                    editor.set_value(fallback)
