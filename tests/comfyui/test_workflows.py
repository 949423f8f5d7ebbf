"""The typed workflow builder and graph check, against the recorded real /object_info."""

from __future__ import annotations

import copy
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from stablenew.backends.comfyui_names import (
    a1111_sampler_names,
    a1111_scheduler_names,
    comfy_sampler,
    comfy_scheduler,
    mark_embeddings,
    match_file,
    split_loras,
)
from stablenew.backends.comfyui_workflows import (
    NodeCatalog,
    Template,
    TemplateError,
    Workflow,
    WorkflowBuilder,
    check_graph,
    load_user_templates,
    part,
)
from stablenew.backends.errors import MissingResource, RequestRejected
from stablenew.backends.types import (
    ADetailerJob,
    HiresFix,
    Img2ImgJob,
    Refiner,
    ResizeMode,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)
from stablenew.storage.resources import resource_path

DATA = Path(__file__).resolve().parent.parent / "data" / "comfyui"


@pytest.fixture(scope="module")
def real_info() -> dict:
    with gzip.open(DATA / "resp_object_info_full.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def with_models(
    info: dict,
    *,
    checkpoints=("sd15.safetensors", "sdxl_refiner.safetensors"),
    loras=("add_detail.safetensors", "styles/ink.safetensors"),
    upscalers=("RealESRGAN_x4plus.pth",),
    face_detailer=False,
) -> dict:
    info = dict(info)
    for cls, name, values in (
        ("CheckpointLoaderSimple", "ckpt_name", checkpoints),
        ("LoraLoader", "lora_name", loras),
        ("UpscaleModelLoader", "model_name", upscalers),
    ):
        entry = copy.deepcopy(info[cls])
        spec = entry["input"]["required"][name]
        if spec[0] == "COMBO":
            spec[1]["options"] = list(values)
        else:
            spec[0] = list(values)
        info[cls] = entry
    if face_detailer:
        from tests.fakes.comfyui import _face_detailer_info

        extra = _face_detailer_info()
        fd = extra["FaceDetailer"]["input"]["required"]
        fd["sampler_name"] = info["KSampler"]["input"]["required"]["sampler_name"]
        fd["scheduler"] = info["KSampler"]["input"]["required"]["scheduler"]
        extra["UltralyticsDetectorProvider"]["input"]["required"]["model_name"] = [["bbox/face_yolov8n.pt"]]
        info.update(extra)
    return info


@pytest.fixture
def builder(real_info) -> WorkflowBuilder:
    return WorkflowBuilder(NodeCatalog("den-3060", with_models(real_info), ("EasyNegative.pt",)))


def sampling(**kw) -> Sampling:
    base = dict(
        prompt="castle <lora:add_detail:0.7>",
        negative_prompt="EasyNegative, blurry",
        checkpoint="sd15.safetensors [a1b2c3d4]",
        sampler="Euler a",
        scheduler="Automatic",
        steps=20,
        cfg_scale=6.5,
        width=512,
        height=768,
        seed=1234,
        clip_skip=2,
    )
    base.update(kw)
    return Sampling(**base)


def by_class(graph: dict, cls: str) -> list[dict]:
    return [n["inputs"] for n in graph.values() if n["class_type"] == cls]


def png(w=40, h=30) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def test_every_shipped_part_loads_and_is_valid():
    parts = sorted(resource_path("workflows", "parts").glob("*.json"))
    assert len(parts) >= 15
    for path in parts:
        template = part(path.stem)
        assert template.nodes and template.description


