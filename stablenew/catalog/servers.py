"""The LoRAs a server lists: A1111/Forge `/sdapi/v1/loras`, ComfyUI's LoraLoader choices.

A1111's list carries each file's whole safetensors metadata and can be tens of megabytes: it
is streamed with a cap (`HttpClient`) and parsed off the event loop. ComfyUI lists names only;
`/view_metadata/loras?filename=` gives one file's metadata on demand. Either way the result
marks which node has which LoRA, and a LoRA known only from a server still joins the catalog.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from stablenew.backends.errors import ProtocolError, ServerError
from stablenew.backends.families import family_from_name
from stablenew.backends.http import HttpClient
from stablenew.catalog.derive import base_from_label, build_entry
from stablenew.catalog.entry import ModelEntry, ModelKind
from stablenew.catalog.index import Catalog, file_stem
from stablenew.catalog.safetensors import SafetensorsHeader
from stablenew.catalog.sidecars import Sidecars

#: `/sdapi/v1/loras` with big tag lists runs to tens of MB; beyond this it is not a LoRA list.
LORA_LIST_MAX_BODY = 256 * 1024 * 1024
LORA_LIST_TIMEOUT = 120.0


@dataclass(frozen=True)
class ServerLora:
    """One LoRA as a server lists it; `metadata` holds the header's strings (may be empty)."""

    name: str
    alias: str = ""
    path: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def _as_text(value: Any) -> str:
    # A1111 hands back values that start with "{" parsed; the catalog keeps header strings.
    return value if isinstance(value, str) else json.dumps(value)


def parse_a1111_loras(data: Any, where: str = "/sdapi/v1/loras") -> list[ServerLora]:
    """Items `{name, alias, path, metadata}`; anything else is a ProtocolError in words."""
    if not isinstance(data, list):
        raise ProtocolError("The server's LoRA list has an unexpected shape.",
                            detail=f"{where} returned {type(data).__name__}")
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            continue
        meta = item.get("metadata")
        metadata = {str(k): _as_text(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
        out.append(ServerLora(item["name"], str(item.get("alias") or item["name"]),
                              str(item.get("path") or ""), metadata))
    return out


async def a1111_loras(http: HttpClient, *, max_body: int = LORA_LIST_MAX_BODY) -> list[ServerLora]:
    """GET `/sdapi/v1/loras`; empty when the Lora extension is switched off (404)."""
    reply = await http.request("GET", "/sdapi/v1/loras", timeout=LORA_LIST_TIMEOUT, max_body=max_body)
    if reply.status == 404:
        return []
    _check(reply.status, reply.url, reply.body, http.node)
    data = await asyncio.to_thread(reply.json)
    return parse_a1111_loras(data, reply.url)


async def a1111_refresh_loras(http: HttpClient) -> None:
    """POST `/sdapi/v1/refresh-loras`: the server reads its LoRA folder again."""
    reply = await http.request("POST", "/sdapi/v1/refresh-loras", timeout=LORA_LIST_TIMEOUT)
    _check(reply.status, reply.url, reply.body, http.node)


def lora_loader_choices(node_info: Any) -> list[str]:
    """The `lora_name` choices of a LoraLoader `/object_info` entry (old or COMBO form)."""
    try:
        spec = node_info["input"]["required"]["lora_name"]
    except (KeyError, TypeError):
        return []
    if isinstance(spec, list) and spec:
        if isinstance(spec[0], list):
            return [str(c) for c in spec[0]]
        if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            return [str(c) for c in spec[1].get("options") or []]
    return []


async def comfyui_loras(http: HttpClient) -> list[ServerLora]:
    """ComfyUI's LoRA files, from LoraLoader's choices (`/object_info/LoraLoader`)."""
    reply = await http.request("GET", "/object_info/LoraLoader")
    _check(reply.status, reply.url, reply.body, http.node)
    data = reply.json()
    info = data.get("LoraLoader") if isinstance(data, dict) else None
    return [ServerLora(file_stem(c), file_stem(c), c) for c in lora_loader_choices(info)]


async def comfyui_metadata(http: HttpClient, filename: str, folder: str = "loras") -> dict[str, str] | None:
    """One file's safetensors metadata (`/view_metadata/<folder>?filename=`); None when it has none."""
    reply = await http.request("GET", f"/view_metadata/{folder}", params={"filename": filename})
    if reply.status == 404:
        return None
    _check(reply.status, reply.url, reply.body, http.node)
    data = reply.json()
    return {str(k): _as_text(v) for k, v in data.items()} if isinstance(data, dict) else None


def _check(status: int, url: str, body: bytes, node: str) -> None:
    if status != 200:
        raise ServerError(f"The server at {node} could not list its LoRAs (HTTP {status}).",
                          detail=f"{url}: {status} {body[:300]!r}", node=node)


def server_entry(node: str, item: ServerLora) -> ModelEntry:
    """A catalog entry for a LoRA known only from *node*'s list, derived from its metadata."""
    header = SafetensorsHeader(0, dict(item.metadata), (), 0)
    parts = PureWindowsPath(item.path).parts if "\\" in item.path else tuple(item.path.split("/"))
    folder = "/".join(parts[-2:-1]) if len(parts) > 1 and parts[-2].lower() not in ("lora", "loras") else ""
    entry = build_entry(ModelKind.lora, _server_path(item), folder, header, None, Sidecars(), None, [], 0, 0)
    entry.name = item.name
    entry.alias = item.alias or entry.alias
    entry.origin = node
    return entry


def _server_path(item: ServerLora) -> PurePosixPath:
    return PurePosixPath((item.path or item.name).replace("\\", "/"))


def merge_server_loras(catalog: Catalog, node: str, items: list[ServerLora]) -> list[ModelEntry]:
    """Mark *node*'s LoRAs available and add those the local folders lack; returns the added."""
    catalog.mark_available(node, [i.name for i in items] + [i.path for i in items if i.path])
    added = []
    for item in items:
        if catalog.find(item.name, ModelKind.lora) is None:
            entry = server_entry(node, item)
            catalog.extend([entry])
            added.append(entry)
    return added


def server_checkpoint_entry(node: str, title: str) -> ModelEntry:
    """A checkpoint known only from *node*'s list (A1111's title, ComfyUI's file name): its
    family from the name, as the card guesses it, until a local file says better."""
    name = title.rsplit(" [", 1)[0].strip()  # A1111 titles end in " [hash]" once hashed
    path = _server_path(ServerLora(name, path=name))
    folder = "/".join(path.parts[:-1])
    entry = build_entry(ModelKind.checkpoint, path, folder, SafetensorsHeader(0, {}, (), 0), None,
                        Sidecars(), None, [], 0, 0)
    entry.base_model = base_from_label(family_from_name(name).value)
    entry.base_model_from = "its name"
    entry.origin = node
    return entry


def merge_server_checkpoints(catalog: Catalog, node: str, titles: list[str] | tuple[str, ...]
                             ) -> list[ModelEntry]:
    """Add the checkpoints *node* lists that the local folders lack; returns the added."""
    added = []
    for title in titles:
        if title and catalog.find(title, ModelKind.checkpoint) is None:
            entry = server_checkpoint_entry(node, title)
            catalog.extend([entry])
            added.append(entry)
    return added
