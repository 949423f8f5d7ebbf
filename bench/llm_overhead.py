"""Benchmark: what StableNew adds to a local LLM's own time when it enhances prompts.

A plan of 24 prompt variants is prepared twice in the same run: alone (plan + every resolved
config, what a run does before sending), and with each variant enhanced first (the fake LLM
answers after a fixed 50 ms plus 1 ms per token, streamed) and its config rebuilt with the
enhanced prompt. The LLM's own time is the wall time the fake spends inside its chat handler
(first byte in to last byte out); what is left per prompt is StableNew's: HTTP round trip,
stream parsing, cleaning, the syntax checks and the config. Target: < 5 ms per prompt.
Prints `RESULT llm_overhead_ms=…` last.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stablenew.pipeline.config import PipelineConfig  # noqa: E402
from stablenew.prompting.client import LLMClient  # noqa: E402
from stablenew.prompting.enhance import enhance  # noqa: E402
from stablenew.prompting.templates import get_template  # noqa: E402
from stablenew.randomizer.plan import plan  # noqa: E402
from stablenew.randomizer.spec import VariationSpec  # noqa: E402
from tests.fakes.llm import FakeLLM  # noqa: E402

LATENCY_MS = 50.0
TOKEN_MS = 1.0
REPEATS = 5
TEMPLATE = ("a (red hair:1.2) {woman|man|child} with a {cat|dog|fox|owl} in "
            "{rain|snow}, <lora:add_detail:0.8>")


def _prepare(base: PipelineConfig, spec: VariationSpec) -> list[PipelineConfig]:
    return [item.config for item in plan(base, spec).preview(1000)]


def _enhanced_answer(model: str, messages: list[dict]) -> str:
    prompt = str(messages[-1]["content"]).removeprefix("Prompt: ")
    return ("Here is your enhanced prompt:\n" + prompt.replace("(red hair:1.2)", "red hair")
            + ", cinematic lighting, 85mm, shallow depth of field, film grain")


async def _enhance_and_prepare(client: LLMClient, base: PipelineConfig, spec: VariationSpec,
                               template) -> list[PipelineConfig]:
    out = []
    for config in _prepare(base, spec):
        result = await enhance(client, config.txt2img.prompt, template, model="llama3.2:3b")
        out.append(config.model_copy(update={"txt2img": config.txt2img.model_copy(
            update={"prompt": result.prompt})}))
    return out


async def _measure(fake: FakeLLM) -> tuple[float, float, float, int]:
    base = PipelineConfig()
    spec = VariationSpec(template=TEMPLATE, seed=1)
    template = get_template("cinematic")
    async with LLMClient(fake.url) as client:
        await enhance(client, "warm up", template, model="llama3.2:3b")  # connection, imports
        start = time.perf_counter()
        alone = _prepare(base, spec)
        prepare_s = time.perf_counter() - start
        served_before = fake.served_seconds
        start = time.perf_counter()
        enhanced = await _enhance_and_prepare(client, base, spec, template)
        total_s = time.perf_counter() - start
        served_s = fake.served_seconds - served_before
    assert len(enhanced) == len(alone) == 24, len(alone)
    assert all("(red hair:1.2)" in c.txt2img.prompt and "85mm" in c.txt2img.prompt for c in enhanced)
    return total_s, prepare_s, served_s, len(alone)


def main() -> int:
    with FakeLLM(latency_ms=LATENCY_MS, token_ms=TOKEN_MS, responder=_enhanced_answer
                 ).running_in_thread() as fake:
        runs = [asyncio.run(_measure(fake)) for _ in range(REPEATS)]
    overheads = []
    for total_s, prepare_s, served_s, count in runs:
        per_prompt_ms = (total_s - prepare_s - served_s) * 1000 / count
        overheads.append(per_prompt_ms)
        print(f"enhance+prepare {total_s * 1000:.0f} ms, prepare alone {prepare_s * 1000:.1f} ms, "
              f"LLM's own time {served_s * 1000:.0f} ms for {count} prompts: "
              f"StableNew adds {per_prompt_ms:.2f} ms per prompt")
    result = statistics.median(overheads)
    print(f"median over {REPEATS} runs: {result:.2f} ms per prompt (target < 5 ms)")
    print(f"RESULT llm_overhead_ms={result:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
