"""Saving over a preset someone edited by hand keeps their comments (and only their comments)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import Preset, PresetStore


def test_saving_over_a_hand_edited_preset_keeps_its_comments(tmp_path: Path):
    store = PresetStore(tmp_path / "user")
    store.user_dir.mkdir(parents=True)
    path = store.path_for("Portraits")
    path.write_text(textwrap.dedent("""\
        # Tuned for skin over a week; see the learning insights
        version: 1
        name: Portraits
        config:
          txt2img:
            steps: 30  # 30-35 scored best
            cfg_scale: 5.0  # low for skin
        """), encoding="utf-8")
    loaded, _ = store.load(path)
    config = PipelineConfig().layered(loaded.partial()).with_changes({"txt2img.steps": 34})
    saved = store.save(Preset.from_config("Portraits", config))
    assert saved == path
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Tuned for skin over a week")
    assert "steps: 34  # 30-35 scored best" in text
    assert "cfg_scale: 5.0  # low for skin" in text
    again, _ = store.load(path)
    assert again == Preset.from_config("Portraits", config)  # the data is exactly what was saved
