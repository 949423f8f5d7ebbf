"""What a ComfyUI node has installed (its /object_info), and checking a graph against it.

`check_graph` compares a finished graph with the node's `/object_info` so a missing model or
node class is reported in plain words before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stablenew.backends.comfyui_names import (
    A1111_SAMPLER,
    A1111_SCHEDULER,
    COMBO_WHAT,
    missing,
    user_words,
)
from stablenew.backends.errors import MissingResource, RequestRejected


@dataclass(frozen=True)
class NodeCatalog:
    """What one ComfyUI node has installed, as far as building graphs needs to know."""

    node_name: str
    object_info: Mapping[str, dict]
    embeddings: tuple[str, ...] = ()

    def has(self, class_type: str) -> bool:
        return class_type in self.object_info

    def combo(self, class_type: str, input_name: str) -> tuple[str, ...]:
        spec = _input_spec(self.object_info.get(class_type, {}), input_name)
        return tuple(_combo_options(spec) or ()) if spec else ()

    @property
    def checkpoints(self) -> tuple[str, ...]:
        return self.combo("CheckpointLoaderSimple", "ckpt_name")

    @property
    def diffusion_models(self) -> tuple[str, ...]:
        """Model files loaded without their text encoders and VAE (Flux, SD3.5), GGUF ones too."""
        return self.combo("UNETLoader", "unet_name") + self.combo("UnetLoaderGGUF", "unet_name")

    @property
    def samplers(self) -> tuple[str, ...]:
        return self.combo("KSampler", "sampler_name")

    @property
    def schedulers(self) -> tuple[str, ...]:
        return self.combo("KSampler", "scheduler")

    @property
    def loras(self) -> tuple[str, ...]:
        return self.combo("LoraLoader", "lora_name")

    @property
    def upscale_models(self) -> tuple[str, ...]:
        return self.combo("UpscaleModelLoader", "model_name")

    @property
    def detector_models(self) -> tuple[str, ...]:
        return self.combo("UltralyticsDetectorProvider", "model_name")


def _input_spec(info: Mapping, input_name: str) -> list | None:
    section = info.get("input") or {}
    for kind in ("required", "optional"):
        spec = (section.get(kind) or {}).get(input_name)
        if spec is not None:
            return spec
    return None


def _combo_options(spec: list | None) -> list | None:
    """Options of a combo input in either layout: `[[...], {}]` or `["COMBO", {"options": [...]}]`."""
    if not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return list(spec[1].get("options") or [])
    return None


#: Classes whose absence means a custom-node pack is missing, with the words to say so.
CUSTOM_NODE_HINTS = {
    "FaceDetailer": "Face detailing needs the Impact Pack custom nodes (ComfyUI-Impact-Pack).",
    "UltralyticsDetectorProvider": "Face detection needs the Impact Subpack custom nodes "
                                   "(ComfyUI-Impact-Subpack).",
}


def check_graph(graph: Mapping[str, dict], catalog: NodeCatalog) -> None:
    """Raise the first problem the node would report, in plain words, before anything is sent."""
    node = catalog.node_name
    for nid, n in graph.items():
        cls = n["class_type"]
        info = catalog.object_info.get(cls)
        if not info:
            title = (n.get("_meta") or {}).get("title") or cls
            installed = sorted(catalog.object_info)
            hint = CUSTOM_NODE_HINTS.get(cls, "Install the custom node that provides it, or use "
                                              "another template.")
            raise MissingResource(
                f"Node type '{cls}' (step '{title}') is not installed on node '{node}'. {hint}",
                what="node_class", name=cls, installed=tuple(installed[:0]), node=node,
                detail=f"graph node {nid}: class_type {cls} not in /object_info")
        for iname, value in n.get("inputs", {}).items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                if not isinstance(value[0], str) or value[0] not in graph:
                    raise RequestRejected(f"The workflow links node {nid} to node {value[0]!r}, "
                                          "which is not in the graph.", fields=(iname,),
                                          detail=f"{nid}.{iname} -> {value!r}", node=node)
                continue
            spec = _input_spec(info, iname)
            if spec is None:
                continue  # extra inputs are ignored by ComfyUI too
            options = _combo_options(spec)
            if options is not None:
                if cls in ("LoadImage", "LoadImageMask") and iname == "image":
                    continue  # the combo lists only top-level inputs; uploads live in a subfolder
                if value not in options:
                    what = COMBO_WHAT.get((cls, iname)) or (
                        "sampler" if iname == "sampler_name" else "scheduler" if iname == "scheduler"
                        else "")
                    if what:
                        shown = {"sampler": A1111_SAMPLER,
                                 "scheduler": A1111_SCHEDULER}.get(what, {}).get(str(value))
                        raise missing(what, shown or str(value), user_words(what, options), node,
                                      detail=f"graph node {nid} ({cls}).{iname}={value!r}")
                    raise RequestRejected(
                        f"'{value}' is not a valid {iname} for {cls} on node '{node}'; valid: "
                        f"{', '.join(map(str, options[:12]))}.", fields=(iname,),
                        detail=f"graph node {nid} ({cls}).{iname}={value!r}", node=node)
                continue
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if kind in ("INT", "FLOAT") and isinstance(value, int | float) and not isinstance(value, bool):
                low, high = opts.get("min"), opts.get("max")
                if (low is not None and value < low) or (high is not None and value > high):
                    raise RequestRejected(
                        f"{iname} = {value} is outside what {cls} accepts ({low}…{high}) on node "
                        f"'{node}'.", fields=(iname,), detail=f"graph node {nid} ({cls})", node=node)
        required = (info.get("input") or {}).get("required") or {}
        for iname in required:
            if iname not in n.get("inputs", {}):
                raise RequestRejected(f"The workflow's {cls} step (node {nid}) lacks its '{iname}' input.",
                                      fields=(iname,), detail=f"graph node {nid}", node=node)
