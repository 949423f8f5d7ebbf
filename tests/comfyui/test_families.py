"""Model families on ComfyUI: Flux and SD3.5 load their parts, checked against /object_info."""

from __future__ import annotations

import pytest

from stablenew.backends.comfyui_workflows import NodeCatalog, WorkflowBuilder, check_graph
from stablenew.backends.errors import MissingResource
from stablenew.backends.families import ModelFamily, detect_family, pick_file, precision, profile
from stablenew.backends.types import HiresFix, Img2ImgJob, Refiner, Sampling, Txt2ImgJob
from tests.comfyui.test_workflows import by_class, png
from tests.fakes.comfyui import FakeComfyUI

FLUX_NODE = dict(
    checkpoints=("sdxl_base_1.0.safetensors", "flux1-dev-fp8.safetensors"),
    diffusion_models=("flux1-dev.safetensors", "flux1-schnell-Q4_K_S.gguf", "sd3.5_medium.safetensors"),
    text_encoders=("clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp16.safetensors",
                   "t5xxl_fp8_e4m3fn.safetensors"),
    vaes=("ae.safetensors", "sdxl_vae.safetensors", "sd35_vae.safetensors"),
)


def builder_for(**node) -> WorkflowBuilder:
    info = FakeComfyUI(**{**FLUX_NODE, **node})._build_object_info()
    return WorkflowBuilder(NodeCatalog("den-3090", info))


def flux(**kw) -> Sampling:
    base = dict(prompt="a red fox in snow", negative_prompt="blurry", checkpoint="flux1-dev.safetensors",
                sampler="Euler", scheduler="Simple", steps=20, cfg_scale=7.0, guidance=3.2,
                width=1024, height=1024, seed=5)
    return Sampling(**{**base, **kw})


def test_detection_from_choice_label_and_name():
    assert detect_family("flux1-dev-Q8_0.gguf") is ModelFamily.flux
    assert detect_family("models/sd3.5_large_fp8_scaled.safetensors") is ModelFamily.sd35
    assert detect_family("ponyDiffusionV6XL.safetensors") is ModelFamily.pony
    assert detect_family("illustriousXL_v01.safetensors") is ModelFamily.illustrious
    assert detect_family("juggernautXL_v9.safetensors") is ModelFamily.sdxl
    assert detect_family("dreamshaper_8.safetensors") is ModelFamily.sd15
    # A name that says nothing: the catalog's (or CivitAI's) label, then the user's choice.
    assert detect_family("myMerge.safetensors", label="Flux.1 D") is ModelFamily.flux
    assert detect_family("myMerge.safetensors", label="SD 3.5 Large") is ModelFamily.sd35
    assert detect_family("myMerge.safetensors", label="SDXL") is ModelFamily.sdxl
    assert detect_family("flux-lookalike.safetensors", choice="sdxl") is ModelFamily.sdxl
    assert precision("flux1-dev-bnb-nf4.safetensors").value == "nf4"
    assert precision("flux1-schnell-Q4_K_S.gguf").value == "gguf"
    # fp8 encoders before the twice-as-large fp16 ones; the VAE by whole word.
    assert pick_file("t5xxl", FLUX_NODE["text_encoders"]) == "t5xxl_fp8_e4m3fn.safetensors"
    assert pick_file("ae", ("sdxl_vae.safetensors", "ae.safetensors")) == "ae.safetensors"
    assert pick_file("ae", ("sdxl_vae.safetensors",)) is None


def test_every_family_has_readable_defaults():
    for family in ModelFamily:
        prof = profile(family)
        assert prof.defaults["steps"] > 0 and prof.vram.base_gb > 0
    assert profile(ModelFamily.flux).defaults_for("flux1-schnell.safetensors")["steps"] == 4
    assert not profile(ModelFamily.flux).negative_prompt
    assert "cfg_scale" in profile(ModelFamily.flux).hidden


