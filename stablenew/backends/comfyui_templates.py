"""Workflow templates: API-format subgraphs with named ports, and the graph they are put into.

A template part (`resources/workflows/parts/`, format in `resources/workflows/README.md`)
declares its input ports, output ports and a parameter map; `Workflow.insert` copies it into
a graph and fills parameters by name into the inputs the part declares, never into JSON text.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stablenew.backends.errors import RequestRejected
from stablenew.storage.resources import resource_path

FORMAT_VERSION = 1

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


_LORA_LOADERS = ("LoraLoader", "LoraLoaderModelOnly")


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

    def lora_files(self) -> tuple[str, ...]:
        """The LoRA files the graph loads, in node order (ours and a user template's alike)."""
        files = (node.get("inputs", {}).get("lora_name") for node in self.nodes.values()
                 if node.get("class_type") in _LORA_LOADERS)
        return tuple(dict.fromkeys(f for f in files if isinstance(f, str) and f))


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
