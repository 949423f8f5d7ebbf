"""Small configs for queue tests: tiny images, a fixed seed, so runs are quick and comparable."""

from __future__ import annotations

from stablenew.pipeline.config import PipelineConfig


def queue_config(count: int = 1, *, steps: int = 4, prompt: str = "a lighthouse", seed: int = 10
                 ) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.batch_count": count, "txt2img.steps": steps,
        "txt2img.width": 64, "txt2img.height": 64, "txt2img.seed": seed,
        "txt2img.sampler": "Euler a", "txt2img.scheduler": "Automatic"})
