"""Configs that make an image again or build on it: regenerate, start from it, more like it,
upscale it. Each reads the image's own settings (our chunk, the A1111 infotext, or a peer's
metadata through the gallery's facts) and says in plain words what it lacks.

A picture a job starts from is first copied into StableNew's data folder under its content
hash, so the queued job still has it when the user moves or trashes the original.
"""

from __future__ import annotations

from pathlib import Path

from stablenew.errors import StableNewError
from stablenew.gallery.metadata import ImageFacts, read_facts
from stablenew.pipeline.config import MAX_SEED, PipelineConfig
from stablenew.pipeline.infotext import ImageMetadataError

#: "More like this": the same seed and prompt, redrawn this much (one image each).
MORE_LIKE_THIS_DENOISE = (0.3, 0.4, 0.5)
MORE_LIKE_IT = "make more like it from"
DEFAULT_UPSCALER = "R-ESRGAN 4x+"


class NothingToRemake(StableNewError):
    """The image lacks what the action needs (its settings, a readable picture)."""


def image_settings(path: Path, purpose: str = "make it again from") -> PipelineConfig:
    """The settings *path* was made with, for one image; NothingToRemake when it has none
    ("This image has no parameters to <purpose>").

    Our chunk or an A1111 infotext gives the whole config; a ComfyUI, InvokeAI or SwarmUI
    image gives what the gallery reads from it (prompt, model, seed, steps, CFG, size)."""
    from stablenew.pipeline.infotext_config import config_from_image

    try:
        config, _loaded, _unknown = config_from_image(path)
    except ImageMetadataError:
        config = _from_facts(path, purpose)
    except OSError as exc:
        raise NothingToRemake(f"{path.name} cannot be read ({exc.strerror or exc}).",
                              detail=repr(exc)) from exc
    # One image: the seed it was made with, not the batch its job made.
    return config.with_changes({"txt2img.batch_size": 1, "txt2img.batch_count": 1})


def _from_facts(path: Path, purpose: str) -> PipelineConfig:
    try:
        facts = read_facts(path)
    except (ImageMetadataError, OSError) as exc:
        raise NothingToRemake(f"{path.name} cannot be read as an image.", detail=repr(exc)) from exc
    if not facts.prompt:
        raise NothingToRemake(f"This image has no parameters to {purpose}: {path.name} carries "
                              "no prompt or settings (it may have been edited, or saved by a "
                              "program that leaves them out).", detail=str(path))
    changes: dict[str, object] = {"txt2img.prompt": facts.prompt,
                                  "txt2img.negative_prompt": facts.negative,
                                  "txt2img.checkpoint": facts.model}
    if facts.seed is not None and 0 <= facts.seed <= MAX_SEED:
        changes["txt2img.seed"] = facts.seed
    if facts.steps and 1 <= facts.steps <= 150:
        changes["txt2img.steps"] = facts.steps
    if facts.cfg and 1.0 <= facts.cfg <= 30.0:
        changes["txt2img.cfg_scale"] = facts.cfg
    changes.update(_size_changes(facts))
    return PipelineConfig().with_changes(changes)


