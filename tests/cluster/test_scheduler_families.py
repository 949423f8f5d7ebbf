"""The scheduler knows model families: Flux needs a big card (less when quantized), never 4 GB."""

from __future__ import annotations

import pytest

from stablenew.backends.types import BackendKind, Capabilities
from stablenew.cluster.scheduler import NodeView, ineligibility, plan_earliest_finish
from stablenew.cluster.work import GB, ModelFamily, guess_family, requirements_for
from stablenew.pipeline.config import PipelineConfig

FLUX = ("flux1-dev.safetensors", "flux1-dev-fp8.safetensors", "flux1-dev-bnb-nf4.safetensors",
        "flux1-schnell-Q4_K_S.gguf", "dreamshaper_8.safetensors", "myMerge.safetensors")


def node(name: str, vram_gb: float) -> NodeView:
    caps = Capabilities(kind=BackendKind.comfyui, vram_total=int(vram_gb * GB), checkpoints=FLUX)
    return NodeView(name, caps, speeds={c: 1.0 for c in ("small", "medium", "large")})


def flux_req(checkpoint: str, **t2i):
    return requirements_for(PipelineConfig.model_validate(
        {"txt2img": {"checkpoint": checkpoint, "width": 1024, "height": 1024, **t2i}}))


@pytest.mark.parametrize("checkpoint", FLUX[:4])
def test_a_4gb_draft_node_never_gets_a_flux_job(checkpoint):
    draft = node("draft-4gb", 4)
    r = flux_req(checkpoint)
    assert r.family is ModelFamily.flux
    assert "too little VRAM (4 GB" in ineligibility(r, draft)
    plan = plan_earliest_finish([r] * 3, [draft, node("den-24gb", 24)])
    assert {a.node for a in plan.assignments} == {"den-24gb"}


def test_flux_rows_depend_on_precision():
    full, fp8, nf4, gguf = (flux_req(c).vram_gb for c in FLUX[:4])
    assert full > fp8 > nf4 >= gguf > 4
    assert ineligibility(flux_req(FLUX[3]), node("mid-8gb", 8)) is None, "GGUF Q4 fits 8 GB"
    assert ineligibility(flux_req(FLUX[1]), node("mid-8gb", 8)) is not None, "fp8 does not"
    assert ineligibility(flux_req(FLUX[1]), node("rig-16gb", 16)) is None


def test_the_chosen_family_counts_when_the_name_says_nothing():
    assert flux_req("myMerge.safetensors").family is ModelFamily.sd15
    chosen = flux_req("myMerge.safetensors", family="flux")
    assert chosen.family is ModelFamily.flux and chosen.vram_gb > 10
    assert guess_family("sd3.5_large.safetensors") is ModelFamily.sd35
    assert guess_family("illustriousXL_v01.safetensors") is ModelFamily.sdxl  # SDXL's VRAM


def cn_node(name: str, kind: BackendKind, models: tuple[str, ...], classes=frozenset()) -> NodeView:
    caps = Capabilities(kind=kind, vram_total=12 * GB, checkpoints=("dreamshaper_8.safetensors",),
                        controlnet_models=models, node_classes=classes)
    return NodeView(name, caps, speeds={c: 1.0 for c in ("small", "medium", "large")})


def ref_req(*refs):
    return requirements_for(PipelineConfig.model_validate({"txt2img": {
        "checkpoint": "dreamshaper_8.safetensors",
        "references": [{"image": "x.png", "kind": k, "model": m} for k, m in refs]}}))


def test_only_nodes_with_the_needed_controlnet_models_take_a_reference_job():
    with_canny = cn_node("canny-node", BackendKind.comfyui, ("control_v11p_sd15_canny.pth",))
    xl_only = cn_node("xl-node", BackendKind.comfyui, ("diffusers_xl_canny_mid.safetensors",))
    bare_comfy = cn_node("bare", BackendKind.comfyui, ())
    a1111_unknown = cn_node("webui", BackendKind.a1111, ())
    r = ref_req(("canny", ""))
    assert ineligibility(r, with_canny) is None
    assert ineligibility(r, xl_only) == "xl-node does not have a ControlNet model for canny edges"
    assert ineligibility(r, bare_comfy) == "bare has no ControlNet models"
    assert ineligibility(r, a1111_unknown) is None  # cannot tell: let it try
    named = ref_req(("canny", "control_v11p_sd15_canny_v2"))
    assert "('control_v11p_sd15_canny_v2')" in ineligibility(named, with_canny)
    face = ref_req(("ip_face", ""))
    without = cn_node("c", BackendKind.comfyui, (), frozenset({"KSampler"}))
    assert "IP-Adapter nodes" in ineligibility(face, without)
    with_ip = cn_node("c", BackendKind.comfyui, (), frozenset({"IPAdapterUnifiedLoader"}))
    assert ineligibility(face, with_ip) is None
    plan = plan_earliest_finish([r, r], [xl_only, with_canny])
    assert {a.node for a in plan.assignments} == {"canny-node"}
