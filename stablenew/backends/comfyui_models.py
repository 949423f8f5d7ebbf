"""Graph parts that load a model on ComfyUI, per family: one checkpoint file (SD1.5, SDXL, Pony,
Illustrious), or Flux's and SD3.5's diffusion model with text encoders and VAE beside it.

Every file is matched against what the node lists before the graph is built, so a missing
encoder or VAE is named in plain words (with the folder it belongs in) instead of failing on
the node.
"""

from __future__ import annotations

from dataclasses import dataclass

from stablenew.backends.comfyui_catalog import NodeCatalog
from stablenew.backends.comfyui_names import match_file, missing
from stablenew.backends.comfyui_templates import Link, Workflow, part
from stablenew.backends.errors import MissingResource
from stablenew.backends.families import (
    FamilyProfile,
    GraphKind,
    ModelFamily,
    Precision,
    detect_family,
    family_from_name,
    pick_file,
    precision,
    profile,
)
from stablenew.backends.types import Sampling

#: What each encoder hint is, in words a user finds the file by.
ENCODER_WORDS = {"clip_l": "CLIP-L", "clip_g": "CLIP-G", "t5xxl": "T5-XXL"}
_ENCODER_FOLDER = "Put it in ComfyUI's models/text_encoders (or models/clip) folder."
_VAE_FOLDER = "Put it in ComfyUI's models/vae folder."


@dataclass(frozen=True)
class ModelParts:
    """The loaded model's outputs in the graph, and what was loaded."""

    model: Link
    clip: Link
    vae: Link
    family: ModelFamily
    file: str


def family_of(s: Sampling, name: str) -> ModelFamily:
    return detect_family(name, choice=s.family)


def checkpoint_file(catalog: NodeCatalog, name: str, wf: Workflow) -> str:
    """The installed checkpoint file *name* means ("" = the first one, with a warning)."""
    installed = catalog.checkpoints
    if not name:
        if not installed:
            raise missing("checkpoint", "(any)", installed, catalog.node_name)
        wf.warnings.append(f"No checkpoint chosen; used '{installed[0]}'.")
        found: str | None = installed[0]
    else:
        found = match_file(name, installed)
    if found is None:
        raise missing("checkpoint", name, installed, catalog.node_name)
    if not wf.checkpoint:
        wf.checkpoint = found  # the first model loaded is the main one (then a refiner)
    return found


def load_model(wf: Workflow, catalog: NodeCatalog, s: Sampling, name: str) -> ModelParts:
    """Insert the loaders *name*'s family needs; returns model, CLIP and VAE links."""
    family = family_of(s, name)
    prof = profile(family)
    if prof.graph is GraphKind.checkpoint:
        ckpt = wf.insert(part("checkpoint"), checkpoint=checkpoint_file(catalog, name, wf))
        return ModelParts(ckpt["model"], ckpt["clip"], ckpt["vae"], family, wf.checkpoint)
    return _load_parts(wf, catalog, s, name, prof)


def _diffusion_models(catalog: NodeCatalog) -> tuple[str, ...]:
    return catalog.combo("UNETLoader", "unet_name")


def _gguf_models(catalog: NodeCatalog) -> tuple[str, ...]:
    return catalog.combo("UnetLoaderGGUF", "unet_name")