def test_txt2img_graph(builder, real_info):
    wf = builder.txt2img(Txt2ImgJob(sampling(), task_id="t"))
    graph = wf.to_api()
    check_graph(graph, builder.catalog)
    assert by_class(graph, "CheckpointLoaderSimple") == [{"ckpt_name": "sd15.safetensors"}]
    assert by_class(graph, "LoraLoader")[0] | {"model": None, "clip": None} == {
        "model": None,
        "clip": None,
        "lora_name": "add_detail.safetensors",
        "strength_model": 0.7,
        "strength_clip": 0.7,
    }
    assert by_class(graph, "CLIPSetLastLayer")[0]["stop_at_clip_layer"] == -2
    texts = [t["text"] for t in by_class(graph, "CLIPTextEncode")]
    assert texts == ["castle", "embedding:EasyNegative, blurry"]
    (ks,) = by_class(graph, "KSampler")
    assert (ks["seed"], ks["steps"], ks["cfg"], ks["sampler_name"], ks["scheduler"], ks["denoise"]) == (
        1234,
        20,
        6.5,
        "euler_ancestral",
        "normal",
        1.0,
    )
    assert by_class(graph, "EmptyLatentImage") == [{"width": 512, "height": 768, "batch_size": 1}]
    assert graph[wf.output_node]["class_type"] == "PreviewImage"
    # Every link points at a node of the graph, by string id (numbers fail on ComfyUI).
    for node in graph.values():
        for value in node["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                assert isinstance(value[0], str) and value[0] in graph


def test_txt2img_with_latent_hires(builder):
    job = Txt2ImgJob(
        sampling(),
        task_id="t",
        hires=HiresFix(upscaler="Latent (nearest-exact)", scale=1.5, steps=7, denoise=0.5, cfg_scale=4.0),
    )
    graph = builder.txt2img(job).to_api()
    check_graph(graph, builder.catalog)
    assert by_class(graph, "LatentUpscale") == [
        {
            "samples": by_class(graph, "LatentUpscale")[0]["samples"],
            "upscale_method": "nearest-exact",
            "width": 768,
            "height": 1152,
            "crop": "disabled",
        }
    ]
    first, second = by_class(graph, "KSampler")
    assert (second["steps"], second["denoise"], second["cfg"]) == (7, 0.5, 4.0)
    assert first["denoise"] == 1.0


def test_txt2img_with_model_hires_and_refiner(builder):
    job = Txt2ImgJob(
        sampling(),
        task_id="t",
        hires=HiresFix(upscaler="R-ESRGAN 4x+", resize_width=1024),
        refiner=Refiner(checkpoint="sdxl_refiner", switch_at=0.8),
    )
    graph = builder.txt2img(job).to_api()
    check_graph(graph, builder.catalog)
    assert by_class(graph, "UpscaleModelLoader") == [{"model_name": "RealESRGAN_x4plus.pth"}]
    scale = by_class(graph, "ImageScale")[0]
    assert (scale["width"], scale["height"]) == (1024, 1536)
    base, refine = by_class(graph, "KSamplerAdvanced")
    assert (
        base["end_at_step"],
        refine["start_at_step"],
        base["return_with_leftover_noise"],
        refine["add_noise"],
    ) == (16, 16, "enable", "disable")
    ckpts = [c["ckpt_name"] for c in by_class(graph, "CheckpointLoaderSimple")]
    assert ckpts == ["sd15.safetensors", "sdxl_refiner.safetensors"]
    assert len(by_class(graph, "LoraLoader")) == 1  # the refiner gets no base-model LoRAs


def test_img2img_graph_with_mask(builder):
    job = Img2ImgJob(
        sampling(width=256, height=256),
        init_image=png(),
        task_id="i",
        denoise=0.35,
        resize_mode=ResizeMode.crop_and_resize,
        mask=png(),
        mask_blur=6,
    )
    wf = builder.img2img(job)
    check_graph(wf.nodes, builder.catalog)
    assert len(wf.uploads) == 1  # same bytes, one upload
    (load,) = by_class(wf.nodes, "LoadImage")
    assert load["image"] in wf.uploads and load["image"].startswith("stablenew/")
    assert by_class(wf.nodes, "ImageScale")[0]["crop"] == "center"
    assert by_class(wf.nodes, "KSampler")[0]["denoise"] == 0.35
    assert by_class(wf.nodes, "ImageBlur")[0]["blur_radius"] == 6
    assert by_class(wf.nodes, "SetLatentNoiseMask")


def test_upscale_graph(builder):
    wf = builder.upscale(UpscaleJob(image=png(40, 30), task_id="u", upscaler="RealESRGAN_x4plus", scale=3))
    check_graph(wf.nodes, builder.catalog)
    scale = by_class(wf.nodes, "ImageScale")[0]
    assert (scale["width"], scale["height"]) == (120, 90)
    lanczos = builder.upscale(UpscaleJob(image=png(), task_id="u", upscaler="Lanczos", scale=2))
    assert not by_class(lanczos.nodes, "UpscaleModelLoader")


def test_face_detail_graph_needs_the_custom_nodes(builder, real_info):
    with pytest.raises(MissingResource) as info:
        builder.adetailer(ADetailerJob(sampling(), image=png(), task_id="a"))
    assert info.value.what == "node_class" and "Impact" in info.value.message
    with_fd = WorkflowBuilder(NodeCatalog("den", with_models(real_info, face_detailer=True)))
    wf = with_fd.adetailer(ADetailerJob(sampling(), image=png(), task_id="a"))
    check_graph(wf.nodes, with_fd.catalog)
    (detail,) = by_class(wf.nodes, "FaceDetailer")
    assert (detail["bbox_threshold"], detail["denoise"], detail["feather"]) == (0.3, 0.4, 4)
    assert by_class(wf.nodes, "UltralyticsDetectorProvider") == [{"model_name": "bbox/face_yolov8n.pt"}]


def test_save_on_server_uses_save_image(real_info):
    b = WorkflowBuilder(NodeCatalog("den", with_models(real_info)), save_on_server=True)
    wf = b.txt2img(Txt2ImgJob(sampling(), task_id="run 1/img:2"))
    assert wf.nodes[wf.output_node]["class_type"] == "SaveImage"
    assert wf.nodes[wf.output_node]["inputs"]["filename_prefix"] == "StableNew/run_1_img_2"


def test_missing_things_are_reported_with_what_is_installed(builder):
    with pytest.raises(MissingResource) as info:
        builder.txt2img(Txt2ImgJob(sampling(checkpoint="x.safetensors"), task_id="t"))
    assert info.value.message == (
        "Checkpoint 'x.safetensors' is not installed on node 'den-3060' — installed: "
        "sd15.safetensors, sdxl_refiner.safetensors."
    )
    with pytest.raises(MissingResource, match="LoRA 'gone' is not installed"):
        builder.txt2img(Txt2ImgJob(sampling(prompt="<lora:gone:1>"), task_id="t"))
    with pytest.raises(MissingResource, match="Upscaler 'SwinIR 4x'"):
        builder.upscale(UpscaleJob(image=png(), task_id="u", upscaler="SwinIR 4x"))
    with pytest.raises(MissingResource) as info:
        builder.txt2img(Txt2ImgJob(sampling(scheduler="Align Your Steps"), task_id="t"))
    assert info.value.what == "scheduler"


def test_check_graph_catches_what_the_node_would_refuse(builder):
    graph = builder.txt2img(Txt2ImgJob(sampling(), task_id="t")).to_api()
    broken = copy.deepcopy(graph)
    next(n for n in broken.values() if n["class_type"] == "EmptyLatentImage")["inputs"]["width"] = 8
    with pytest.raises(RequestRejected, match="width = 8 is outside"):
        check_graph(broken, builder.catalog)
    broken = copy.deepcopy(graph)
    broken["99"] = {"class_type": "SomeCustomNode", "inputs": {}, "_meta": {"title": "Magic"}}
    with pytest.raises(MissingResource, match="Node type 'SomeCustomNode' \\(step 'Magic'\\)"):
        check_graph(broken, builder.catalog)
    broken = copy.deepcopy(graph)
    next(n for n in broken.values() if n["class_type"] == "KSampler")["inputs"]["model"] = ["77", 0]
    with pytest.raises(RequestRejected, match="not in the graph"):
        check_graph(broken, builder.catalog)


@pytest.mark.parametrize(
    "a1111,comfy,scheduler",
    [
        ("Euler a", "euler_ancestral", "normal"),
        ("DPM++ 2M", "dpmpp_2m", "karras"),
        ("DPM++ 2M Karras", "dpmpp_2m", "karras"),
        ("DPM++ SDE Karras", "dpmpp_sde", "karras"),
        ("DPM++ 3M SDE", "dpmpp_3m_sde", "exponential"),
        ("UniPC", "uni_pc", "normal"),
        ("DDIM", "ddim", "ddim_uniform"),
        ("LCM", "lcm", "normal"),
        ("dpmpp_2m_sde", "dpmpp_2m_sde", "karras"),
    ],
)
def test_sampler_and_automatic_scheduler_table(builder, a1111, comfy, scheduler):
    sampler, implied = comfy_sampler(a1111, builder.catalog.samplers, "den")
    assert sampler == comfy
    assert comfy_scheduler("Automatic", sampler, implied, builder.catalog.schedulers, "den") == scheduler


def test_explicit_schedulers(builder):
    names = {
        "Uniform": "normal",
        "Karras": "karras",
        "Exponential": "exponential",
        "SGM Uniform": "sgm_uniform",
        "Simple": "simple",
        "Beta": "beta",
        "KL Optimal": "kl_optimal",
    }
    for a1111, comfy in names.items():
        assert comfy_scheduler(a1111, "euler", None, builder.catalog.schedulers, "den") == comfy
    with pytest.raises(MissingResource):
        comfy_sampler("PLMS", builder.catalog.samplers, "den")


def test_split_loras_and_embeddings():
    text, loras, warnings = split_loras("a <lora:x:0.5>, b <LORA:sub/y> <lyco:z:0.2:0.9> <hypernet:h:1>")
    assert text == "a , b"
    assert [(u.name, u.unet_weight, u.text_encoder_weight) for u in loras] == [
        ("x", 0.5, 0.5),
        ("sub/y", 1.0, 1.0),
        ("z", 0.9, 0.2),
    ]
    assert any("Hypernetworks" in w for w in warnings)
    assert (
        mark_embeddings(
            "EasyNegative, bad-hands, easynegative2", ["EasyNegative.pt", "bad-hands.safetensors"]
        )
        == "embedding:EasyNegative, embedding:bad-hands, easynegative2"
    )


def test_match_file():
    installed = ["SDXL\\juggernaut.safetensors", "sd15/dream.ckpt", "flat.safetensors"]
    assert match_file("flat.safetensors", installed) == "flat.safetensors"
    assert match_file("flat", installed) == "flat.safetensors"
    assert match_file("dream.ckpt [0123abcd]", installed) == "sd15/dream.ckpt"
    assert match_file("SDXL/juggernaut.safetensors", installed) == "SDXL\\juggernaut.safetensors"
    assert match_file("nothing", installed) is None


def test_user_template_replaces_the_builtin_graph(tmp_path, real_info):
    folder = tmp_path / "workflows"
    folder.mkdir()
    shutil.copy(resource_path("workflows", "examples", "txt2img.json"), folder / "txt2img.json")
    templates = load_user_templates(folder)
    b = WorkflowBuilder(NodeCatalog("den", with_models(real_info)), user_templates=templates)
    wf = b.txt2img(Txt2ImgJob(sampling(), task_id="t"))
    check_graph(wf.nodes, b.catalog)
    (ks,) = by_class(wf.nodes, "KSampler")
    assert (ks["seed"], ks["sampler_name"], ks["steps"]) == (1234, "euler_ancestral", 20)
    assert [t["text"] for t in by_class(wf.nodes, "CLIPTextEncode")] == ["castle", "EasyNegative, blurry"]
    assert by_class(wf.nodes, "CheckpointLoaderSimple") == [{"ckpt_name": "sd15.safetensors"}]
    assert any("LoraLoader" in w for w in wf.warnings)
    assert wf.nodes[wf.output_node]["class_type"] == "PreviewImage"


def test_bad_templates_name_file_and_field(tmp_path):
    bad = tmp_path / "txt2img.json"
    bad.write_text(
        '{"stablenew_workflow": 1,\n "nodes": {"1": {"class_type": "KSampler"}},\n'
        ' "params": {"seed": {"node": "9", "input": "seed"}}}',
        encoding="utf-8",
    )
    with pytest.raises(TemplateError) as info:
        Template.load(bad)
    assert str(bad) in info.value.message and "params.seed" in info.value.message
    bad.write_text('{"stablenew_workflow": 1,\n  "nodes": {,}}', encoding="utf-8")
    with pytest.raises(TemplateError, match="line 2"):
        Template.load(bad)
    bad.write_text('{"stablenew_workflow": 2, "nodes": {}}', encoding="utf-8")
    with pytest.raises(TemplateError, match="stablenew_workflow"):
        load_user_templates(tmp_path)


def test_workflow_insert_is_typed():
    wf = Workflow()
    with pytest.raises(ValueError, match="needs ports"):
        wf.insert(part("sampler"))
    with pytest.raises(ValueError, match="no parameters"):
        wf.insert(part("checkpoint"), checkpoint="a", colour="red")
    with pytest.raises(ValueError, match="not given"):
        wf.insert(part("checkpoint"))


def test_img2img_user_template(tmp_path, real_info):
    folder = tmp_path / "workflows"
    folder.mkdir()
    shutil.copy(resource_path("workflows", "examples", "img2img.json"), folder / "img2img.json")
    b = WorkflowBuilder(
        NodeCatalog("den", with_models(real_info)), user_templates=load_user_templates(folder)
    )
    job = Img2ImgJob(sampling(width=320, height=200), init_image=png(), task_id="i", denoise=0.25, mask=png())
    wf = b.img2img(job)
    check_graph(wf.nodes, b.catalog)
    (load,) = by_class(wf.nodes, "LoadImage")
    assert load["image"] in wf.uploads
    assert by_class(wf.nodes, "KSampler")[0]["denoise"] == 0.25
    scale = by_class(wf.nodes, "ImageScale")[0]
    assert (scale["width"], scale["height"]) == (320, 200)
    assert any("takes no mask" in w for w in wf.warnings)
    # The txt2img job keeps the built-in graph: only img2img was replaced.
    assert by_class(b.txt2img(Txt2ImgJob(sampling(), task_id="t")).nodes, "EmptyLatentImage")


def test_every_listed_a1111_name_maps_back(builder):
    for name in a1111_sampler_names(builder.catalog.samplers):
        sampler, implied = comfy_sampler(name, builder.catalog.samplers, "den")
        assert sampler in builder.catalog.samplers
        for sched in a1111_scheduler_names(builder.catalog.schedulers):
            assert (
                comfy_scheduler(sched, sampler, implied, builder.catalog.schedulers, "den")
                in builder.catalog.schedulers
            )


async def test_an_unknown_sampler_is_called_unknown_with_names_a_user_can_type(comfy):
    """Issue 17 item 20: not "not installed" with ComfyUI's internal list (euler_cfg_pp…)."""
    from stablenew.backends.types import Sampling, Txt2ImgJob

    job = Txt2ImgJob(sampling=Sampling(prompt="p", sampler="Euler Ancestral", steps=2, seed=1,
                                       width=64, height=64), task_id="t-1")
    with pytest.raises(MissingResource) as caught:
        await comfy.txt2img(job)
    message = caught.value.message
    assert message.startswith("Unknown sampler 'Euler Ancestral'") and "not installed" not in message
    assert "Euler a" in message and "DPM++ 2M" in message and "Euler CFG++" in message
    assert "euler_cfg_pp" not in message and "euler_ancestral" not in message
    with pytest.raises(MissingResource) as caught:
        await comfy.txt2img(Txt2ImgJob(sampling=Sampling(prompt="p", scheduler="Karras Plus"),
                                       task_id="t-2"))
    assert caught.value.message.startswith("Unknown schedule type 'Karras Plus'")
    assert "Karras" in caught.value.message and "'karras'" not in caught.value.message