def test_flux_diffusion_model_graph_loads_encoders_and_vae_with_guidance_and_cfg_1():
    b = builder_for()
    wf = b.txt2img(Txt2ImgJob(sampling=flux(), task_id="t1"))
    g = wf.to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "CheckpointLoaderSimple") == []
    assert by_class(g, "UNETLoader")[0]["unet_name"] == "flux1-dev.safetensors"
    clip = by_class(g, "DualCLIPLoader")[0]
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == (
        "clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "flux")
    assert by_class(g, "VAELoader")[0]["vae_name"] == "ae.safetensors"
    assert by_class(g, "FluxGuidance")[0]["guidance"] == 3.2
    ks = by_class(g, "KSampler")[0]
    assert ks["cfg"] == 1.0 and ks["sampler_name"] == "euler" and ks["scheduler"] == "simple"
    # The positive goes through the guidance; the negative is empty (Flux takes none).
    assert g[ks["positive"][0]]["class_type"] == "FluxGuidance"
    assert g[ks["negative"][0]]["inputs"]["text"] == ""
    assert any("negative prompt was left out" in w for w in wf.warnings)
    assert by_class(g, "EmptySD3LatentImage")[0]["width"] == 1024
    assert wf.checkpoint == "flux1-dev.safetensors"


def test_flux_hires_and_refiner_keep_cfg_1_and_say_so():
    b = builder_for()
    wf = b.txt2img(Txt2ImgJob(sampling=flux(), task_id="t1", hires=HiresFix(cfg_scale=6.0, scale=1.5),
                              refiner=Refiner("sdxl_refiner_1.0.safetensors")))
    g = wf.to_api()
    assert [k["cfg"] for k in by_class(g, "KSampler")] == [1.0, 1.0]
    assert by_class(g, "KSamplerAdvanced") == []
    assert any("refiner was not used" in w for w in wf.warnings)


def test_flux_all_in_one_checkpoint_uses_its_own_parts():
    b = builder_for()
    g = b.txt2img(Txt2ImgJob(sampling=flux(checkpoint="flux1-dev-fp8"), task_id="t1")).to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "CheckpointLoaderSimple")[0]["ckpt_name"] == "flux1-dev-fp8.safetensors"
    assert by_class(g, "DualCLIPLoader") == [] and by_class(g, "VAELoader") == []
    assert by_class(g, "FluxGuidance")


def test_chosen_encoders_and_vae_win_over_the_family_hints():
    b = builder_for()
    g = b.txt2img(Txt2ImgJob(sampling=flux(text_encoders=("clip_l", "t5xxl_fp16"), vae="ae"),
                             task_id="t1")).to_api()
    assert by_class(g, "DualCLIPLoader")[0]["clip_name2"] == "t5xxl_fp16.safetensors"


@pytest.mark.parametrize(("node", "words"), [
    (dict(text_encoders=("clip_l.safetensors",)),
     ["Text encoder 'T5-XXL (t5xxl…)' is not installed on node 'den-3090'", "models/text_encoders"]),
    (dict(vaes=("sdxl_vae.safetensors",)),
     ["VAE 'Flux.1 VAE (ae.safetensors)' is not installed", "models/vae"]),
    (dict(diffusion_models=()),
     ["Diffusion model 'flux1-dev.safetensors' is not installed", "models/diffusion_models"]),
])
def test_missing_flux_parts_are_named_in_plain_words_before_sending(node, words):
    with pytest.raises(MissingResource) as caught:
        builder_for(**node).txt2img(Txt2ImgJob(sampling=flux(), task_id="t1"))
    for w in words:
        assert w in caught.value.message


def test_gguf_needs_the_custom_node_and_uses_it_when_installed():
    with pytest.raises(MissingResource) as caught:
        builder_for().txt2img(Txt2ImgJob(sampling=flux(checkpoint="flux1-schnell-Q4_K_S.gguf"), task_id="t"))
    assert "ComfyUI-GGUF" in caught.value.message
    b = builder_for(gguf=True)
    g = b.txt2img(Txt2ImgJob(sampling=flux(checkpoint="flux1-schnell-Q4_K_S.gguf"), task_id="t")).to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "UnetLoaderGGUF")[0]["unet_name"] == "flux1-schnell-Q4_K_S.gguf"


