"""Typed building of ComfyUI API-format graphs from our jobs.

Graphs are assembled from template parts (`comfyui_templates`); the model loaders of each
family come from `comfyui_models`. The finished graph is checked against the node's
`/object_info` (`comfyui_catalog.check_graph`) before anything is sent.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stablenew.backends.comfyui_catalog import (
    CUSTOM_NODE_HINTS,
    NodeCatalog,
    check_graph,
)
from stablenew.backends.comfyui_messages import HIRES_TITLE
from stablenew.backends.comfyui_models import checkpoint_file, load_model
from stablenew.backends.comfyui_names import (
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
)
from stablenew.backends.comfyui_references import Steered, apply_references
from stablenew.backends.comfyui_templates import (
    FORMAT_VERSION,
    Link,
    ParamRef,
    Template,
    TemplateError,
    Workflow,
    load_user_templates,
    part,
    part_classes,
)
from stablenew.backends.errors import MissingResource, RequestRejected
from stablenew.backends.families import ModelFamily, profile
from stablenew.backends.types import (
    ADetailerJob,
    HiresFix,
    Img2ImgJob,
    ReferenceUnit,
    ResizeMode,
    Sampling,
    Txt2ImgJob,
    UpscaleJob,
)

# Callers import these from here; they live in the modules split out by job.
__all__ = ["CUSTOM_NODE_HINTS", "FORMAT_VERSION", "Link", "NodeCatalog", "ParamRef", "Template",
           "TemplateError", "Workflow", "WorkflowBuilder", "check_graph", "image_size",
           "load_user_templates", "part", "part_classes"]


# ---------------------------------------------------------------------------- job -> graph
@dataclass
class _Model:
    model: Link
    clip: Link
    vae: Link
    positive: Link
    negative: Link
    #: The CFG the sampler uses: the stage's, or 1 for Flux (its guidance is in `positive`).
    cfg: float
    family: ModelFamily = ModelFamily.sd15


class WorkflowBuilder:
    """Turns our backend jobs into ComfyUI graphs using the template parts."""

    def __init__(self, catalog: NodeCatalog, *, save_on_server: bool = False,
                 user_templates: Mapping[str, Template] | None = None) -> None:
        self.catalog = catalog
        self.save_on_server = save_on_server
        self.user_templates = dict(user_templates or {})

    # -- helpers
    def _checkpoint(self, name: str, wf: Workflow) -> str:
        return checkpoint_file(self.catalog, name, wf)

    def _sampler(self, s: Sampling) -> tuple[str, str]:
        sampler, implied = comfy_sampler(s.sampler, self.catalog.samplers, self.catalog.node_name)
        scheduler = comfy_scheduler(s.scheduler, sampler, implied, self.catalog.schedulers,
                                    self.catalog.node_name)
        return sampler, scheduler

    def _model(self, wf: Workflow, s: Sampling, *, checkpoint: str | None = None,
               prompt: str | None = None, negative: str | None = None, loras: bool = True) -> _Model:
        loaded = load_model(wf, self.catalog, s, s.checkpoint if checkpoint is None else checkpoint)
        prof = profile(loaded.family)
        model, clip = loaded.model, loaded.clip
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
            if "clip_skip" in prof.hidden:
                _warn(wf, f"Clip skip is not used: {prof.hidden['clip_skip']}")
            else:
                clip = wf.insert(part("clip_skip"), {"clip": clip},
                                 stop_at_clip_layer=-s.clip_skip)["clip"]
        if neg.strip() and not prof.negative_prompt:
            _warn(wf, f"The negative prompt was left out: {prof.hidden.get('negative_prompt', '')}".strip())
            neg = ""
        text = mark_embeddings(text, self.catalog.embeddings)
        neg = mark_embeddings(neg, self.catalog.embeddings)
        enc = wf.insert(part("prompts"), {"clip": clip}, prompt=text, negative_prompt=neg)
        positive, cfg = enc["positive"], s.cfg_scale
        if loaded.family is ModelFamily.flux:
            # Flux is guidance-distilled: guidance rides on the conditioning and CFG stays 1
            # (anything else doubles the time and burns the image).
            positive = wf.insert(part("flux_guidance"), {"conditioning": positive},
                                 guidance=s.guidance)["conditioning"]
            cfg = 1.0
        return _Model(model, clip, loaded.vae, positive, enc["negative"], cfg, loaded.family)

    def _references(self, wf: Workflow, m: _Model, units: tuple[ReferenceUnit, ...]) -> None:
        if not units:
            return
        steered = apply_references(wf, self.catalog, units, Steered(m.model, m.positive, m.negative),
                                   m.vae, m.family, self._upload)
        m.model, m.positive, m.negative = steered.model, steered.positive, steered.negative

    def _empty_latent(self, wf: Workflow, m: _Model, s: Sampling) -> Link:
        # Flux and SD3.5 have 16-channel latents; ComfyUI's EmptySD3LatentImage makes those.
        name = ("empty_sd3_latent" if m.family in (ModelFamily.flux, ModelFamily.sd35)
                and self.catalog.has("EmptySD3LatentImage") else "empty_latent")
        return wf.insert(part(name), width=s.width, height=s.height)["latent"]

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
                        cfg_scale=h.cfg_scale if h.cfg_scale is not None and m.family is not
                        ModelFamily.flux else m.cfg,
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
            wf = self._from_user_template(user, job.sampling, job.task_id)
            if job.references:
                wf.warnings.append(f"Workflow template '{user.name}' is used as it is: the reference "
                                   "images were left out.")
            return wf
        s = job.sampling
        wf = Workflow()
        m = self._model(wf, s)
        self._references(wf, m, job.references)
        sampler, scheduler = self._sampler(s)
        latent = self._empty_latent(wf, m, s)
        refiner = job.refiner
        if refiner is not None and "refiner" in profile(m.family).hidden:
            _warn(wf, f"The refiner was not used: {profile(m.family).hidden['refiner']}")
            refiner = None
        if refiner is not None:
            r = self._model(wf, s, checkpoint=refiner.checkpoint, loras=False)
            switch = max(1, min(s.steps, round(s.steps * refiner.switch_at)))
            latent = wf.insert(part("refiner"), {
                "model": m.model, "positive": m.positive, "negative": m.negative, "latent": latent,
                "refiner_model": r.model, "refiner_positive": r.positive, "refiner_negative": r.negative,
            }, seed=s.seed, steps=s.steps, cfg_scale=s.cfg_scale, sampler=sampler, scheduler=scheduler,
                switch_step=switch)["latent"]
        else:
            latent = wf.insert(part("sampler"), {"model": m.model, "positive": m.positive,
                                                 "negative": m.negative, "latent": latent},
                               seed=s.seed, steps=s.steps, cfg_scale=m.cfg, sampler=sampler,
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
            if job.references:
                wf.warnings.append(f"Workflow template '{user.name}' is used as it is: the reference "
                                   "images were left out.")
            return wf
        wf = Workflow()
        m = self._model(wf, s)
        self._references(wf, m, job.references)
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
                           seed=s.seed, steps=s.steps, cfg_scale=m.cfg, sampler=sampler,
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
            }, detector=detector, seed=s.seed + i, steps=s.steps, cfg_scale=m.cfg, sampler=sampler,
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


def _warn(wf: Workflow, text: str) -> None:
    if text not in wf.warnings:
        wf.warnings.append(text)


def image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.width, im.height
    except (UnidentifiedImageError, OSError) as exc:
        raise RequestRejected("The input image could not be read; it must be a PNG, JPEG or WebP file.",
                              fields=("image",), detail=repr(exc)) from exc