def _load_parts(wf: Workflow, catalog: NodeCatalog, s: Sampling, name: str,
                prof: FamilyProfile) -> ModelParts:
    node = catalog.node_name
    family = prof.family
    if not name:
        # The user chose the family but no file: the first file of that family the node has.
        candidates = [f for f in (*catalog.checkpoints, *_diffusion_models(catalog), *_gguf_models(catalog))
                      if family_from_name(f) is family]
        if not candidates:
            raise missing("diffusion_model", f"(any {prof.label} model)",
                          _diffusion_models(catalog) + catalog.checkpoints, node,
                          hint=f"Put a {prof.label} model in ComfyUI's models/diffusion_models folder.")
        name = candidates[0]
        wf.warnings.append(f"No {prof.label} model chosen; used '{name}'.")
    model: Link
    clip: Link | None = None
    vae: Link | None = None
    found = match_file(name, catalog.checkpoints)
    if found is not None:
        # An all-in-one file (e.g. flux1-dev-fp8 from Comfy-Org, sd3.5_large): its own parts.
        ckpt = wf.insert(part("checkpoint"), checkpoint=found)
        model, vae = ckpt["model"], ckpt["vae"]
        # Flux checkpoints carry their encoders; SD3.5's plain ones need them beside (Comfy-Org's
        # *_fp8_scaled files include them), unless the user chose encoders to load.
        if family is ModelFamily.flux or (_includes_encoders(found) and not any(s.text_encoders)):
            clip = ckpt["clip"]
    elif (found := match_file(name, _diffusion_models(catalog))) is not None:
        model = wf.insert(part("unet"), unet=found)["model"]
    elif (found := match_file(name, _gguf_models(catalog))) is not None:
        model = wf.insert(part("unet_gguf"), unet=found)["model"]
    elif precision(name) is Precision.gguf and not catalog.has("UnetLoaderGGUF"):
        raise MissingResource(
            f"'{name}' is a GGUF model; node '{node}' cannot load GGUF files without the ComfyUI-GGUF "
            "custom nodes. Install them, or choose an fp8 or fp16 file.",
            what="node_class", name="UnetLoaderGGUF", node=node)
    else:
        raise missing("diffusion_model", name, _diffusion_models(catalog) + catalog.checkpoints, node,
                      hint="Put the file in ComfyUI's models/diffusion_models folder (all-in-one files "
                           "in models/checkpoints).")
    if not wf.checkpoint:
        wf.checkpoint = found
    if clip is None:
        clip = _encoders(wf, catalog, s, prof)
    if vae is None:
        vae = _vae(wf, catalog, s, prof)
    if family is ModelFamily.sd35:
        shift = float(prof.defaults_for(found).get("shift", 3.0))
        model = wf.insert(part("model_sampling_sd3"), {"model": model}, shift=shift)["model"]
    return ModelParts(model, clip, vae, family, found)


def _includes_encoders(name: str) -> bool:
    stem = name.lower()
    return "incl" in stem or "fp8_scaled" in stem or "aio" in stem


def _encoder_list(catalog: NodeCatalog, prof: FamilyProfile) -> tuple[str, ...]:
    cls = "TripleCLIPLoader" if len(prof.text_encoders) == 3 else "DualCLIPLoader"
    return catalog.combo(cls, "clip_name1")


def _chosen_encoders(catalog: NodeCatalog, s: Sampling, prof: FamilyProfile) -> list[str | None]:
    installed = _encoder_list(catalog, prof)
    chosen = list(s.text_encoders)
    out: list[str | None] = []
    for i, hint in enumerate(prof.text_encoders):
        if i < len(chosen) and chosen[i]:
            out.append(match_file(chosen[i], installed))
        else:
            out.append(pick_file(hint, installed))
    return out


def _encoders(wf: Workflow, catalog: NodeCatalog, s: Sampling, prof: FamilyProfile) -> Link:
    files = _chosen_encoders(catalog, s, prof)
    installed = _encoder_list(catalog, prof)
    for i, (hint, found) in enumerate(zip(prof.text_encoders, files, strict=True)):
        if found is None:
            asked = s.text_encoders[i] if i < len(s.text_encoders) and s.text_encoders[i] else (
                f"{ENCODER_WORDS.get(hint, hint)} ({hint}…)")
            raise missing("text_encoder", asked, installed, catalog.node_name,
                          hint=f"{prof.label} needs the text encoders "
                               f"{', '.join(ENCODER_WORDS.get(h, h) for h in prof.text_encoders)}. "
                               + _ENCODER_FOLDER)
    names = [f for f in files if f is not None]
    if len(names) == 3:
        return wf.insert(part("triple_clip"), clip_1=names[0], clip_2=names[1], clip_3=names[2])["clip"]
    return wf.insert(part("dual_clip"), clip_1=names[0], clip_2=names[1],
                     type="flux" if prof.family is ModelFamily.flux else "sd3")["clip"]


def _vae(wf: Workflow, catalog: NodeCatalog, s: Sampling, prof: FamilyProfile) -> Link:
    installed = catalog.combo("VAELoader", "vae_name")
    found = match_file(s.vae, installed) if s.vae else pick_file(prof.vae or "vae", installed)
    if found is None:
        asked = s.vae or f"{prof.label} VAE ({prof.vae or 'vae'}.safetensors)"
        raise missing("vae", asked, installed, catalog.node_name, hint=_VAE_FOLDER)
    return wf.insert(part("vae_loader"), vae=found)["vae"]
