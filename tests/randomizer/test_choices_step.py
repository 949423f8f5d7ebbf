"""Every runner the machinery makes picks a prompt's choices first: work queued any way (Add to
queue, the funnel's drafts) never sends `{red|blue}` to the server as words."""

from __future__ import annotations

from stablenew.cluster.machinery import RunMachinery
from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig


def _config(prompt: str, seed: int) -> PipelineConfig:
    return PipelineConfig().with_changes({"txt2img.prompt": prompt, "txt2img.seed": seed,
                                          "txt2img.width": 64, "txt2img.height": 64,
                                          "txt2img.steps": 2})


async def test_queued_work_has_its_choices_picked_before_it_is_sent(backend, tmp_path):
    client, fake = backend
    (tmp_path / "wild").mkdir()
    (tmp_path / "wild" / "animal.txt").write_text("cat\ndog\n")
    runner = RunMachinery(tmp_path / "out", wildcards=lambda: tmp_path / "wild").pipeline_runner("n")
    for seed in range(6):
        result = await runner.run(_config("a __animal__ under a {red|blue} sky", seed), client,
                                  CancelToken())
        assert result.records
    sent = [r.payload["prompt"] for r in fake.requests_to("/sdapi/v1/txt2img")]
    assert len(sent) == 6 and all("{" not in p and "__" not in p for p in sent)
    assert {p.split()[1] for p in sent} <= {"cat", "dog"}
    assert len(set(sent)) > 1  # six seeds do not all pick the same


async def test_a_prompt_whose_choices_cannot_be_read_goes_as_written_and_says_so(backend, tmp_path):
    client, fake = backend
    runner = RunMachinery(tmp_path / "out").pipeline_runner("n")
    result = await runner.run(_config("a {red|blue sky", 3), client, CancelToken())
    assert result.records
    assert fake.requests_to("/sdapi/v1/txt2img")[0].payload["prompt"] == "a {red|blue sky"
    assert any("could not be read" in n and "sent as written" in n for n in result.warnings)
