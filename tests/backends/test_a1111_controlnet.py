"""Reference images on A1111/Forge: ControlNet units in alwayson_scripts, checked against the
extension's own lists; a node without the extension is refused before anything is sent."""

from __future__ import annotations

import pytest

from stablenew.backends.errors import MissingResource, RequestRejected
from stablenew.backends.types import Img2ImgJob, ReferenceKind, ReferenceUnit, Txt2ImgJob
from tests.backends.conftest import png
from tests.backends.test_a1111_client import client, sampling

CN_MODELS = ("control_v11p_sd15_canny [d14c016b]", "control_v11f1p_sd15_depth [cfd03158]",
             "diffusers_xl_canny_mid [112a778d]", "ip-adapter_sd15 [6a3f6166]",
             "ip-adapter-plus-face_sd15 [7f7a633a]")
WITH_CN = {"controlnet_models": CN_MODELS}


def canny(**kw) -> ReferenceUnit:
    return ReferenceUnit(**{"image": png(32, 32), "kind": ReferenceKind.canny, "strength": 0.8,
                            "start": 0.1, "end": 0.9, **kw})


@pytest.mark.parametrize("fake_sdwebui", [WITH_CN], indirect=True)
async def test_a_controlnet_job_sends_units_the_extension_takes_and_its_infotext_names_them(fake_sdwebui):
    units = (canny(), ReferenceUnit(png(24, 24), ReferenceKind.ip_face, strength=0.6),
             ReferenceUnit(png(24, 24), ReferenceKind.depth, preprocess=False))
    job = Txt2ImgJob(sampling(checkpoint="dreamshaper_8"), task_id="cn-1", references=units)
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(job)
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload
    args = sent["alwayson_scripts"]["controlnet"]["args"]
    assert [(a["module"], a["model"]) for a in args] == [
        ("canny", "control_v11p_sd15_canny [d14c016b]"),
        ("ip-adapter_face_id_plus", "ip-adapter-plus-face_sd15 [7f7a633a]"),
        ("none", "control_v11f1p_sd15_depth [cfd03158]")]  # already a map: no preprocessor
    assert args[0]["weight"] == 0.8 and (args[0]["guidance_start"], args[0]["guidance_end"]) == (0.1, 0.9)
    assert all(a["enabled"] and a["image"] for a in args)
    text = result.images[0].infotext
    assert 'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.8' in text
    assert "ControlNet 2:" in text and result.warnings == ()
    assert "/controlnet/model_list" in [r.path for r in fake_sdwebui.requests]


@pytest.mark.parametrize("fake_sdwebui", [{**WITH_CN, "flavor": "forge"}], indirect=True)
async def test_img2img_with_a_reference_on_forge_picks_the_sdxl_model_for_an_sdxl_checkpoint(fake_sdwebui):
    job = Img2ImgJob(sampling(checkpoint="sd_xl_base_1.0"), init_image=png(), task_id="cn-2",
                     references=(canny(),))
    async with client(fake_sdwebui) as backend:
        result = await backend.img2img(job)
    args = fake_sdwebui.requests_to("/sdapi/v1/img2img")[0].payload["alwayson_scripts"]["controlnet"]["args"]
    assert args[0]["model"] == "diffusers_xl_canny_mid [112a778d]"
    assert "ControlNet 0:" in result.images[0].infotext


FORGE_CN = {"flavor": "forge", "controlnet_models": (
    "diffusers_xl_canny_mid [112a778d]", "diffusers_xl_depth_mid [39c49e13]",
    "ip-adapter_sdxl [d4a5b7a0]", "ip-adapter-plus-face_sd15 [7f7a633a]")}