def test_sd35_loads_three_encoders_and_its_shift_and_keeps_the_negative():
    b = builder_for()
    s = Sampling(prompt="a lighthouse", negative_prompt="blurry", checkpoint="sd3.5_medium.safetensors",
                 sampler="Euler", scheduler="SGM Uniform", steps=30, cfg_scale=4.5, width=1024,
                 height=1024, seed=1)
    wf = b.txt2img(Txt2ImgJob(sampling=s, task_id="t1"))
    g = wf.to_api()
    check_graph(g, b.catalog)
    tri = by_class(g, "TripleCLIPLoader")[0]
    assert (tri["clip_name1"], tri["clip_name2"], tri["clip_name3"]) == (
        "clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp8_e4m3fn.safetensors")
    assert by_class(g, "VAELoader")[0]["vae_name"] == "sd35_vae.safetensors"
    assert by_class(g, "ModelSamplingSD3")[0]["shift"] == 3.0
    ks = by_class(g, "KSampler")[0]
    assert ks["cfg"] == 4.5 and ks["scheduler"] == "sgm_uniform"
    assert g[ks["negative"][0]]["inputs"]["text"] == "blurry"
    assert g[ks["model"][0]]["class_type"] == "ModelSamplingSD3"


def test_sdxl_graph_is_unchanged_by_families():
    b = builder_for()
    s = Sampling(prompt="p", negative_prompt="n", checkpoint="sdxl_base_1.0", cfg_scale=6.0, clip_skip=2,
                 width=1024, height=1024)
    g = b.txt2img(Txt2ImgJob(sampling=s, task_id="t")).to_api()
    assert {n["class_type"] for n in g.values()} == {
        "CheckpointLoaderSimple", "CLIPSetLastLayer", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
        "VAEDecode", "PreviewImage"}
    assert by_class(g, "KSampler")[0]["cfg"] == 6.0


def test_flux_img2img_graph():
    b = builder_for()
    g = b.img2img(Img2ImgJob(sampling=flux(width=64, height=64), init_image=png(), task_id="t",
                             denoise=0.6)).to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "KSampler")[0]["cfg"] == 1.0 and by_class(g, "FluxGuidance")


@pytest.mark.parametrize("fake_comfyui", [FLUX_NODE], indirect=True)
async def test_a_flux_job_end_to_end_on_the_fake_node(comfy, fake_comfyui):
    result = await comfy.txt2img(Txt2ImgJob(sampling=flux(width=256, height=256), task_id="t-flux"))
    assert len(result.images) == 1 and result.ran is not None
    assert result.ran.checkpoint == "flux1-dev.safetensors"
    sent = fake_comfyui.received[-1]["prompt"]
    classes = {n["class_type"] for n in sent.values()}
    assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance"} <= classes
    assert result.info["prompts"][0] == sent


@pytest.mark.parametrize("fake_comfyui", [{**FLUX_NODE, "vaes": ()}], indirect=True)
async def test_a_flux_job_without_its_vae_is_refused_before_sending(comfy, fake_comfyui):
    with pytest.raises(MissingResource) as caught:
        await comfy.txt2img(Txt2ImgJob(sampling=flux(width=256, height=256), task_id="t-flux"))
    assert "VAE" in caught.value.message and fake_comfyui.received == []


def test_an_sd35_checkpoint_without_its_encoders_inside_needs_them_beside_it():
    s = Sampling(prompt="p", checkpoint="sd3.5_large.safetensors", sampler="Euler", scheduler="SGM Uniform")
    node = dict(checkpoints=("sd3.5_large.safetensors", "sd3.5_large_fp8_scaled.safetensors"))
    with pytest.raises(MissingResource) as caught:
        only_clip_l = builder_for(**node, text_encoders=("clip_l.safetensors",))
        only_clip_l.txt2img(Txt2ImgJob(sampling=s, task_id="t"))
    assert "Text encoder 'CLIP-G (clip_g…)' is not installed" in caught.value.message
    b = builder_for(**node)
    g = b.txt2img(Txt2ImgJob(sampling=s, task_id="t")).to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "TripleCLIPLoader") and by_class(g, "VAELoader") == []  # its own VAE
    all_in_one = Sampling(prompt="p", checkpoint="sd3.5_large_fp8_scaled", sampler="Euler",
                          scheduler="SGM Uniform")
    g = builder_for(**node, text_encoders=()).txt2img(Txt2ImgJob(sampling=all_in_one, task_id="t")).to_api()
    assert by_class(g, "TripleCLIPLoader") == [] and by_class(g, "ModelSamplingSD3")
