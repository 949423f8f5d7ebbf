"""The "LoRA from library" axis: its values are the Models tab's pick, handed to the randomizer
as plain (name, weight) pairs; the count shown is what a run makes, and follows the pick."""

from __future__ import annotations

import pytest

from stablenew.controller.randomizer_adapter import LIBRARY_EMPTY, RandomizerAdapter
from stablenew.gui.panels.randomizer_panel import RandomizerPanel
from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.plan import plan
from stablenew.randomizer.spec import Axis, AxisKind, LoraValue, VariationSpec

WAIT_MS = 5000


def test_library_axis_values_are_loras_injected_like_a_lora_axis():
    axis = Axis.model_validate({"lora_library": ["neon:0.7", {"name": "ink", "weight": 1}]})
    assert axis.kind is AxisKind.lora_library and axis.title == "LoRA from library"
    assert axis.values == [LoraValue(name="neon", weight=0.7), LoraValue(name="ink", weight=1.0)]
    base = PipelineConfig().with_changes({"txt2img.prompt": "a city"})
    p = plan(base, VariationSpec(axes=[axis], seed=1))
    assert p.count == 2
    assert [i.config.txt2img.prompt for i in p] == ["a city, <lora:neon:0.7>", "a city, <lora:ink:1>"]


@pytest.fixture
def adapter(qtbot):
    adapter = RandomizerAdapter(debounce_ms=10)
    adapter.set_enabled(True)
    yield adapter
    adapter.close()


def test_the_count_follows_the_models_pick_and_is_what_runs(qtbot, adapter):
    base = PipelineConfig().with_changes({"txt2img.prompt": "x"})
    adapter.set_base_config(base)
    adapter.set_library_loras([("neon", 0.7), ("ink", 1.0)])
    with qtbot.waitSignal(adapter.exact_count_changed, timeout=WAIT_MS) as counted:
        adapter.set_axes([("lora_library", "whatever the row shows"), ("steps", "10, 20")])
    assert counted.args == [4]
    with qtbot.waitSignal(adapter.exact_count_changed, timeout=WAIT_MS) as counted:
        adapter.set_library_loras([("neon", 0.7), ("ink", 1.0), ("zeta", 0.5)])
    assert counted.args == [6]
    p = adapter.plan_for_run(base)  # the plan counted, not one made again
    assert p.count == adapter.exact_count() == 6
    assert {i.config.txt2img.prompt for i in p} == {"x, <lora:neon:0.7>", "x, <lora:ink:1>",
                                                    "x, <lora:zeta:0.5>"}


def test_an_empty_pick_says_what_to_do(qtbot, adapter):
    with qtbot.waitSignal(adapter.error_changed, timeout=WAIT_MS) as blocker:
        adapter.set_axes([("lora_library", "")])
    assert blocker.args == [LIBRARY_EMPTY]
    assert not any(a.kind is AxisKind.lora_library for a in adapter.spec.axes)
    # A filter showing thousands is refused at once, in words, before any validation work.
    with qtbot.waitSignal(adapter.error_changed, timeout=WAIT_MS) as blocker:
        adapter.set_library_loras([(f"l{i}", 1.0) for i in range(5000)])
        adapter.set_axes([("lora_library", "")])
    assert blocker.args[0].startswith("The Models tab picks 5000 LoRAs")


def test_the_axis_row_shows_the_pick_read_only(qtbot, adapter):
    panel = RandomizerPanel(adapter)
    qtbot.addWidget(panel)
    adapter.set_library_loras([("neon", 0.7)])
    row = panel.axes.add_axis()
    row.kind.setCurrentIndex(row.kind.findData("lora_library"))
    assert row.values.isReadOnly() and row.values.text() == "neon:0.7"
    qtbot.waitUntil(lambda: adapter.exact_count() == 1, timeout=WAIT_MS)
    with qtbot.waitSignal(adapter.exact_count_changed, timeout=WAIT_MS):
        adapter.set_library_loras([("neon", 0.7), ("ink", 1.0)])
    assert row.values.text() == "neon:0.7, ink:1"
    assert adapter.exact_count() == 2
    assert "make 2 images in 2 variants" in panel.count_label.text()
    row.kind.setCurrentIndex(row.kind.findData("lora"))
    assert not row.values.isReadOnly()
