"""What "the server's current model" means for a job spread over several nodes.

A config that names no checkpoint runs on whatever a node has loaded, so a batch spread over
an SDXL node and an SD1.5 node would silently mix models. The model is therefore fixed when
the job is added: the preferred node's current one (the tier ordinary work prefers, first in the nodes
file; a ComfyUI node, which has nothing loaded, the checkpoint it would load). The job then
names it, so only nodes that have it are eligible and each one loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from stablenew.backends.errors import BackendError
from stablenew.backends.types import BackendKind, Capabilities
from stablenew.cluster.nodes import NodeConfig
from stablenew.cluster.tiers import overflow_distance
from stablenew.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """The model a job's "server's current" stands for, and where it was read ("" = none)."""

    checkpoint: str = ""
    node: str = ""
    #: Why no model could be chosen (every node down, or none has a checkpoint).
    problem: str = ""


def current_model(caps: Capabilities) -> str:
    """The checkpoint a node runs for a config that names none."""
    if caps.current_checkpoint:
        return caps.current_checkpoint
    if caps.kind is BackendKind.comfyui and caps.checkpoints:
        return caps.checkpoints[0]  # what its workflow builder loads when given no name
    return ""


def preferred_order(nodes: Sequence[NodeConfig]) -> list[NodeConfig]:
    """Enabled nodes, the preferred first: the tier ordinary work prefers (standard, then the
    next ones), then their order in the file."""
    enabled = [n for n in nodes if n.enabled]
    return sorted(enabled, key=lambda n: (overflow_distance(None, n.tier), enabled.index(n)))


async def choose_model(nodes: Sequence[NodeConfig], *, timeout: float = 10.0) -> ModelChoice:
    """Ask the preferred node that answers which model it runs (probing it)."""
    from stablenew.cluster.health import connect_node

    tried: list[str] = []
    for node in preferred_order(nodes):
        backend = None
        try:
            backend = await connect_node(node, timeout)
            caps = await backend.probe()
        except BackendError as exc:
            log.info("model choice: %s did not answer: %s", node.name, exc.detail or exc.message)
            tried.append(f"{node.name} did not answer")
            continue
        finally:
            if backend is not None:
                await backend.aclose()
        model = current_model(caps)
        if model:
            return ModelChoice(model, node.name)
        tried.append(f"{node.name} has no checkpoint")
    return ModelChoice(problem="; ".join(tried) or "no node is enabled")


def with_model(config: PipelineConfig, checkpoint: str) -> PipelineConfig:
    """*config* naming *checkpoint* when it names none (a named one is kept)."""
    if config.txt2img.checkpoint or not checkpoint:
        return config
    return config.with_changes({"txt2img.checkpoint": checkpoint})
