"""A1111 infotext: writer and parser agree with each other and with A1111's own output."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.infotext import model_name, parse_infotext, read_image_metadata
from stablenew.pipeline.infotext_config import config_from_image, config_from_infotext
from stablenew.pipeline.infotext_write import build_infotext, format_infotext
from stablenew.pipeline.outputs import write_png
from tests.pipeline.memory_backend import png

# Written by A1111 1.10.1 (hires + LoRA hashes with a quoted value).
A1111_SAMPLE = (
    "masterpiece, a castle on a hill, <lora:detail:0.6>\n"
    "at dusk\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6, Seed: 123, "
    "Size: 832x1216, Model hash: 0123456789, Model: myModel, Denoising strength: 0.45, "
    "Clip skip: 2, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: Latent, "
    'Lora hashes: "detail: 111, b: 222", Version: v1.10.1'
)


def test_parses_a1111_sample_like_a1111():
    p = parse_infotext(A1111_SAMPLE)
    assert p["Prompt"] == "masterpiece, a castle on a hill, <lora:detail:0.6>\nat dusk"
    assert p["Negative prompt"] == "blurry, lowres"
    assert p["Steps"] == "25" and p["Sampler"] == "DPM++ 2M" and p["Schedule type"] == "Karras"
    assert p["Size-1"] == "832" and p["Size-2"] == "1216"
    assert p["Lora hashes"] == "detail: 111, b: 222"
    assert p["Version"] == "v1.10.1"


def test_a1111_sample_becomes_a_config_and_keeps_unknown_keys():
    config, loaded, unknown = config_from_infotext(parse_infotext(A1111_SAMPLE))
    t = config.txt2img
    assert (t.steps, t.sampler, t.scheduler, t.cfg_scale, t.seed) == (25, "DPM++ 2M", "Karras", 6, 123)
    assert (t.width, t.height, t.clip_skip, t.checkpoint) == (832, 1216, 2, "myModel")
    assert t.hires.enabled and t.hires.scale == 1.5 and t.hires.steps == 12
    assert t.hires.denoise == 0.45
    assert "txt2img.steps" in loaded and "txt2img.hires.enabled" in loaded
    assert unknown == ["Lora hashes"]


def test_old_sampler_names_split_off_the_scheduler():
    config, _, _ = config_from_infotext(parse_infotext(
        "cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512"))
    assert config.txt2img.sampler == "DPM++ 2M" and config.txt2img.scheduler == "Karras"


def test_out_of_range_values_are_reported_not_loaded():
    config, loaded, unknown = config_from_infotext(parse_infotext(
        "cat\nSteps: 900, Sampler: Euler, CFG scale: x, Seed: 1, Size: 512x512"))
    assert config.txt2img.steps == PipelineConfig().txt2img.steps
    assert "Steps" in unknown and "CFG scale" in unknown
    assert "txt2img.sampler" in loaded


def test_model_names_like_a1111():
    assert model_name("SDXL/juggernaut_v9.safetensors [abc123]") == "juggernaut_v9"
    assert model_name("C:\\models\\sd15.ckpt") == "sd15"
    assert model_name("dreamshaper_8") == "dreamshaper_8" and model_name("  ") is None


def test_writer_quotes_like_a1111():
    text = format_infotext("p", "", {"Steps": 20, "Model": "a, b", "Sampler": "x:y", "Skip": None,
                                     "Tiling": "Tiling", "CFG scale": 7.0})
    assert text == 'p\nSteps: 20, Model: "a, b", Sampler: "x:y", Tiling, CFG scale: 7'


def _full_config(prompt: str, negative: str, checkpoint: str, sampler: str) -> PipelineConfig:
    return PipelineConfig().with_changes({
        "txt2img.prompt": prompt, "txt2img.negative_prompt": negative,
        "txt2img.checkpoint": checkpoint, "txt2img.sampler": sampler, "txt2img.steps": 31,
        "txt2img.cfg_scale": 5.5, "txt2img.width": 640, "txt2img.height": 768,
        "txt2img.clip_skip": 2, "txt2img.hires.enabled": True, "txt2img.hires.scale": 1.5,
        "txt2img.hires.steps": 9, "txt2img.hires.denoise": 0.35,
        "txt2img.hires.upscaler": "4x-UltraSharp", "txt2img.refiner.enabled": True,
        "txt2img.refiner.checkpoint": "refiner, v2", "txt2img.refiner.switch_at": 0.7,
        "adetailer.enabled": True,
        "adetailer.passes": [{"model": "face_yolov8n.pt", "prompt": "smile, detailed"},
                             {"model": "hand_yolov8n.pt", "denoise": 0.3, "confidence": 0.5}],
        "upscale.enabled": True, "upscale.scale": 2.0, "upscale.upscaler": "R-ESRGAN 4x+",
        "img2img.enabled": True, "img2img.denoise": 0.25, "img2img.steps": 14,
    })


_line = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                min_size=1, max_size=40).map(str.strip).filter(
    lambda s: s and not s.startswith("Negative prompt:"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(prompt="0", negative="0", checkpoint="/ 0", sampler="0")  # found by a CI run
@given(prompt=st.lists(_line, min_size=1, max_size=3).map("\n".join), negative=_line,
       checkpoint=_line, sampler=_line)
def test_round_trip_write_parse_same_values(prompt, negative, checkpoint, sampler):
    config = _full_config(prompt, negative, checkpoint, sampler)
    chain = ("txt2img", "img2img", "adetailer", "upscale")
    text = build_infotext(config, 4242, chain)
    back, loaded, unknown = config_from_infotext(parse_infotext(text))
    # A prompt whose last line looks like a params line is ambiguous in A1111 too.
    assume(parse_infotext(text)["Prompt"] == prompt)
    # Like A1111, the text names the model by its file stem (no folder, extension or hash).
    name = model_name(checkpoint)
    expected = config.with_changes({"txt2img.seed": 4242,
                                    "txt2img.checkpoint": name or PipelineConfig().txt2img.checkpoint})
    assert back.txt2img == expected.txt2img
    assert back.adetailer == expected.adetailer
    assert back.upscale == expected.upscale
    assert (back.img2img.enabled, back.img2img.denoise, back.img2img.steps) == (True, 0.25, 14)
    assert unknown == []


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_into_a_valid_config_without_raising(text):
    parsed = parse_infotext(text)
    config, loaded, unknown = config_from_infotext(parsed)
    assert PipelineConfig.model_validate(config.model_dump()) == config
    assert set(unknown) <= set(parsed)  # only keys the text really had are reported


def test_jpeg_user_comment_is_read(tmp_path):
    import io

    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111_SAMPLE.encode("utf-16-be")
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, format="JPEG", exif=exif)
    path = tmp_path / "a.jpg"
    path.write_bytes(out.getvalue())
    meta = read_image_metadata(path)
    assert meta.format == "JPEG" and meta.parameters == A1111_SAMPLE
    assert meta.parsed["Seed"] == "123"


def test_img2img_only_chain_describes_the_img2img_pass():
    config = PipelineConfig().with_changes({"txt2img.prompt": "base", "img2img.enabled": True,
                                            "img2img.prompt_override": "override",
                                            "img2img.denoise": 0.3, "img2img.steps": 12})
    p = parse_infotext(build_infotext(config, 9, ("img2img",), size=(300, 200)))
    assert p["Prompt"] == "override" and p["Denoising strength"] == "0.3"
    assert (p["Size-1"], p["Size-2"], p["Steps"], p["Seed"]) == ("300", "200", "12", "9")


def test_png_chunks_read_back_and_config_from_image(tmp_path):
    config = _full_config("a red fox, 🦊", "ugly", "model", "Euler a")
    text = build_infotext(config, 77, ("txt2img",))
    path = tmp_path / "x.png"
    write_png(path, png(32, 32, 1, text={"parameters": "server text"}),
              {"parameters": text, "stablenew": '{"config": ' + config.model_dump_json()
               + ', "seed": 77}'})
    meta = read_image_metadata(path)
    assert meta.parameters == text and meta.width == 32
    assert meta.parsed["Prompt"] == "a red fox, 🦊"
    loaded_config, loaded, unknown = config_from_image(path)
    assert loaded_config.txt2img.seed == 77 and loaded_config.upscale == config.upscale
    assert "txt2img.prompt" in loaded and unknown == []


def test_config_from_a1111_only_png(tmp_path):
    path = tmp_path / "a1111.png"
    path.write_bytes(png(16, 16, 3, text={"parameters": A1111_SAMPLE}))
    config, loaded, unknown = config_from_image(path)
    assert config.txt2img.seed == 123 and unknown == ["Lora hashes"]


def test_unreadable_image_gives_a_plain_error(tmp_path):
    import pytest

    from stablenew.pipeline.infotext import ImageMetadataError

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageMetadataError, match="not an image"):
        read_image_metadata(bad)
    plain = tmp_path / "plain.png"
    plain.write_bytes(png(8, 8, 1))
    with pytest.raises(ImageMetadataError, match="no generation settings"):
        config_from_image(plain)


def test_a_huge_line_is_prompt_text_read_in_linear_time():
    """A1111's expression takes minutes on a long run without "," or ":" (here 200,000 chars)."""
    import time

    text = "x" * 200_000
    start = time.perf_counter()
    parsed = parse_infotext(f"a cat\n{text}")
    assert time.perf_counter() - start < 5
    assert parsed["Prompt"] == f"a cat\n{text}" and "Steps" not in parsed
    normal = parse_infotext("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    assert (normal["Prompt"], normal["Steps"]) == ("a cat", "20")
