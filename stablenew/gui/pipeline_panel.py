"""PipelinePanel: the stage cards; reads and shows card values as dotted config paths."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from stablenew.controller.field_spec import FieldSpec, FieldValue
from stablenew.gui.cards.editors import FieldEditor
from stablenew.gui.cards.references_section import MAX_UNITS as MAX_REFERENCES
from stablenew.gui.cards.references_section import ReferencesSection, picture_dialog
from stablenew.gui.cards.stage_card import CollapsibleSection, FieldGrid, StageCard

if TYPE_CHECKING:
    from stablenew.controller.pipeline_controller import PipelineController
    from stablenew.controller.references import ReferencesController

#: The image-to-image card's start picture: a path, or a file chosen with its button.
INIT_IMAGE = "img2img.init_image"
CARD_TITLES = {
    "txt2img": ("Text to image", "prompt, model, sampler, size"),
    "img2img": ("Image to image", "redraw the image"),
    "adetailer": ("ADetailer", "fix faces and hands"),
    "upscale": ("Upscale", "enlarge the result"),
}


_FLUX_ONLY = frozenset({"txt2img.guidance", "txt2img.vae", "txt2img.text_encoder",
                        "txt2img.text_encoder_2"})


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
        self.controller: PipelineController | None = None
        self._pickers = frozenset(pickers)
        self.setWidgetResizable(True)
        # A column narrower than the cards scrolls sideways too: never cut off a field's right half.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.editors: dict[str, FieldEditor] = {}
        self.cards: dict[str, StageCard] = {}
        self.references: dict[str, ReferencesSection] = {}
        self.references_controller: ReferencesController | None = None
        #: The image files selected in the gallery, for "From gallery" (set by the window).
        self.gallery_selection: Callable[[], list[str]] = list
        self._family_hidden: dict[str, str] = {}
        self._loading = False  # set_values at work: one values_changed at its end
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
            if stage in ("txt2img", "img2img"):
                refs = ReferencesSection(stage, card)
                refs.changed.connect(self._field_changed)
                cast(QVBoxLayout, card.holder.layout()).addWidget(refs)
                self.references[stage] = refs
            self.cards[stage] = card
            layout.addWidget(card)
        layout.addStretch(1)
        self.setWidget(inner)
        # Says which fields the model's family does not use, and why (they are hidden).
        self.family_note = QLabel()
        self.family_note.setObjectName("FamilyNote")
        self.family_note.setWordWrap(True)
        self.family_note.hide()
        self.family_defaults = QPushButton()
        self.family_defaults.setObjectName("FamilyDefaults")
        self.family_defaults.setToolTip("Set sampler, steps, CFG or guidance and size to what this "
                                        "model family works best with")
        self.family_defaults.clicked.connect(self._use_family_defaults)
        self.family_defaults.hide()
        self._family_values: dict[str, FieldValue] = {}
        note_row = QHBoxLayout()
        note_row.setContentsMargins(0, 0, 0, 0)
        note_row.addWidget(self.family_note, 1)
        note_row.addWidget(self.family_defaults)
        cast(QVBoxLayout, self.cards["txt2img"].holder.layout()).insertLayout(0, note_row)
        for path in ("txt2img.checkpoint", "txt2img.family"):
            if path in self.editors:
                self.editors[path].changed.connect(self._family_changed)
        self._add_start_picker()

    def _add_start_picker(self) -> None:
        """A button in the Init image field that opens a file dialog (typing a path was the
        only way besides the gallery's "Use as init image")."""
        field = self.editors.get(INIT_IMAGE)
        if field is None or not isinstance(field.widget, QLineEdit):
            return
        self.choose_start = QAction(self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon),
                                    "Choose a picture…", field.widget)
        self.choose_start.setToolTip("Choose the picture to start from (a copy is kept, so a "
                                     "queued job still has it if the file moves)")
        self.choose_start.triggered.connect(self._choose_start_image)
        field.widget.addAction(self.choose_start, QLineEdit.ActionPosition.TrailingPosition)

    def _choose_start_image(self) -> None:
        dialog = picture_dialog(self, "Choose the picture to start from")
        if self.references_controller is not None:
            dialog.fileSelected.connect(self.references_controller.choose_start_image)
        dialog.open()  # not exec(): the window keeps running while it is open

    def bind(self, controller: PipelineController) -> None:
        """Join the PipelineController: the cards show its config (as the last session left
        them), configs it loads later, and tell it of every change."""
        self.controller = controller
        self._bind_references()  # first: the restored units need the kinds and thumbnails
        self.set_values(controller.values_of(controller.config))
        controller.config_loaded.connect(self.set_values)
        self.values_changed.connect(controller.cards_changed)
        controller.base_models_changed.connect(self._family_changed)
        self._family_changed()

    def _bind_references(self) -> None:
        from stablenew.controller.references import ReferencesController, kind_choices

        if self.references_controller is None:
            self.references_controller = ReferencesController(parent=self)
        refs = self.references_controller
        kinds = kind_choices()
        for section in self.references.values():
            section.kinds = kinds
            section.file_chosen.connect(refs.add_file)
            section.image_pasted.connect(refs.add_bytes)
            section.gallery_requested.connect(self._from_gallery)
            section.thumbnail_wanted.connect(refs.want_thumbnail)
        refs.reference_added.connect(lambda stage, settings, thumb:
                                     self.references[stage].add_unit(settings, thumb))
        refs.thumbnail_ready.connect(lambda stage, path, thumb:
                                     self.references[stage].set_thumbnail(path, thumb))
        refs.reference_failed.connect(lambda stage, text: self.references[stage].show_error(text))
        if INIT_IMAGE in self.editors:
            refs.start_image_ready.connect(self.editors[INIT_IMAGE].set_value)

    def _from_gallery(self, stage: str) -> None:
        section = self.references[stage]
        paths = self.gallery_selection()
        if not paths:
            section.show_error("Select a picture in the gallery first, then press From gallery.")
            return
        refs = self.references_controller
        if refs is None:
            return  # not bound yet: no card can take a picture
        for path in paths[: MAX_REFERENCES - len(section.rows)]:
            refs.add_file(stage, path)

    def _family_changed(self, *_args: object) -> None:
        """Hide the fields the model's family does not use and say why."""
        if self._loading:
            return  # set_values calls this once at its end
        from stablenew.controller.references import family_view

        checkpoint = self.editors.get("txt2img.checkpoint")
        choice = self.editors.get("txt2img.family")
        if checkpoint is None or choice is None:
            return
        name = str(checkpoint.value() or "")
        label = self.controller.base_model_of(name) if self.controller is not None else ""
        view = family_view(name, str(choice.value() or ""), label)
        label, hidden = view.label, view.hidden
        for grid in self.findChildren(FieldGrid):
            grid.hide_fields(hidden)  # the other fields close up: no hole where one was
        refiner = self.editors.get("txt2img.refiner.enabled")
        section = refiner.widget.parentWidget() if refiner is not None else None
        if section is not None:  # the refiner's switch heads its section: hide them together
            section.setVisible("txt2img.refiner.enabled" not in hidden)
        self._family_hidden = dict(hidden)
        # Flux-only fields hidden for other families go without a word (nothing is missing).
        reasons = list(dict.fromkeys(why for path, why in hidden.items() if path not in _FLUX_ONLY))
        self.family_note.setText(f"{label}: {' '.join(reasons)}" if reasons else "")
        self.family_note.setVisible(bool(reasons))
        # Offered once a model or family is chosen, while the card differs from its defaults.
        self._family_values = dict(view.defaults)
        chosen = bool(checkpoint.value()) or choice.value() not in ("", "auto")
        differs = any(path in self.editors and self.editors[path].value() != value
                      for path, value in view.defaults.items())
        self.family_defaults.setText(f"Use {label} defaults")
        self.family_defaults.setVisible(chosen and differs)

    def _use_family_defaults(self) -> None:
        for path, value in self._family_values.items():
            if path in self.editors:
                self.editors[path].set_value(value)
        self.family_defaults.hide()

    def _editor(self, spec: FieldSpec) -> FieldEditor:
        editor = FieldEditor(spec, picker=spec.path in self._pickers, parent=self)
        editor.changed.connect(self._field_changed)
        self.editors[spec.path] = editor
        return editor

    def _field_changed(self, path: str) -> None:
        if not self._loading:
            self.values_changed.emit(path)

    def editor(self, path: str) -> FieldEditor:
        return self.editors[path]

    def values(self) -> dict[str, FieldValue]:
        values: dict[str, FieldValue] = {path: editor.value() for path, editor in self.editors.items()}
        values.update({section.path: section.value() for section in self.references.values()})
        return values

    def set_values(self, values: Mapping[str, FieldValue]) -> None:
        """Show *values* (a config loaded, a preset applied) with one `values_changed("")` at the
        end, not one per field: what a change sets off (the cards' memory, the variant count,
        the family's fields) runs once, and the window answers while a big preset goes in."""
        before = self.values()
        self._loading = True
        try:
            self._set_each(values)
        finally:
            self._loading = False
        self._family_changed()
        if self.values() != before:
            self.values_changed.emit("")

    def _set_each(self, values: Mapping[str, FieldValue]) -> None:
        for path, value in values.items():
            editor = self.editors.get(path)
            if editor is not None:
                editor.set_value(value)
        for stage, section in self.references.items():
            units_value = values.get(section.path)
            if isinstance(units_value, list):
                section.set_value(units_value)
            elif f"{stage}.enabled" in values:  # a whole config, flattened: its units by index
                units: dict[int, dict[str, object]] = {}
                prefix = f"{section.path}."
                for path, value in values.items():
                    if path.startswith(prefix):
                        index, _, name = path[len(prefix):].partition(".")
                        units.setdefault(int(index), {})[name] = value
                section.set_value([units[i] for i in sorted(units)])

    def refresh_choices(self, *_args) -> None:
        """Fill the pickers from the connected server's listings."""
        controller = self.controller
        if controller is None:
            return
        for path, editor in self.editors.items():
            if path in self._pickers:
                editor.set_choices(controller.choices(path), groups=controller.choice_groups(path))
                # A default the server lacks is not offered as if it were there.
                fallback = controller.fallback_choice(path, editor.value())
                if fallback is not None:
                    editor.set_value(fallback)
        models = tuple(controller.reference_models())
        for section in self.references.values():
            section.set_models(models)
