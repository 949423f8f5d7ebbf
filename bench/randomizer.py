"""Benchmark: counting a 10^12-image spec and producing its first 100 resolved configs.

The spec mixes the three sources of variation: 4 prompt variants of 10 options (10^4), two
wildcards of 100 lines each (10^4) and 4 config axes of 10 values (10^4). Baselines, measured
in the same run: dynamicprompts' combinatorial sampler producing the first 100 prompt strings
from the pre-parsed template (strings only, no configs), and its enumeration rate
extrapolated to 10^12 (the only way it can count). Prints `RESULT count_1e12_ms=… first_100_ms=…` last.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamicprompts.generators import CombinatorialPromptGenerator  # noqa: E402
from dynamicprompts.wildcards import WildcardManager  # noqa: E402

from stablenew.pipeline.config import PipelineConfig  # noqa: E402
from stablenew.randomizer import counting  # noqa: E402
from stablenew.randomizer.plan import plan  # noqa: E402
from stablenew.randomizer.spec import VariationSpec  # noqa: E402

REPEATS = 7  # best of 7, as the other benchmarks report: the machine may be busy


def _ms(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "subject.txt").write_text(
            "\n".join(f"subject {i}" for i in range(100)) + "\n", encoding="utf-8")
        (folder / "place.txt").write_text(
            "\n".join(f"in place {i}" for i in range(100)) + "\n", encoding="utf-8")
        template = "__subject__ __place__, " + ", ".join(
            "{" + "|".join(f"word{i}_{j}" for j in range(10)) + "}" for i in range(4))
        axes = [{"steps": list(range(20, 30))}, {"cfg_scale": [4 + j / 2 for j in range(10)]},
                {"sampler": [f"Sampler {j}" for j in range(10)]},
                {"lora": [f"style{j}:0.{j}" for j in range(10)]}]
        spec = VariationSpec(template=template, axes=axes, seed=1)
        base = PipelineConfig()
        counting.parse_template("{warm|up} the parser")  # pyparsing builds its grammar once

        cold = []
        for _ in range(REPEATS):  # a new template each time: parse + compile + count
            counting._parse_cached.cache_clear()
            ms, p = _ms(lambda: plan(base, spec, wildcards_dir=WildcardManager(folder)))
            cold.append(ms)
        assert p.count == 10**12, p.count
        warm = [_ms(lambda: plan(base, spec, wildcards_dir=folder))[0] for _ in range(REPEATS)]
        first = [_ms(lambda: p.preview(100))[0] for _ in range(REPEATS)]

        generator = CombinatorialPromptGenerator(WildcardManager(folder))
        # Parsed once outside the timing, so the baseline is the library's own expansion only.
        command = counting.parse_template(template)
        context = generator._context
        base_first = [_ms(lambda: [str(r) for r in context.sample_prompts(command, 100)])[0]
                      for _ in range(REPEATS)]
        enum_ms, listed = _ms(lambda: generator.generate(template, max_prompts=20_000))
        extrapolated_ms = enum_ms / len(listed) * 10**12

    count_ms = min(cold)
    first_ms = min(first)
    base_ms = min(base_first)
    print(f"spec: {p.summary()}")
    print(f"count (parse+compile+count, cold) best {count_ms:.2f} ms, median "
          f"{statistics.median(cold):.2f} ms; re-plan with parse cached {min(warm):.2f} ms")
    print(f"first 100 resolved PipelineConfigs: best {first_ms:.2f} ms (median "
          f"{statistics.median(first):.2f}); dynamicprompts' first 100 prompt strings "
          f"(pre-parsed): {base_ms:.2f} ms (ratio {base_ms / first_ms:.2f}x)")
    print(f"dynamicprompts enumerating to count: {enum_ms:.0f} ms for {len(listed)} prompts, "
          f"~{extrapolated_ms / 8.64e7:,.0f} days for 10^12 "
          f"(ratio ~{extrapolated_ms / count_ms:.1e}x)")
    print(f"RESULT count_1e12_ms={count_ms:.2f} first_100_ms={first_ms:.2f} "
          f"count_speedup={extrapolated_ms / count_ms:.3g} "
          f"first_100_vs_dynamicprompts={base_ms / first_ms:.2f} "
          f"count_cached_ms={min(warm):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
