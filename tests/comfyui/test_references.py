"""Reference images on ComfyUI: ControlNet and IP-Adapter nodes, checked against /object_info."""

from __future__ import annotations

import pytest

from stablenew.backends.comfyui_workflows import NodeCatalog, WorkflowBuilder, check_graph
from stablenew.backends.errors import MissingResource
from stablenew.backends.types import Img2ImgJob, ReferenceKind, ReferenceUnit, Sampling, Txt2ImgJob
from tests.comfyui.test_workflows import by_class, png
from tests.fakes.comfyui import FakeComfyUI

CN_NODE = dict(checkpoints=("sd15_base.safetensors", "sdxl_base_1.0.safetensors"),
               controlnets=("control_v11p_sd15_canny.pth", "control_v11f1p_sd15_depth.pth",
                            "controlnet-union-sdxl-1.0.safetensors"))


def builder_for(**node) -> WorkflowBuilder:
    return WorkflowBuilder(NodeCatalog("den-3060", FakeComfyUI(**{**CN_NODE, **node})._build_object_info()))


def s(checkpoint="sd15_base", **kw) -> Sampling:
    return Sampling(**{"prompt": "a castle", "negative_prompt": "blurry", "checkpoint": checkpoint,
                       "width": 64, "height": 64, "seed": 3, **kw})


def unit(kind=ReferenceKind.canny, **kw) -> ReferenceUnit:
    return ReferenceUnit(**{"image": png(32, 32), "kind": kind, "strength": 0.7, "start": 0.0, "end": 0.8,
                            **kw})


def test_a_canny_reference_is_preprocessed_loaded_and_applied_to_both_conditionings():
    b = builder_for()
    wf = b.txt2img(Txt2ImgJob(sampling=s(), task_id="t", references=(unit(),)))
    g = wf.to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "ControlNetLoader")[0]["control_net_name"] == "control_v11p_sd15_canny.pth"
    apply = by_class(g, "ControlNetApplyAdvanced")[0]
    assert (apply["strength"], apply["start_percent"], apply["end_percent"]) == (0.7, 0.0, 0.8)
    assert g[apply["image"][0]]["class_type"] == "Canny"  # the core preprocessor, with its defaults
    assert by_class(g, "Canny")[0]["low_threshold"] == 0.4
    ks = by_class(g, "KSampler")[0]
    assert g[ks["positive"][0]]["class_type"] == "ControlNetApplyAdvanced"
    assert ks["positive"][0] == ks["negative"][0] and (ks["positive"][1], ks["negative"][1]) == (0, 1)
    assert len(wf.uploads) == 1


def test_an_image_already_a_map_skips_the_preprocessor_and_sdxl_gets_the_union_model():
    b = builder_for()
    g = b.txt2img(Txt2ImgJob(sampling=s("sdxl_base_1.0"), task_id="t",
                             references=(unit(ReferenceKind.depth, preprocess=False),))).to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "ControlNetLoader")[0]["control_net_name"] == "controlnet-union-sdxl-1.0.safetensors"
    apply = by_class(g, "ControlNetApplyAdvanced")[0]
    assert g[apply["image"][0]]["class_type"] == "LoadImage"


def test_three_units_chain_and_a_depth_map_needs_the_aux_nodes():
    units = (unit(), unit(ReferenceKind.depth), unit(ReferenceKind.canny, model="control_v11p_sd15_canny"))
    with pytest.raises(MissingResource) as caught:
        builder_for().txt2img(Txt2ImgJob(sampling=s(), task_id="t", references=units))
    assert "comfyui_controlnet_aux" in caught.value.message
    b = builder_for(controlnet_aux=True)
    g = b.img2img(Img2ImgJob(sampling=s(), init_image=png(), task_id="t", references=units)).to_api()
    check_graph(g, b.catalog)
    assert len(by_class(g, "ControlNetApplyAdvanced")) == 3
    depth = by_class(g, "DepthAnythingPreprocessor")[0]
    assert depth["ckpt_name"] == "depth_anything_vitl14.pth"  # the node's first choice


def test_ip_adapter_units_use_the_ipadapter_nodes_when_installed():
    with pytest.raises(MissingResource) as caught:
        builder_for().txt2img(Txt2ImgJob(sampling=s(), task_id="t",
                                         references=(unit(ReferenceKind.ip_face),)))
    assert "ComfyUI_IPAdapter_plus" in caught.value.message
    b = builder_for(ip_adapter=True)
    g = b.txt2img(Txt2ImgJob(sampling=s(), task_id="t", references=(unit(ReferenceKind.ip_face),))).to_api()
    check_graph(g, b.catalog)
    assert by_class(g, "IPAdapterUnifiedLoader")[0]["preset"] == "PLUS FACE (portraits)"
    ip = by_class(g, "IPAdapterAdvanced")[0]
    assert (ip["weight"], ip["start_at"], ip["end_at"]) == (0.7, 0.0, 0.8)
    ks = by_class(g, "KSampler")[0]
    assert g[ks["model"][0]]["class_type"] == "IPAdapterAdvanced"


def test_a_missing_controlnet_model_is_named_before_sending():
    with pytest.raises(MissingResource) as caught:
        builder_for(controlnets=("control_v11p_sd15_canny.pth",)).txt2img(
            Txt2ImgJob(sampling=s(), task_id="t", references=(unit(ReferenceKind.openpose),)))
    message = caught.value.message
    assert "ControlNet model 'Pose model for this checkpoint' is not installed on node 'den-3060'" in message
    assert "models/controlnet" in message


@pytest.mark.parametrize("fake_comfyui", [CN_NODE], indirect=True)
async def test_a_controlnet_job_end_to_end_on_the_fake_node(comfy, fake_comfyui):
    result = await comfy.txt2img(Txt2ImgJob(sampling=s(), task_id="t-cn", references=(unit(),)))
    assert len(result.images) == 1 and result.warnings == ()
    sent = fake_comfyui.received[-1]["prompt"]
    classes = {n["class_type"] for n in sent.values()}
    assert {"ControlNetLoader", "ControlNetApplyAdvanced", "Canny"} <= classes
    assert len(fake_comfyui.uploads) == 1  # the reference image went up before the graph
