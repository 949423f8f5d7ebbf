"""Typed building of ComfyUI API-format graphs from our jobs, and checking them against a node.

Graphs are assembled from template parts in `resources/workflows/parts/` (API-format nodes with
declared ports and a parameter map, see `resources/workflows/README.md`). The builder fills
parameters by name into the node inputs the part declares; values are never spliced into JSON
text. `check_graph` compares the finished graph with the node's `/object_info` so a missing
model or node class is reported before anything is sent.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stablenew.backends.comfyui_messages import HIRES_TITLE
from stablenew.backends.comfyui_names import (
    A1111_SAMPLER,
    A1111_SCHEDULER,
    COMBO_WHAT,
    LATENT_UPSCALERS,
    PIXEL_UPSCALERS,
    UPSCALER_ALIASES,
    comfy_sampler,
    comfy_scheduler,
    mark_embeddings,
    match_file,
    missing,
    normalize_name,
    split_loras,
    user_words,
)
from stablenew.backends.errors import MissingResource, RequestRejected
from stablenew.backends.types import (
    ADetailerJob,
    HiresFix,
    Img2ImgJob,
    ResizeMode,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)
from stablenew.storage.resources import resource_path

FORMAT_VERSION = 1

# ---------------------------------------------------------------------------- templates
class TemplateError(RequestRejected):
    """A workflow template file is malformed (which file, which field, what to do)."""


@dataclass(frozen=True)
class ParamRef:
    node: str
    input: str


@dataclass(frozen=True)
class Template:
    """An API-format subgraph with named ports and a declared parameter map."""

    name: str
    nodes: Mapping[str, dict]
    params: Mapping[str, tuple[ParamRef, ...]]
    inputs: Mapping[str, str]
    outputs: Mapping[str, tuple[str, int]]
    job: str = ""
    description: str = ""
    source: str = ""

    @classmethod
    def from_dict(cls, data: Any, *, name: str, source: str = "") -> Template:
        where = source or name

        def fail(field_: str, what: str) -> TemplateError:
            return TemplateError(f"Workflow template {where}: field '{field_}' {what}.",
                                 fields=(field_,), detail=f"{where}: {field_}: {what}")

        if not isinstance(data, dict):
            raise fail("(top level)", "must be a JSON object")
        if data.get("stablenew_workflow") != FORMAT_VERSION:
            raise fail("stablenew_workflow", f"must be {FORMAT_VERSION} (the template format version)")
        nodes = data.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            raise fail("nodes", "must be a non-empty object of API-format nodes")
        for nid, node in nodes.items():
            if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
                raise fail(f"nodes.{nid}.class_type", "is missing")
            if not isinstance(node.get("inputs", {}), dict):
                raise fail(f"nodes.{nid}.inputs", "must be an object")
        params: dict[str, tuple[ParamRef, ...]] = {}
        for pname, refs in (data.get("params") or {}).items():
            refs_list = refs if isinstance(refs, list) else [refs]
            parsed = []
            for ref in refs_list:
                if not isinstance(ref, dict) or ref.get("node") not in nodes or not isinstance(
                        ref.get("input"), str):
                    raise fail(f"params.{pname}", "must name an existing node and one of its inputs "
                               "as {\"node\": \"id\", \"input\": \"name\"}")
                parsed.append(ParamRef(str(ref["node"]), ref["input"]))
            params[pname] = tuple(parsed)
        inputs = data.get("inputs") or {}
        outputs: dict[str, tuple[str, int]] = {}
        for oname, link in (data.get("outputs") or {}).items():
            if (not isinstance(link, list) or len(link) != 2 or link[0] not in nodes
                    or not isinstance(link[1], int)):
                raise fail(f"outputs.{oname}", "must be [\"node id\", output index] of a node in this file")
            outputs[oname] = (str(link[0]), link[1])
        for nid, node in nodes.items():
            for iname, value in node.get("inputs", {}).items():
                if isinstance(value, dict) and "port" in value and value["port"] not in inputs:
                    raise fail(f"nodes.{nid}.inputs.{iname}", f"uses port '{value['port']}' that "
                               "'inputs' does not declare")
        return cls(name=name, nodes=nodes, params=params, inputs=dict(inputs), outputs=outputs,
                   job=str(data.get("job", "")), description=str(data.get("description", "")),
                   source=source)

    @classmethod
    def load(cls, path: Path) -> Template:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TemplateError(f"Cannot read the workflow template {path}.", detail=repr(exc)) from exc
        except json.JSONDecodeError as exc:
            raise TemplateError(
                f"Workflow template {path}, line {exc.lineno}: not valid JSON ({exc.msg}). "
                "Fix the file or remove it.", fields=("(json)",), detail=str(exc)) from exc
        return cls.from_dict(data, name=path.stem, source=str(path))


@cache
def _part_cached(name: str) -> Template:
    return Template.load(resource_path("workflows", "parts", f"{name}.json"))


def part(name: str) -> Template:
    """A shipped template part by name (files in resources/workflows/parts/)."""
    return _part_cached(name)


def part_classes() -> set[str]:
    """Node classes used by the shipped parts (what a node is probed for)."""
    folder = resource_path("workflows", "parts")
    return {n["class_type"] for path in folder.glob("*.json") for n in part(path.stem).nodes.values()}


@dataclass(frozen=True)
class Link:
    """An output of a node in the graph being built (`["node_id", index]` in API format)."""

    node: str
    index: int

    def to_json(self) -> list:
        return [self.node, self.index]


@dataclass
class Workflow:
    """A ComfyUI API-format graph under construction; node ids are strings as the API requires."""

    nodes: dict[str, dict] = field(default_factory=dict)
    #: Node id whose images are the result.
    output_node: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Uploaded inputs the graph refers to: LoadImage value -> bytes (uploaded before sending).
    uploads: dict[str, bytes] = field(default_factory=dict)
    #: The checkpoint file the main model loads ("" for graphs without one, e.g. upscale).
    checkpoint: str = ""
    _next: int = 1

    def insert(self, template: Template, ports: Mapping[str, Link] | None = None,
               **params: Any) -> dict[str, Link]:
        """Add a copy of `template`, wiring its ports and setting its declared parameters."""
        ports = dict(ports or {})
        missing_ports = set(template.inputs) - set(ports)
        if missing_ports:
            raise ValueError(f"template {template.name} needs ports {sorted(missing_ports)}")
        unknown = set(params) - set(template.params)
        if unknown:
            raise ValueError(f"template {template.name} has no parameters {sorted(unknown)}")
        ids: dict[str, str] = {}
        for local in template.nodes:
            ids[local] = str(self._next)
            self._next += 1
        for local, node in template.nodes.items():
            inputs: dict[str, Any] = {}
            for iname, value in node.get("inputs", {}).items():
                if isinstance(value, dict) and "port" in value:
                    inputs[iname] = ports[value["port"]].to_json()
                elif (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
                      and value[0] in template.nodes):
                    inputs[iname] = [ids[value[0]], value[1]]
                else:
                    inputs[iname] = copy.deepcopy(value)
            new = {"class_type": node["class_type"], "inputs": inputs}
            if "_meta" in node:
                new["_meta"] = copy.deepcopy(node["_meta"])
            self.nodes[ids[local]] = new
        for pname, value in params.items():
            for ref in template.params[pname]:
                self.nodes[ids[ref.node]]["inputs"][ref.input] = value
        for local, node in template.nodes.items():
            for iname, value in node.get("inputs", {}).items():
                if value is None and self.nodes[ids[local]]["inputs"][iname] is None:
                    raise ValueError(f"template {template.name}: parameter for {local}.{iname} not given")
        if any(n["class_type"] in ("PreviewImage", "SaveImage") for n in template.nodes.values()):
            self.output_node = next(ids[k] for k, n in template.nodes.items()
                                    if n["class_type"] in ("PreviewImage", "SaveImage"))
        return {oname: Link(ids[nid], idx) for oname, (nid, idx) in template.outputs.items()}

    def to_api(self) -> dict:
        return copy.deepcopy(self.nodes)


# ---------------------------------------------------------------------------- node knowledge
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


# ---------------------------------------------------------------------------- job -> graph
@dataclass
class _Model:
    model: Link
    clip: Link
    vae: Link
    positive: Link
    negative: Link


class WorkflowBuilder:
    """Turns our backend jobs into ComfyUI graphs using the template parts."""

    def __init__(self, catalog: NodeCatalog, *, save_on_server: bool = False,
                 user_templates: Mapping[str, Template] | None = None) -> None:
        self.catalog = catalog
        self.save_on_server = save_on_server
        self.user_templates = dict(user_templates or {})

    # -- helpers
    def _checkpoint(self, name: str, wf: Workflow) -> str:
        installed = self.catalog.checkpoints
        if not name:
            if not installed:
                raise missing("checkpoint", "(any)", installed, self.catalog.node_name)
            wf.warnings.append(f"No checkpoint chosen; used '{installed[0]}'.")
            found: str | None = installed[0]
        else:
            found = match_file(name, installed)
        if found is None:
            raise missing("checkpoint", name, installed, self.catalog.node_name)
        if not wf.checkpoint:
            wf.checkpoint = found  # the first model loaded is the main one (then a refiner)
        return found

    def _sampler(self, s: Sampling) -> tuple[str, str]:
        sampler, implied = comfy_sampler(s.sampler, self.catalog.samplers, self.catalog.node_name)
        scheduler = comfy_scheduler(s.scheduler, sampler, implied, self.catalog.schedulers,
                                    self.catalog.node_name)
        return sampler, scheduler

    def _model(self, wf: Workflow, s: Sampling, *, checkpoint: str | None = None,
               prompt: str | None = None, negative: str | None = None, loras: bool = True) -> _Model:
        ckpt = wf.insert(part("checkpoint"), checkpoint=self._checkpoint(
            s.checkpoint if checkpoint is None else checkpoint, wf))
        model, clip = ckpt["model"], ckpt["clip"]
        text, lora_uses, warns = split_loras(s.prompt if prompt is None else prompt)
        neg, neg_loras, neg_warns = split_loras(s.negative_prompt if negative is None else negative)
        wf.warnings.extend(warns + neg_warns)
        if neg_loras and loras:
            wf.warnings.append("LoRA tags in the negative prompt were applied like the positive ones.")
        # The refiner is another model family: the prompt's LoRAs are meant for the base model.
        for use in (lora_uses + neg_loras) if loras else []:
            found = match_file(use.name, self.catalog.loras)
            if found is None:
                raise missing("lora", use.name, self.catalog.loras, self.catalog.node_name)
            out = wf.insert(part("lora"), {"model": model, "clip": clip}, lora=found,
                            unet_weight=use.unet_weight, text_encoder_weight=use.text_encoder_weight)
            model, clip = out["model"], out["clip"]
        if s.clip_skip > 1:
            clip = wf.insert(part("clip_skip"), {"clip": clip}, stop_at_clip_layer=-s.clip_skip)["clip"]
        text = mark_embeddings(text, self.catalog.embeddings)
        neg = mark_embeddings(neg, self.catalog.embeddings)
        enc = wf.insert(part("prompts"), {"clip": clip}, prompt=text, negative_prompt=neg)
        return _Model(model, clip, ckpt["vae"], enc["positive"], enc["negative"])

    def _output(self, wf: Workflow, image: Link, task_id: str) -> None:
        if self.save_on_server:
            safe = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)[:40] or "img"
            wf.insert(part("save"), {"image": image}, filename_prefix=f"StableNew/{safe}")
        else:
            wf.insert(part("output"), {"image": image})

    def _upload(self, wf: Workflow, data: bytes) -> str:
        import hashlib

        name = f"stablenew/{hashlib.sha256(data).hexdigest()[:24]}.png"
        wf.uploads[name] = data
        return name

    def _hires(self, wf: Workflow, m: _Model, latent: Link, s: Sampling, h: HiresFix,
               sampler: str, scheduler: str) -> Link:
        # A1111 truncates (int) and its latent floors to a multiple of 8; match its sizes.
        width, height = int(s.width * h.scale), int(s.height * h.scale)
        if h.resize_width or h.resize_height:
            width = h.resize_width or int(s.width * h.resize_height / s.height)
            height = h.resize_height or int(s.height * h.resize_width / s.width)
        width, height = max(16, width // 8 * 8), max(16, height // 8 * 8)
        key = normalize_name(h.upscaler)
        if key in LATENT_UPSCALERS:
            latent = wf.insert(part("latent_upscale"), {"latent": latent}, method=LATENT_UPSCALERS[key],
                               width=width, height=height)["latent"]
        else:
            image = wf.insert(part("decode"), {"latent": latent, "vae": m.vae})["image"]
            image = self._pixel_upscale(wf, image, h.upscaler, width, height)
            latent = wf.insert(part("encode"), {"image": image, "vae": m.vae})["latent"]
        out = wf.insert(part("sampler"), {"model": m.model, "positive": m.positive,
                                          "negative": m.negative, "latent": latent},
                        seed=s.seed, steps=h.steps or s.steps,
                        cfg_scale=h.cfg_scale if h.cfg_scale is not None else s.cfg_scale,
                        sampler=sampler, scheduler=scheduler, denoise=h.denoise)["latent"]
        # Named, so progress can say "Hires fix 3/8" (ComfyUI shows the title in its own UI too).
        wf.nodes[out.node].setdefault("_meta", {})["title"] = HIRES_TITLE
        return out

    def _pixel_upscale(self, wf: Workflow, image: Link, upscaler: str, width: int, height: int) -> Link:
        key = normalize_name(upscaler)
        if key not in PIXEL_UPSCALERS:
            model_file = self.upscale_model_file(upscaler)
            image = wf.insert(part("upscale_model"), {"image": image}, upscaler=model_file)["image"]
        return wf.insert(part("scale_image"), {"image": image}, method=PIXEL_UPSCALERS.get(key, "lanczos"),
                         width=width, height=height, crop="disabled")["image"]

    def upscale_model_file(self, upscaler: str) -> str:
        installed = self.catalog.upscale_models
        found = match_file(upscaler, installed)
        for alias in UPSCALER_ALIASES.get(normalize_name(upscaler), ()):
            found = found or match_file(alias, installed)
        if found is None:
            raise missing("upscaler", upscaler, installed, self.catalog.node_name,
                          hint="Copy the model into ComfyUI's models/upscale_models folder or pick an "
                               "installed one.")
        return found

    # -- jobs
    def txt2img(self, job: Txt2ImgJob) -> Workflow:
        user = self.user_templates.get("txt2img")
        if user is not None:
            return self._from_user_template(user, job.sampling, job.task_id)
        s = job.sampling
        wf = Workflow()
        m = self._model(wf, s)
        sampler, scheduler = self._sampler(s)
        latent = wf.insert(part("empty_latent"), width=s.width, height=s.height)["latent"]
        if job.refiner is not None:
            r = self._model(wf, s, checkpoint=job.refiner.checkpoint, loras=False)
            switch = max(1, min(s.steps, round(s.steps * job.refiner.switch_at)))
            latent = wf.insert(part("refiner"), {
                "model": m.model, "positive": m.positive, "negative": m.negative, "latent": latent,
                "refiner_model": r.model, "refiner_positive": r.positive, "refiner_negative": r.negative,
            }, seed=s.seed, steps=s.steps, cfg_scale=s.cfg_scale, sampler=sampler, scheduler=scheduler,
                switch_step=switch)["latent"]
        else:
            latent = wf.insert(part("sampler"), {"model": m.model, "positive": m.positive,
                                                 "negative": m.negative, "latent": latent},
                               seed=s.seed, steps=s.steps, cfg_scale=s.cfg_scale, sampler=sampler,
                               scheduler=scheduler, denoise=1.0)["latent"]
        if job.hires is not None:
            latent = self._hires(wf, m, latent, s, job.hires, sampler, scheduler)
        image = wf.insert(part("decode"), {"latent": latent, "vae": m.vae})["image"]
        self._output(wf, image, job.task_id)
        return wf

    def img2img(self, job: Img2ImgJob) -> Workflow:
        user = self.user_templates.get("img2img")
        s = job.sampling
        if user is not None:
            wf = self._from_user_template(user, s, job.task_id, denoise=job.denoise,
                                          init_image=job.init_image)
            if job.mask is not None:
                wf.warnings.append(f"Workflow template '{user.name}' takes no mask; the whole image "
                                   "was redrawn.")
            return wf
        wf = Workflow()
        m = self._model(wf, s)
        sampler, scheduler = self._sampler(s)
        image = wf.insert(part("load_image"), image=self._upload(wf, job.init_image))["image"]
        if job.resize_mode == ResizeMode.resize_and_fill:
            wf.warnings.append("Resize mode 'resize and fill' runs as 'crop and resize' on ComfyUI.")
        crop = "disabled" if job.resize_mode == ResizeMode.just_resize else "center"
        image = wf.insert(part("scale_image"), {"image": image}, method="lanczos", width=s.width,
                          height=s.height, crop=crop)["image"]
        latent = wf.insert(part("encode"), {"image": image, "vae": m.vae})["latent"]
        if job.mask is not None:
            latent = wf.insert(part("inpaint_mask"), {"latent": latent}, mask=self._upload(wf, job.mask),
                               mask_blur=max(1, min(31, job.mask_blur)))["latent"]
        latent = wf.insert(part("sampler"), {"model": m.model, "positive": m.positive,
                                             "negative": m.negative, "latent": latent},
                           seed=s.seed, steps=s.steps, cfg_scale=s.cfg_scale, sampler=sampler,
                           scheduler=scheduler, denoise=job.denoise)["latent"]
        image = wf.insert(part("decode"), {"latent": latent, "vae": m.vae})["image"]
        self._output(wf, image, job.task_id)
        return wf

    def adetailer(self, job: ADetailerJob) -> Workflow:
        for cls in ("FaceDetailer", "UltralyticsDetectorProvider"):
            if not self.catalog.has(cls):
                raise MissingResource(
                    f"ADetailer passes need the '{cls}' node, which is not installed on node "
                    f"'{self.catalog.node_name}'. {CUSTOM_NODE_HINTS[cls]}",
                    what="node_class", name=cls, node=self.catalog.node_name)
        s = job.sampling
        wf = Workflow()
        m = self._model(wf, s)
        sampler, scheduler = self._sampler(s)
        image = wf.insert(part("load_image"), image=self._upload(wf, job.image))["image"]
        for i, p in enumerate(job.passes):
            if not p.enabled:
                continue  # its place still counts: a later pass keeps its seed offset
            detector = self.detector_file(p.model)
            if p.prompt or p.negative_prompt:
                enc = wf.insert(part("prompts"), {"clip": m.clip},
                                prompt=p.prompt or split_loras(s.prompt)[0],
                                negative_prompt=p.negative_prompt or split_loras(s.negative_prompt)[0])
                positive, negative = enc["positive"], enc["negative"]
            else:
                positive, negative = m.positive, m.negative
            image = wf.insert(part("face_detail"), {
                "image": image, "model": m.model, "clip": m.clip, "vae": m.vae,
                "positive": positive, "negative": negative,
            }, detector=detector, seed=s.seed + i, steps=s.steps, cfg_scale=s.cfg_scale, sampler=sampler,
                scheduler=scheduler, denoise=max(0.0001, p.denoise), confidence=p.confidence,
                mask_blur=p.mask_blur, padding=p.inpaint_padding)["image"]
        self._output(wf, image, job.task_id)
        return wf

    def detector_file(self, model: str) -> str:
        installed = self.catalog.detector_models
        found = match_file(model, installed)
        if found is None:
            raise missing("adetailer_model", model, installed, self.catalog.node_name,
                          hint="Put it in ComfyUI's models/ultralytics/bbox (or segm) folder.")
        return found

    def upscale(self, job: UpscaleJob) -> Workflow:
        width, height = image_size(job.image)
        if job.target_width > 0 and job.target_height > 0:
            tw, th = job.target_width, job.target_height
        else:
            tw, th = round(width * job.scale), round(height * job.scale)
        wf = Workflow()
        source = wf.insert(part("load_image"), image=self._upload(wf, job.image))["image"]
        image = self._pixel_upscale(wf, source, job.upscaler, tw, th)
        if job.upscaler_2 and normalize_name(job.upscaler_2) != "none" and job.upscaler_2_visibility > 0:
            other = self._pixel_upscale(wf, source, job.upscaler_2, tw, th)
            image = wf.insert(part("blend"), {"image": image, "other": other},
                              visibility=min(1.0, job.upscaler_2_visibility))["image"]
        self._output(wf, image, job.task_id)
        return wf

    # -- user templates
    def _from_user_template(self, template: Template, s: Sampling, task_id: str, **extra: Any) -> Workflow:
        """Fill a user's whole-graph template: every declared parameter we know gets its value."""
        if "image" not in template.outputs:
            raise TemplateError(f"Workflow template {template.source or template.name}: 'outputs' must "
                                "name the final IMAGE as \"image\": [\"node id\", index].",
                                fields=("outputs.image",))
        wf = Workflow()
        sampler, scheduler = self._sampler(s)
        prompt, loras, warns = split_loras(s.prompt)
        wf.warnings.extend(warns)
        if loras:
            wf.warnings.append(f"Workflow template '{template.name}' is used as it is: the prompt's "
                               "<lora:…> tags were left out (add LoraLoader nodes to the template).")
        values: dict[str, Any] = {
            "prompt": mark_embeddings(prompt, self.catalog.embeddings),
            "negative_prompt": mark_embeddings(split_loras(s.negative_prompt)[0], self.catalog.embeddings),
            "checkpoint": self._checkpoint(s.checkpoint, wf) if "checkpoint" in template.params else "",
            "seed": s.seed, "steps": s.steps, "cfg_scale": s.cfg_scale, "sampler": sampler,
            "scheduler": scheduler, "width": s.width, "height": s.height, "clip_skip": -s.clip_skip,
        }
        if "init_image" in extra:
            values["init_image"] = self._upload(wf, extra.pop("init_image"))
        values.update(extra)
        chosen = {k: v for k, v in values.items() if k in template.params}
        ignored = sorted(k for k in ("prompt", "seed") if k not in template.params)
        if ignored:
            wf.warnings.append(f"Workflow template '{template.name}' has no slot for: {', '.join(ignored)}.")
        try:
            out = wf.insert(template, **chosen)
        except ValueError as exc:
            raise TemplateError(f"Workflow template {template.source or template.name}: an input is null "
                                "but no parameter StableNew knows fills it; give it a value or declare "
                                "it in 'params'.", detail=str(exc)) from exc
        self._output(wf, out["image"], task_id)
        return wf


def image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.width, im.height
    except (UnidentifiedImageError, OSError) as exc:
        raise RequestRejected("The input image could not be read; it must be a PNG, JPEG or WebP file.",
                              fields=("image",), detail=repr(exc)) from exc


def load_user_templates(folder: Path) -> dict[str, Template]:
    """Whole-graph templates a user placed in `folder` (`<job>.json`), keyed by job kind."""
    found: dict[str, Template] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        template = Template.load(path)
        job = template.job or path.stem
        if job not in ("txt2img", "img2img"):
            raise TemplateError(f"Workflow template {path}: field 'job' must be 'txt2img' or 'img2img'.",
                                fields=("job",))
        found[job] = template
    return found
