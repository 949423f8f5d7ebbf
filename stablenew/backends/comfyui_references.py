"""Reference images in ComfyUI graphs: ControlNetLoader + ControlNetApplyAdvanced (with a
preprocessor when the node has one), and ComfyUI_IPAdapter_plus's nodes for IP-Adapter units.

Preprocessors and IP-Adapter nodes are custom nodes whose inputs vary between versions, so
their nodes are made from the node's own `/object_info`: we wire the links and set the values
we mean, and every other required input takes the default the node declares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stablenew.backends.comfyui_catalog import NodeCatalog, _combo_options, _input_spec
from stablenew.backends.comfyui_names import missing
from stablenew.backends.comfyui_templates import Link, Template, Workflow, part
from stablenew.backends.errors import MissingResource, RequestRejected
from stablenew.backends.families import ModelFamily
from stablenew.backends.references import KINDS, MAX_UNITS, choose_model
from stablenew.backends.types import ReferenceKind, ReferenceUnit

IP_ADAPTER_LOADER = "IPAdapterUnifiedLoader"
IP_ADAPTER_APPLY = "IPAdapterAdvanced"
_IP_HINT = "IP-Adapter references need the ComfyUI_IPAdapter_plus custom nodes."
_AUX_HINT = ("Preprocessing it on the node needs the comfyui_controlnet_aux custom nodes; install them, "
             "or give an image that is already a map.")


@dataclass
class Steered:
    """The model and conditionings after the references were applied."""

    model: Link
    positive: Link
    negative: Link


def dynamic_node(wf: Workflow, catalog: NodeCatalog, cls: str, links: Mapping[str, Link],
                 values: Mapping[str, Any], title: str = "") -> dict[str, Link]:
    """Insert one *cls* node: *links* and *values* as given, every other required input at
    the default the node's /object_info declares. Outputs are named out0, out1, …"""
    info = catalog.object_info.get(cls) or {}
    inputs: dict[str, Any] = {name: {"port": name} for name in links}
    inputs.update(values)
    for name in (info.get("input") or {}).get("required") or {}:
        if name in inputs:
            continue
        spec = _input_spec(info, name) or []
        options = _combo_options(spec)
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if options:
            inputs[name] = options[0]
        elif "default" in opts:
            inputs[name] = opts["default"]
        else:
            raise RequestRejected(f"The node type '{cls}' on node '{catalog.node_name}' needs an input "
                                  f"'{name}' StableNew cannot fill.", fields=(name,),
                                  detail=f"{cls}.{name}: {spec!r}", node=catalog.node_name)
    outputs = {f"out{i}": ["n", i] for i in range(len(info.get("output") or [None]))}
    node: dict[str, Any] = {"class_type": cls, "inputs": inputs}
    if title:
        node["_meta"] = {"title": title}
    template = Template.from_dict({"stablenew_workflow": 1, "nodes": {"n": node},
                                   "inputs": {name: "ANY" for name in links}, "outputs": outputs},
                                  name=cls)
    return wf.insert(template, links)


def _pick_option(options: Sequence[str], face: bool) -> str:
    wanted = [o for o in options if ("face" in o.lower()) == face]
    plus = [o for o in wanted if "plus" in o.lower()]
    return (plus or wanted or list(options))[0]


def apply_references(wf: Workflow, catalog: NodeCatalog, units: Sequence[ReferenceUnit],
                     start: Steered, vae: Link, family: ModelFamily,
                     upload: Callable[[Workflow, bytes], str]) -> Steered:
    """Add each unit's nodes; returns the steered model and conditionings."""
    if len(units) > MAX_UNITS:
        raise RequestRejected(f"At most {MAX_UNITS} reference images per job.", fields=("references",))
    node = catalog.node_name
    out = Steered(start.model, start.positive, start.negative)
    for i, unit in enumerate(units):
        kind = KINDS[unit.kind]
        if not 0.0 <= unit.start <= unit.end <= 1.0:
            raise RequestRejected(f"Reference '{kind.label}': start must be before end, both between 0 "
                                  "and 1.", fields=("start", "end"), node=node)
        image = wf.insert(part("load_image"), image=upload(wf, unit.image))["image"]
        title = f"Reference {i + 1} ({kind.label})"
        if kind.ip_adapter:
            for cls in (IP_ADAPTER_LOADER, IP_ADAPTER_APPLY):
                if not catalog.has(cls):
                    raise MissingResource(f"Node type '{cls}' is not installed on node '{node}'. {_IP_HINT}",
                                          what="node_class", name=cls, node=node)
            presets = catalog.combo(IP_ADAPTER_LOADER, "preset")
            loader = dynamic_node(wf, catalog, IP_ADAPTER_LOADER, {"model": out.model}, {
                "preset": _pick_option(presets, unit.kind is ReferenceKind.ip_face)} if presets else {})
            out.model = dynamic_node(wf, catalog, IP_ADAPTER_APPLY, {
                "model": loader["out0"], "ipadapter": loader["out1"], "image": image,
            }, {"weight": unit.strength, "start_at": unit.start, "end_at": unit.end}, title)["out0"]
            continue
        installed = catalog.combo("ControlNetLoader", "control_net_name")
        model = choose_model(unit, installed, family)
        if model is None:
            raise missing("controlnet", unit.model or f"{kind.label} model for this checkpoint", installed,
                          node, hint="Put it in ComfyUI's models/controlnet folder.")
        if unit.preprocess:
            pre = next((c for c in kind.comfy_preprocessors if catalog.has(c)), None)
            if pre is None:
                raise MissingResource(f"The {kind.label} reference cannot be made into a map on node "
                                      f"'{node}'. {_AUX_HINT}", what="node_class",
                                      name=kind.comfy_preprocessors[0], node=node)
            image = dynamic_node(wf, catalog, pre, {"image": image}, {}, f"{kind.label} map")["out0"]
        applied = wf.insert(part("controlnet"), {"positive": out.positive, "negative": out.negative,
                                                 "image": image, "vae": vae},
                            controlnet=model, strength=unit.strength, start=unit.start, end=unit.end)
        wf.nodes[applied["positive"].node]["_meta"] = {"title": title}
        out.positive, out.negative = applied["positive"], applied["negative"]
    return out
