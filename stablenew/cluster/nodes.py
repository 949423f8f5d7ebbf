"""The node registry: the SD servers of a home lab, kept in `nodes.yaml` (owner-only file).

Credentials are stored only there: never logged (SecretStr hides them in reprs), never written
into images or exports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from stablenew.cluster.tiers import NodeTier, as_tier
from stablenew.storage.atomic import atomic_write_text
from stablenew.storage.documents import DocumentError, dump_yaml, load_yaml_model

NODES_VERSION = 1


class NodeKind(StrEnum):
    auto = "auto"
    a1111 = "a1111"
    forge = "forge"
    sdnext = "sdnext"
    comfyui = "comfyui"


class NodeConfig(BaseModel):
    """One SD server the user registered: where it is, how to log in, how much it may take."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(..., min_length=1, max_length=64, title="Name")
    url: str = Field(..., title="Address", description="e.g. http://192.168.1.20:7860")
    kind: NodeKind = Field(NodeKind.auto, title="Kind")
    username: str = Field("", title="User name")
    password: SecretStr = Field(SecretStr(""), title="Password")
    tags: list[str] = Field(default_factory=list, title="Tags")
    tier: NodeTier = Field(NodeTier.standard, title="Tier",
                           description="What this node is for: work asking for a tier (a funnel's "
                                       "drafts, its quality passes, its final upscale) goes to "
                                       "nodes of that tier first, and overflows to the next tier "
                                       "when they are busy or down.")
    max_concurrent: int = Field(1, ge=1, le=8, title="Jobs at once")
    enabled: bool = Field(True, title="Enabled")

    @field_validator("tier", mode="before")
    @classmethod
    def _tier(cls, value: object) -> NodeTier:
        # An older nodes file holds a number (1 preferred): read as the named tier it meant.
        return as_tier(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("The address must start with http:// or https://")
        return value

    @property
    def auth(self) -> tuple[str, str] | None:
        secret = self.password.get_secret_value()
        return (self.username, secret) if self.username or secret else None

    def public_dict(self) -> dict[str, Any]:
        """Everything but the credentials (for logs, exports and the dry-run table)."""
        return self.model_dump(mode="json", exclude={"username", "password"})


class NodesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = NODES_VERSION
    nodes: list[NodeConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> NodesFile:
        seen: set[str] = set()
        for node in self.nodes:
            key = node.name.casefold()
            if key in seen:
                raise ValueError(f"Two nodes are called '{node.name}'; give each node its own name.")
            seen.add(key)
        return self


class NodeRegistry:
    """Loads, edits and saves the nodes file; a bad file is reported, never overwritten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._nodes: dict[str, NodeConfig] = {}
        self.error: DocumentError | None = None

    @classmethod
    def load(cls, path: Path) -> NodeRegistry:
        registry = cls(path)
        if path.exists():
            try:
                data = load_yaml_model(path, NodesFile)
            except DocumentError as exc:
                registry.error = exc
            else:
                registry._nodes = {n.name: n for n in data.nodes}
        return registry

    def __iter__(self) -> Iterator[NodeConfig]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, name: str) -> NodeConfig:
        return self._nodes[name]

    def enabled(self) -> list[NodeConfig]:
        return [n for n in self._nodes.values() if n.enabled]

    def add(self, node: NodeConfig) -> None:
        if node.name in self._nodes:
            raise ValueError(f"There is already a node called '{node.name}'.")
        self._nodes[node.name] = node

    def replace(self, node: NodeConfig) -> None:
        self._nodes[node.name] = node

    def remove(self, name: str) -> None:
        self._nodes.pop(name, None)

    def reset(self, nodes: list[NodeConfig]) -> None:
        """Back to *nodes* (a change that could not be saved is undone)."""
        self._nodes = {n.name: n for n in nodes}

    def save(self) -> Path:
        return self.write(self.text())

    def text(self) -> str:
        """The file's text for the nodes as they are now (cheap: no disk)."""
        if self.error is not None:
            raise DocumentError(self.path, "The nodes file on disk is broken; fix or move it before "
                                "saving, so nothing in it is lost.")
        data = NodesFile(nodes=list(self._nodes.values()))
        dumped = data.model_dump(mode="json")
        for raw, node in zip(dumped["nodes"], data.nodes, strict=True):
            raw["password"] = node.password.get_secret_value()
        return dump_yaml(dumped)

    def write(self, text: str) -> Path:
        """Write *text* (from `text()`) atomically, with an fsync: call it off the Qt thread."""
        # Owner-only: the file holds passwords.
        return atomic_write_text(self.path, text, mode=0o600 if os.name == "posix" else None)
