"""`stablenew run CONFIG.yaml --node URL` against a ComfyUI node (the fake, in a thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew.cli import main
from stablenew.pipeline.infotext import read_image_metadata

CONFIG = """\
version: 1
txt2img:
  prompt: "a lighthouse, stormy sea <lora:detail_tweaker:0.4>"
  negative_prompt: blurry
  sampler: DPM++ 2M
  scheduler: Karras
  width: 64
  height: 64
  steps: 4
  seed: 77
upscale:
  enabled: true
  scale: 2
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", [None, "comfyui"], ids=["detected", "forced"])
def test_run_on_comfyui_writes_our_infotext(fake_comfyui_thread, config_file, tmp_path, capsys, kind):
    out = tmp_path / "out"
    count = 2 if kind is None else 1
    args = ["run", str(config_file), "--node", fake_comfyui_thread.url, "--out", str(out),
            "--count", str(count)]
    if kind:
        args += ["--kind", kind]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    paths = [Path(line) for line in captured.out.splitlines()]
    assert len(paths) == count and all(p.exists() for p in paths)
    for index, path in enumerate(paths):
        meta = read_image_metadata(path)
        assert (meta.width, meta.height) == (128, 128)
        assert meta.parsed["Seed"] == str(77 + index)
        assert meta.parsed["Sampler"] == "DPM++ 2M" and meta.parsed["Schedule type"] == "Karras"
        assert meta.parsed["Postprocess upscaler"] == "R-ESRGAN 4x+"
        assert meta.parsed["Prompt"].startswith("a lighthouse, stormy sea")
    # It really ran as ComfyUI prompts: per image, a txt2img prompt and an upscale prompt.
    assert len(fake_comfyui_thread.received) == 2 * count
    sampler = next(n for n in fake_comfyui_thread.received[0]["prompt"].values()
                   if n["class_type"] == "KSampler")
    assert (sampler["inputs"]["sampler_name"], sampler["inputs"]["scheduler"]) == ("dpmpp_2m", "karras")


def test_missing_checkpoint_fails_with_plain_words(fake_comfyui_thread, config_file, tmp_path, capsys):
    config_file.write_text(CONFIG.replace("  seed: 77", "  seed: 77\n  checkpoint: nope.safetensors"),
                           encoding="utf-8")
    code = main(["run", str(config_file), "--node", fake_comfyui_thread.url, "--out", str(tmp_path / "o"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2  # checked before anything starts (issue 17 item 21)
    assert "has no model named 'nope.safetensors'" in err and "It has: " in err
    assert fake_comfyui_thread.received == []
