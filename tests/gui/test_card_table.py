"""The cards paint from controller/cards.py before the models load; it must match the models."""

from __future__ import annotations

from pathlib import Path

from stablenew.controller import cards
from tools.card_table import TABLE, render


def test_the_card_table_matches_the_pipeline_models(qapp):
    assert Path(cards.__file__).resolve() == TABLE.resolve()
    expected = render()
    assert TABLE.read_text(encoding="utf-8") == expected, (
        "stablenew/controller/cards.py is out of date with the pipeline models: run `make cards`")


def test_the_card_table_is_what_the_controller_describes(qapp):
    """Not only the same text: the same fields, limits, defaults and pickers, read back."""
    from stablenew.controller.pipeline_controller import PipelineController

    controller = PipelineController(None, Path)
    try:
        live = controller.sections()
        assert {name: tuple(specs) for name, specs in live.items()} == cards.SECTIONS
        paths = [spec.path for specs in live.values() for spec in specs]
        assert {path for path in paths if controller.is_picker(path)} == cards.PICKERS
        assert "txt2img.sampler" in cards.PICKERS and "txt2img.steps" not in cards.PICKERS
    finally:
        controller.deleteLater()
