"""Plan == run: the runner executes exactly `plan.count` images against the fake SD WebUI."""

from __future__ import annotations

import pytest

from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.plan import plan
from stablenew.randomizer.spec import VariationSpec

SPECS = [
    VariationSpec(template="a {red|blue} fox", axes=[{"sampler": ["Euler a", "DDIM"]}],
                  images_per_variant=2, seed=1),
    VariationSpec(template="{cat|dog|owl} in __colors__ light", mode="random", count=3,
                  seed_policy="random", seed=2),
    VariationSpec(template="portrait", mode="sequential", seed=3,
                  axes=[{"steps": [2, 3]}, {"lora": ["none", "add_detail:0.5"]}]),
    VariationSpec(template="{2$$a|b|c}", mode="rotate", axes=[{"cfg_scale": [4, 6]}],
                  max_images=4, seed_policy="increment", seed=4),
]


@pytest.mark.parametrize("spec", SPECS, ids=["fanout", "random", "sequential", "rotate"])
async def test_runner_makes_exactly_the_planned_images(spec, backend, wildcards, tmp_path):
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.runner import PipelineRunner

    client, fake = backend
    base = PipelineConfig().with_changes({"txt2img.width": 64, "txt2img.height": 64,
                                          "txt2img.steps": 2})
    p = plan(base, spec, wildcards_dir=wildcards)
    runner = PipelineRunner(tmp_path / "out", thumbnails=False)
    records = []
    for item in p:
        result = await runner.run(item.config, client, CancelToken(), tags=item.tags)
        assert not result.errors, result.errors
        records.extend(result.records)
    assert len(records) == p.count
    assert len(fake.requests_to("/sdapi/v1/txt2img")) == p.count
    # what ran is what the plan said: prompt, seed and variant tags, image by image
    planned = list(p)
    assert [(r.config.txt2img.prompt, r.seed, r.tags.variant_id) for r in records] == [
        (i.config.txt2img.prompt, i.config.txt2img.seed, i.variant_id) for i in planned]