def _size_changes(facts: ImageFacts) -> dict[str, object]:
    """The image's size as card values (a multiple of 8 within the card's range)."""
    if not facts.width or not facts.height:
        return {}
    return {"txt2img.width": min(4096, max(64, facts.width // 8 * 8)),
            "txt2img.height": min(4096, max(64, facts.height // 8 * 8))}


def regenerate_config(path: Path) -> PipelineConfig:
    """The image's own settings and seed, to make it once more."""
    config = image_settings(path, "regenerate from")
    if config.txt2img.enabled and not config.txt2img.prompt and not config.img2img.init_image:
        raise NothingToRemake("This image has no parameters to regenerate from: its settings "
                              "have no prompt.", detail=str(path))
    start = config.img2img.init_image if config.img2img.enabled else ""
    if start and not Path(start).is_file():
        # Its start picture was a copy in start_images, removed after weeks unused.
        raise NothingToRemake("The picture this image was redrawn from is no longer kept, so it "
                              "cannot be made again the same way. Open that picture and use "
                              "\"Use as init image\" to start from it again.",
                              detail=f"{path}: init image {start} is gone")
    return config


def store_start_image(path: Path, folder: Path) -> Path:
    """A copy of the picture at *path* in *folder*, named by its content hash (stored once)."""
    from stablenew.pipeline.references import ReferenceMissing, store_reference

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NothingToRemake(f"{path.name} cannot be read ({exc.strerror or exc}).",
                              detail=repr(exc)) from exc
    try:
        return Path(store_reference(data, folder).image)
    except ReferenceMissing as exc:
        raise NothingToRemake(f"{path.name} is not a PNG, JPEG or WebP picture, so nothing can "
                              "start from it.", detail=str(path)) from exc


def _picture_size(path: Path) -> dict[str, object]:
    try:
        facts = read_facts(path)
    except (ImageMetadataError, OSError) as exc:
        raise NothingToRemake(f"{path.name} cannot be read as an image.", detail=repr(exc)) from exc
    return _size_changes(facts)


def start_from(base: PipelineConfig, path: Path, stored: Path) -> tuple[PipelineConfig, bool]:
    """*base* turned into image to image from the picture (*stored*: its copy) with the
    picture's prompt, seed and model when it has them; the flag says whether it had them."""
    changes: dict[str, object] = {"txt2img.enabled": False, "img2img.enabled": True,
                                  "img2img.init_image": str(stored),
                                  "txt2img.batch_size": 1, "txt2img.batch_count": 1}
    try:
        own = image_settings(path)
    except NothingToRemake:
        own = None
    if own is not None:
        t = own.txt2img
        changes.update({"txt2img.prompt": t.prompt, "txt2img.negative_prompt": t.negative_prompt,
                        "txt2img.checkpoint": t.checkpoint, "txt2img.seed": t.seed,
                        "txt2img.family": t.family.value})
    changes.update(_picture_size(path))
    return base.with_changes(changes), own is not None


def more_like_this_configs(path: Path, stored: Path) -> list[PipelineConfig]:
    """Image to image from the picture with its own prompt and seed, a little redrawn: one
    config per denoise in MORE_LIKE_THIS_DENOISE (the same seed throughout)."""
    own = image_settings(path, MORE_LIKE_IT)
    t = own.txt2img
    if not t.prompt or t.seed < 0:
        raise NothingToRemake("This image has no prompt and seed to make more like it from.",
                              detail=str(path))
    base = own.with_changes({"txt2img.enabled": False, "img2img.enabled": True,
                             "img2img.init_image": str(stored),
                             "img2img.steps": t.steps, "img2img.cfg_scale": t.cfg_scale,
                             "img2img.sampler": t.sampler, "img2img.scheduler": t.scheduler,
                             "img2img.prompt_override": "", "img2img.negative_override": "",
                             "upscale.enabled": False,
                             **_picture_size(path)})
    return [base.with_changes({"img2img.denoise": d}) for d in MORE_LIKE_THIS_DENOISE]


def upscale_config(path: Path, stored: Path, *, upscaler: str = DEFAULT_UPSCALER,
                   scale: float = 2.0) -> PipelineConfig:
    """Only the upscale stage, from the picture (no model needed: any node with the upscaler
    can take it, which is how the cluster picks the node for it)."""
    try:
        own = image_settings(path)
        prompt, negative = own.txt2img.prompt, own.txt2img.negative_prompt
    except NothingToRemake:
        prompt = negative = ""
    changes: dict[str, object] = {
        "txt2img.enabled": False, "img2img.enabled": False, "adetailer.enabled": False,
        "upscale.enabled": True, "upscale.upscaler": upscaler or DEFAULT_UPSCALER,
        "upscale.scale": scale, "upscale.target_width": 0, "upscale.target_height": 0,
        "img2img.init_image": str(stored), "txt2img.prompt": prompt,
        "txt2img.negative_prompt": negative, **_picture_size(path)}
    try:
        return PipelineConfig().with_changes(changes)
    except ValueError as exc:  # the safety limits: too large to upscale this much
        raise NothingToRemake(f"{path.name} cannot be upscaled {scale:g}×: "
                              f"{_first_reason(exc)}", detail=repr(exc)) from exc


def _first_reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        for error in errors():
            message = str(error.get("msg", ""))
            return message.removeprefix("Value error, ")
    return str(exc)