@pytest.mark.parametrize("fake_sdwebui", [FORGE_CN], indirect=True)
async def test_forge_builtin_controlnet_is_found_and_gets_its_own_preprocessor_names(fake_sdwebui):
    # Forge's built-in ControlNet has no /controlnet/version, lists "None" first and looks
    # names up exactly: "None" (not "none") for a map, its CLIP encoders for IP-Adapters.
    units = (ReferenceUnit(png(24, 24), ReferenceKind.depth, preprocess=False),
             ReferenceUnit(png(24, 24), ReferenceKind.ip_style, strength=0.7))
    job = Txt2ImgJob(sampling(checkpoint="sd_xl_base_1.0"), task_id="cn-forge", references=units)
    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
        result = await backend.txt2img(job)
        face = Txt2ImgJob(sampling(checkpoint="dreamshaper_8"), task_id="cn-face",
                          references=(ReferenceUnit(png(24, 24), ReferenceKind.ip_face),))
        faced = await backend.txt2img(face)
    assert "None" not in caps.controlnet_models and len(caps.controlnet_models) == 4
    args = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload["alwayson_scripts"]["controlnet"]["args"]
    assert [(a["module"], a["model"]) for a in args] == [
        ("None", "diffusers_xl_depth_mid [39c49e13]"),
        ("CLIP-ViT-bigG (IPAdapter)", "ip-adapter_sdxl [d4a5b7a0]")]
    assert "ControlNet 1:" in result.images[0].infotext and result.warnings == ()
    sent = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[1].payload["alwayson_scripts"]["controlnet"]["args"]
    assert sent[0]["module"] == "InsightFace+CLIP-H (IPAdapter)"
    assert "ControlNet 0:" in faced.images[0].infotext


@pytest.mark.parametrize("fake_sdwebui", [WITH_CN], indirect=True)
async def test_with_the_servers_current_model_the_loaded_models_family_picks_the_controlnet(
        fake_sdwebui):
    # The card's model left as "server's current": the server has SDXL loaded, so the SDXL
    # canny model goes with it, not the SD1.5 one a name-less guess would take.
    job = Txt2ImgJob(sampling(checkpoint=""), task_id="cn-current", references=(canny(),))
    async with client(fake_sdwebui) as backend:
        await backend.txt2img(job)
    args = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload["alwayson_scripts"]["controlnet"]["args"]
    assert fake_sdwebui.options["sd_model_checkpoint"].startswith("sd_xl_base_1.0")
    assert args[0]["model"] == "diffusers_xl_canny_mid [112a778d]"


@pytest.mark.parametrize("fake_sdwebui", [{"controlnet_models": ("diffusers_xl_canny_mid [112a778d]",)}],
                         indirect=True)
async def test_a_node_is_judged_by_its_loaded_model_when_the_config_names_none(fake_sdwebui):
    from stablenew.cluster.scheduler import NodeView, ineligibility
    from stablenew.cluster.work import requirements_for
    from stablenew.pipeline.config import PipelineConfig

    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
    assert caps.current_checkpoint.startswith("sd_xl_base_1.0")
    node = NodeView("webui", caps, tier=1)
    current = PipelineConfig.model_validate({"txt2img": {
        "checkpoint": "", "references": [{"image": "x.png", "kind": "canny"}]}})
    assert ineligibility(requirements_for(current), node) is None
    chosen = current.with_changes({"txt2img.family": "sd15"})  # the user's family still counts
    assert ineligibility(requirements_for(chosen), node) is not None


