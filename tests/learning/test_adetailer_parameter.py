"""The learning run's "ADetailer denoise" reads and sets the first pass, and only when it runs."""

from __future__ import annotations

from stablenew.learning.parameters import get_parameter
from stablenew.pipeline.config import PipelineConfig


def test_adetailer_denoise_of_a_switched_off_first_pass_played_no_part():
    param = get_parameter("adetailer_denoise")
    on = PipelineConfig().with_changes({"adetailer.enabled": True, "adetailer.passes.0.denoise": 0.3})
    assert param.value_of(on) == 0.3
    off = on.with_changes({"adetailer.passes.0.enabled": False})
    assert param.value_of(off) is None
    varied = param.apply(off, 0.5)
    assert varied.adetailer.passes[0].enabled and varied.adetailer.passes[0].denoise == 0.5
    assert param.value_of(varied) == 0.5
