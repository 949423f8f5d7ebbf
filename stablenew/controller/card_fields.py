"""What the pipeline cards show: their fields per section, read from the PipelineConfig model,
which server listing fills each picker, and card values to and from a PipelineConfig."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from stablenew.controller.field_spec import FieldValue, JsonValue
from stablenew.controller.fields import FieldSpec, field_specs
from stablenew.pipeline import config as cfg

if TYPE_CHECKING:
    from stablenew.backends.types import Capabilities


def _default_of(path: str) -> JsonValue:
    """The PipelineConfig model's default for a dotted field path."""
    node: JsonValue = cfg.PipelineConfig().model_dump(mode="json")
    for part in path.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None  # a path into a plain value names no field
        if node is None:
            return None
    return node


# Which server listing fills which picker (by the field's last name, or its full path).
_OPTION_SOURCES = {
    "txt2img.checkpoint": "checkpoints",
    "txt2img.refiner.checkpoint": "checkpoints",
    "txt2img.sampler": "samplers",
    "img2img.sampler": "samplers",
    "txt2img.scheduler": "schedulers",
    "img2img.scheduler": "schedulers",
    "txt2img.hires.upscaler": "upscalers",
    "upscale.upscaler": "upscalers",
    "upscale.upscaler_2": "upscalers",
    "adetailer.passes.0.model": "adetailer_models",
    "txt2img.vae": "modules",
    "txt2img.text_encoder": "modules",
    "txt2img.text_encoder_2": "modules",
    "adetailer.passes.1.model": "adetailer_models",
}
# The ADetailer card shows two detector passes, as ADetailer's own UI opens with two tabs, each
# with its own switch. Passes after the second (a preset's or an image's third) are not on the
# card: they are kept in their places and run, whether the second runs or not.
#: What the second pass shows before it is used: hands, the usual second detector after faces,
#: switched off until the user turns it on.
_SECOND_PASS_DEFAULTS: dict[str, FieldValue] = {"model": "hand_yolov8n.pt", "enabled": False}
#: How the card names each pass's switch (the model's title is "Run this pass").
_PASS_SWITCHES = {
    0: ("First pass", "Run the first detector. Off skips this pass only: the second and any "
                      "later pass still run in their own places."),
    1: ("Second pass", "Run a second detector after the first, e.g. hands after faces. Off "
                       "skips this pass only: a third pass loaded from a preset or an image "
                       "still runs."),
}
_LATENT_UPSCALERS = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (nearest)")



def sections() -> dict[str, list[FieldSpec]]:
    """Field descriptions per card section, read from the PipelineConfig model."""
    return {
        "txt2img": field_specs(cfg.Txt2ImgSettings, "txt2img."),
        "txt2img.hires": field_specs(cfg.HiresSettings, "txt2img.hires."),
        "txt2img.refiner": field_specs(cfg.RefinerSettings, "txt2img.refiner."),
        "img2img": field_specs(cfg.Img2ImgSettings, "img2img."),
        "adetailer": field_specs(cfg.ADetailerSettings, "adetailer."),
        "adetailer.passes.0": _pass_specs(0),
        # Its switch first: the card shows it as the head of the second pass's section.
        "adetailer.passes.1": _pass_specs(1, _SECOND_PASS_DEFAULTS),
        "upscale": field_specs(cfg.UpscaleSettings, "upscale."),
    }


def _pass_specs(index: int, defaults: dict[str, FieldValue] | None = None) -> list[FieldSpec]:
    """One detector pass's fields, its switch first and named for its place on the card."""
    specs = []
    for spec in field_specs(cfg.ADetailerPassSettings, f"adetailer.passes.{index}."):
        spec = replace(spec, default=(defaults or {}).get(spec.name, spec.default))
        if spec.name == "enabled":
            title, description = _PASS_SWITCHES[index]
            spec = replace(spec, title=title, description=description)
        specs.append(spec)
    return sorted(specs, key=lambda spec: spec.name != "enabled")


#: Pickers whose names are grouped by model family (SDXL, Flux, …) when several are present.
GROUPED = frozenset({"txt2img.checkpoint", "txt2img.refiner.checkpoint"})
_FAMILY_TITLES = {"sd15": "SD 1.5", "sdxl": "SDXL", "pony": "Pony", "illustrious": "Illustrious",
                  "flux": "Flux", "sd35": "SD 3.5"}


def choice_groups(path: str, names: list[str]) -> list[tuple[str, list[str]]]:
    """*names* grouped under their model family's title (as the file names say), the families
    in a fixed order and the names sorted; one untitled group when there is nothing to group."""
    from stablenew.backends.families import ModelFamily, family_from_name

    if path not in GROUPED:
        return [("", names)]
    groups: dict[ModelFamily, list[str]] = {}
    for name in names:
        groups.setdefault(family_from_name(name), []).append(name)
    if len(groups) < 2:
        return [("", names)]
    order = list(ModelFamily)
    return [(_FAMILY_TITLES.get(family.value, family.value), sorted(members, key=str.casefold))
            for family, members in sorted(groups.items(), key=lambda kv: order.index(kv[0]))]