async def test_a_node_without_the_extension_is_refused_in_plain_words(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        with pytest.raises(RequestRejected) as caught:
            await backend.txt2img(Txt2ImgJob(sampling(), task_id="cn-3", references=(canny(),)))
    assert "need the ControlNet extension" in caught.value.message
    assert fake_sdwebui.requests_to("/sdapi/v1/txt2img") == []


@pytest.mark.parametrize("fake_sdwebui", [{"controlnet_models": CN_MODELS[:1]}], indirect=True)
async def test_a_missing_model_is_named_with_what_the_node_has(fake_sdwebui):
    async with client(fake_sdwebui) as backend:
        with pytest.raises(MissingResource) as caught:
            await backend.txt2img(Txt2ImgJob(sampling(checkpoint="sd_xl_base_1.0"), task_id="cn-4",
                                             references=(canny(),)))
    message = caught.value.message
    assert "ControlNet model 'Canny edges model for this checkpoint' is not installed" in message
    assert "control_v11p_sd15_canny" in message and "models/ControlNet" in message


@pytest.mark.parametrize("fake_sdwebui", [WITH_CN], indirect=True)
async def test_a_unit_the_extension_skips_becomes_a_warning(fake_sdwebui):
    fake_sdwebui.controlnet_crashes = True  # A1111 logs the script's error and carries on
    async with client(fake_sdwebui) as backend:
        result = await backend.txt2img(Txt2ImgJob(sampling(), task_id="cn-5", references=(canny(),)))
    assert result.images
    assert result.warnings == ("Reference 1 (Canny edges) did not steer the image: the node's ControlNet "
                               "skipped it (its console says why).",)


@pytest.mark.parametrize("fake_sdwebui", [{"controlnet_models": ("diffusers_xl_canny_mid [112a778d]",)}],
                         indirect=True)
async def test_the_probe_lists_the_nodes_controlnet_models_for_the_scheduler(fake_sdwebui):
    from stablenew.cluster.scheduler import NodeView, ineligibility
    from stablenew.cluster.work import requirements_for
    from stablenew.pipeline.config import PipelineConfig

    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
    assert caps.controlnet_models == ("diffusers_xl_canny_mid [112a778d]",)
    # An SD1.5 canny job needs an SD1.5 canny model: this node has only the SDXL one.
    config = PipelineConfig.model_validate({"txt2img": {
        "checkpoint": "dreamshaper_8.safetensors",
        "references": [{"image": "x.png", "kind": "canny", "model": ""}]}})
    node = NodeView("webui", caps, tier=1)
    assert ineligibility(requirements_for(config), node) == (
        "webui does not have a ControlNet model for canny edges")


async def test_a_node_without_the_extension_probes_with_no_controlnet_models(fake_sdwebui):
    from stablenew.cluster.scheduler import NodeView, ineligibility
    from stablenew.cluster.work import requirements_for
    from stablenew.pipeline.config import PipelineConfig

    async with client(fake_sdwebui) as backend:
        caps = await backend.probe()
    assert caps.controlnet_models == () and caps.has_controlnet is False
    # Such a node is not sent work with references (it failed every such item in a cluster,
    # beside a Forge that would have made them); without references it is as good as any.
    config = PipelineConfig.model_validate({"txt2img": {
        "references": [{"image": "x.png", "kind": "openpose"}]}})
    node = NodeView("attic", caps, tier=1)
    assert ineligibility(requirements_for(config), node) == (
        "attic has no ControlNet (the sd-webui-controlnet extension; Forge has it built in)")
    assert ineligibility(requirements_for(PipelineConfig()), node) is None


@pytest.mark.parametrize("fake_sdwebui", [WITH_CN], indirect=True)
async def test_a_face_reference_without_insightface_is_refused_before_sending(fake_sdwebui):
    # The extension lists its InsightFace preprocessors only when insightface is there; the
    # CLIP ones alone would take the face as a style and lose it without an error.
    fake_sdwebui.controlnet_modules = tuple(m for m in fake_sdwebui.controlnet_modules
                                            if "face_id" not in m)
    face = ReferenceUnit(png(24, 24), ReferenceKind.ip_face, strength=0.6)
    async with client(fake_sdwebui) as backend:
        with pytest.raises(MissingResource) as caught:
            await backend.txt2img(Txt2ImgJob(sampling(checkpoint="dreamshaper_8"), task_id="cn-f",
                                             references=(face,)))
        assert fake_sdwebui.requests_to("/sdapi/v1/txt2img") == []
        assert caught.value.message.startswith(
            f"Node '127.0.0.1:{fake_sdwebui.port}' cannot use a face as a reference: its "
            "ControlNet has no InsightFace preprocessor. Install insightface")
        # A style reference needs no InsightFace: the same node takes it.
        style = ReferenceUnit(png(24, 24), ReferenceKind.ip_style, strength=0.6)
        result = await backend.txt2img(Txt2ImgJob(sampling(checkpoint="dreamshaper_8"),
                                                  task_id="cn-s", references=(style,)))
    args = fake_sdwebui.requests_to("/sdapi/v1/txt2img")[0].payload["alwayson_scripts"]["controlnet"]["args"]
    assert args[0]["module"] == "ip-adapter-auto" and "ControlNet 0:" in result.images[0].infotext