def choices(path: str, caps: Capabilities | None) -> list[str]:
    """Names the server's *caps* offer for a picker field ([] when not a picker or unknown)."""
    source = _OPTION_SOURCES.get(path)
    if source is None or caps is None:
        return []
    names = list(getattr(caps, source, ()) or ())
    if path == "txt2img.hires.upscaler":
        names = [n for n in _LATENT_UPSCALERS if n not in names] + names
    if path == "upscale.upscaler_2":
        names = ["None", *[n for n in names if n != "None"]]
    return names


def fallback_choice(path: str, current: FieldValue, names: list[str]) -> str | None:
    """One of *names* (what the server has) for a picker still on the model's default that
    the server lacks; None: keep the current one. A value chosen by the user is kept."""
    if _OPTION_SOURCES.get(path) != "upscalers":
        return None  # a checkpoint or sampler left empty means "the server's own"
    if not names or current in names or current != _default_of(path):
        return None
    plain = {"none", "lanczos", "nearest"}
    models = [n for n in names if n.lower() not in plain and not n.lower().startswith("latent")]
    if models:
        return models[0]
    return next((n for n in ("Lanczos", "None") if n in names), names[0])


def is_picker(path: str) -> bool:
    return path in _OPTION_SOURCES


def values_of(config: cfg.PipelineConfig) -> dict[str, FieldValue]:
    """Flatten a config into the dotted paths the cards use."""
    values: dict[str, FieldValue] = {}

    def walk(node: JsonValue, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{prefix}{index}.")
        else:
            values[prefix[:-1]] = node

    walk(config.model_dump(mode="json"), "")
    passes = config.adetailer.passes
    if len(passes) < 2:  # the card's second pass shows what it would run once switched on
        second = cfg.ADetailerPassSettings(**_SECOND_PASS_DEFAULTS).model_dump(mode="json")
        values.update({f"adetailer.passes.1.{key}": value for key, value in second.items()})
    # The References sections take their units as one list (none is a value too).
    for name, stage in (("txt2img", config.txt2img), ("img2img", config.img2img)):
        values[f"{name}.references"] = [r.model_dump(mode="json") for r in stage.references]
    return values


def no_base_model(_checkpoint: str) -> str:
    """No catalog (yet): every checkpoint's base model is unknown."""
    return ""


def build_config(base: cfg.PipelineConfig, card_passes: list[dict[str, object]],
                 values: Mapping[str, FieldValue],
                 base_model_of: Callable[[str], str] = no_base_model) -> cfg.PipelineConfig:
    """A validated PipelineConfig from card values over *base*, with the detector passes the
    cards were loaded with, and the family the catalog knows (*base_model_of*: checkpoint ->
    its base-model label); raises ConfigInvalid in plain words."""
    data = base.model_dump(mode="json")
    # The passes as the cards were loaded, the second one always in its place (on or off),
    # so a pass after it keeps its place and nothing depends on the last Run's config.
    passes = data["adetailer"]["passes"] = [dict(p) for p in card_passes]
    for path, value in values.items():
        cfg.set_path(data, path, value)
    if len(passes) == 2 and not passes[1].get("enabled", True):
        # A second pass that is off and has no pass after it changes nothing: left out, so
        # a preset saved from the cards stays as small as one made before it existed.
        del passes[1]
    return with_catalog_family(cfg.validate_config(data), base_model_of)


def with_catalog_family(config: cfg.PipelineConfig, base_model_of: Callable[[str], str]
                        ) -> cfg.PipelineConfig:
    """*config* with the family "from the model" made the one the catalog read from the
    checkpoint's header or sidecar (a Flux merge named 'myMerge_v3'), so the scheduler, the
    backends and the learning store all see the family the model really is; unchanged when
    the user chose a family or the catalog does not know the checkpoint."""
    from stablenew.backends.families import family_from_label

    t = config.txt2img
    if t.family.value != "auto" or not t.checkpoint:
        return config
    family = family_from_label(base_model_of(t.checkpoint))
    return config if family is None else config.with_changes({"txt2img.family": family.value})


def config_builder(base: cfg.PipelineConfig, card_passes: list[dict[str, object]],
                   values: Mapping[str, FieldValue] | None,
                   base_model_of: Callable[[str], str] = no_base_model
                   ) -> Callable[[], cfg.PipelineConfig]:
    """`build_config` of card values read earlier, to run later on any thread; *base* when the
    values do not make a valid config (or there are none)."""
    def build() -> cfg.PipelineConfig:
        if values is not None:
            try:
                return build_config(base, card_passes, values, base_model_of)
            except (cfg.ConfigInvalid, ValueError):
                pass
        return base

    return build


def passes_on_card(config: cfg.PipelineConfig) -> list[dict[str, object]]:
    """The config's detector passes with a second one in place (defaults when it has none)."""
    passes = [p.model_dump(mode="json") for p in config.adetailer.passes]
    if len(passes) < 2:
        passes.insert(1, cfg.ADetailerPassSettings(**_SECOND_PASS_DEFAULTS).model_dump(mode="json"))
    return passes
