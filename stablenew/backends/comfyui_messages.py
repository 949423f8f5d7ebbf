"""ComfyUI WebSocket messages and HTTP error bodies turned into our progress and typed errors.

Pure functions and small state holders, tested against recorded real payloads.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from stablenew.backends.errors import (
    AuthFailed,
    BackendError,
    JobInterrupted,
    MissingResource,
    ProtocolError,
    RequestRejected,
    ServerError,
)
from stablenew.backends.types import Progress

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4


@dataclass(frozen=True)
class PreviewFrame:
    """A live preview from a binary frame; prompt_id/node only in the metadata layout."""

    image: bytes
    mime: str
    prompt_id: str | None = None
    node: str | None = None


def parse_binary_frame(frame: bytes) -> PreviewFrame | None:
    """Decode a binary WS frame (both preview layouts); None for frames that carry no preview."""
    if len(frame) < 8:
        return None
    (event,) = struct.unpack(">I", frame[:4])
    if event == PREVIEW_IMAGE:
        (kind,) = struct.unpack(">I", frame[4:8])
        return PreviewFrame(frame[8:], "image/png" if kind == 2 else "image/jpeg")
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack(">I", frame[4:8])
        if len(frame) < 8 + length:
            return None
        try:
            meta = json.loads(frame[8:8 + length])
        except ValueError:
            return None
        return PreviewFrame(frame[8 + length:], str(meta.get("image_type") or "image/jpeg"),
                            meta.get("prompt_id"), meta.get("node_id"))
    return None


#: The `_meta.title` the workflow builder gives a hires fix's sampler, so progress can name its pass.
HIRES_TITLE = "Hires fix"


def _node_phase(node: Mapping) -> str:
    meta = node.get("_meta")
    return "hires" if isinstance(meta, Mapping) and meta.get("title") == HIRES_TITLE else ""


def _node_steps(node: Mapping) -> int:
    inputs = node.get("inputs", {})
    steps = inputs.get("steps")
    if not isinstance(steps, int | float) or isinstance(steps, bool):
        return 0
    end = inputs.get("end_at_step")
    if isinstance(end, int | float) and not isinstance(end, bool):
        return max(0, min(int(steps), int(end)) - int(inputs.get("start_at_step", 0) or 0))
    return int(steps)


class ProgressTracker:
    """Maps one prompt's node events to a 0..1 fraction; sampler steps carry the weight.

    Cached nodes count as done (`execution_cached`); `executing` is not counted, because fully
    cached runs send none. Steps are counted per pass, as A1111 does: over the image's own
    sampling nodes (base and refiner), then over the hires fix's on their own.
    """

    #: Weight of a node without steps, relative to one sampler step.
    PLAIN_WEIGHT = 0.5

    def __init__(self, graph: Mapping[str, Mapping]) -> None:
        self._steps = {nid: _node_steps(n) for nid, n in graph.items()}
        self._phase = {nid: _node_phase(n) for nid, n in graph.items()}
        self._weight = {nid: (s if s else self.PLAIN_WEIGHT) for nid, s in self._steps.items()}
        self._total = sum(self._weight.values()) or 1.0
        self.total_steps = sum(self._steps.values())
        self.phase = ""
        self.steps: int | None = self._phase_steps("") or None
        self._done: set[str] = set()
        self._current: str | None = None
        self._value = 0.0
        self._started = time.monotonic()
        self.fraction = 0.0
        self.step: int | None = None

    def cached(self, nodes: list[str]) -> None:
        self._done.update(n for n in nodes if n in self._weight)
        self._update()

    def executing(self, node: str | None) -> None:
        # Ids outside our graph (expanded subgraph nodes such as "5:3") carry no weight of their own.
        if self._current in self._weight and self._current != node:
            self._done.add(self._current)
        self._current = node
        self._value = 0.0
        self._update()

    def progress(self, node: str | None, value: float, maximum: float) -> None:
        if node is not None and node != self._current:
            self.executing(node)
        self._value = max(0.0, min(1.0, value / maximum)) if maximum else 0.0
        if self._steps.get(self._current or ""):
            phase = self._phase.get(self._current or "", "")
            total = self._phase_steps(phase)
            done_steps = sum(self._steps[n] for n in self._done if self._phase.get(n) == phase)
            current = int(round(self._value * self._steps[self._current or ""]))
            self.phase, self.steps = phase, total
            self.step = min(total, done_steps + current)
        self._update()

    def _phase_steps(self, phase: str) -> int:
        return sum(s for n, s in self._steps.items() if self._phase.get(n, "") == phase)

    def _update(self) -> None:
        done = sum(self._weight[n] for n in self._done if n != self._current)
        if self._current in self._weight:
            done += self._weight[self._current] * self._value
        self.fraction = max(self.fraction, min(1.0, done / self._total))

    def snapshot(self, preview: bytes | None = None) -> Progress:
        eta = None
        elapsed = time.monotonic() - self._started
        if self.fraction >= 0.05:
            eta = elapsed * (1.0 - self.fraction) / self.fraction
        more = self.phase == "" and bool(self._phase_steps("hires"))
        return Progress(fraction=self.fraction, step=self.step, steps=self.steps or None,
                        eta_seconds=eta, preview=preview, phase=self.phase, more_passes=more)


# ---------------------------------------------------------------------------- errors
def _model_words(class_type: str, input_name: str) -> tuple[str, str] | None:
    table = {
        ("CheckpointLoaderSimple", "ckpt_name"): ("checkpoint", "Checkpoint"),
        ("LoraLoader", "lora_name"): ("lora", "LoRA"),
        ("UpscaleModelLoader", "model_name"): ("upscaler", "Upscaler"),
        ("UltralyticsDetectorProvider", "model_name"): ("adetailer_model", "Detector model"),
    }
    if input_name == "sampler_name":
        return ("sampler", "Sampler")
    if input_name == "scheduler":
        return ("scheduler", "Scheduler")
    return table.get((class_type, input_name))


def node_errors_to_error(node_errors: Mapping, node: str, top: Mapping | None = None) -> BackendError:
    """HTTP 400 (or 200 with node_errors) from POST /prompt as one plain-language error."""
    for nid, entry in node_errors.items():
        cls = entry.get("class_type", "?")
        for err in entry.get("errors", []):
            extra = err.get("extra_info") or {}
            iname = extra.get("input_name") or ""
            etype = err.get("type", "")
            if etype == "value_not_in_list":
                words = _model_words(cls, iname)
                value = extra.get("received_value")
                spec = extra.get("input_config") or []
                options: list = []
                if spec and isinstance(spec[0], list):
                    options = spec[0]
                elif spec and spec[0] == "COMBO" and len(spec) > 1:
                    options = list(spec[1].get("options") or [])
                if words:
                    shown = ", ".join(map(str, options[:8])) or "none"
                    more = f" and {len(options) - 8} more" if len(options) > 8 else ""
                    return MissingResource(
                        f"{words[1]} '{value}' is not installed on node '{node}' — installed: {shown}{more}.",
                        what=words[0], name=str(value), installed=tuple(map(str, options)), node=node,
                        detail=json.dumps(node_errors)[:4000])
            message = err.get("message", "invalid")
            details = err.get("details", "")
            return RequestRejected(
                f"Node '{node}' refused the workflow: {cls} (node {nid}) — {message}"
                + (f" ({details})" if details else "") + ".",
                fields=(iname,) if iname else (), node=node, detail=json.dumps(node_errors)[:4000])
    if top:
        return top_error_to_error(top, node)
    return RequestRejected(f"Node '{node}' refused the workflow.", node=node,
                           detail=json.dumps(node_errors)[:4000])


def top_error_to_error(error: Mapping, node: str) -> BackendError:
    etype = error.get("type", "")
    message = error.get("message", "")
    if etype == "missing_node_type":
        extra = error.get("extra_info") or {}
        cls = extra.get("class_type") or "?"
        return MissingResource(
            f"Node type '{cls}' is not installed on node '{node}'. Install the custom node that "
            "provides it, or use another workflow.", what="node_class", name=str(cls), node=node,
            detail=json.dumps(error)[:4000])
    return RequestRejected(f"Node '{node}' refused the workflow: {message or etype}.", node=node,
                           detail=json.dumps(error)[:4000])


def post_prompt_error(status: int, body: bytes, node: str) -> BackendError:
    """Any non-200 answer to POST /prompt as a typed error."""
    if status == 403:
        return AuthFailed(
            f"Node '{node}' refused the request (403). ComfyUI rejects requests whose Origin does not "
            "match its address, and a proxy in front of it may want a login. Check the address and "
            "credentials, or start ComfyUI with --enable-cors-header.", node=node,
            detail=body[:2000].decode("utf-8", "replace"))
    if status == 401:
        return AuthFailed(f"Node '{node}' wants a user name and password (401); check the node's "
                          "credentials.", node=node)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and (data.get("node_errors") or data.get("error")):
        if data.get("node_errors"):
            return node_errors_to_error(data["node_errors"], node, data.get("error"))
        err = data["error"]
        if isinstance(err, dict):
            return top_error_to_error(err, node)
        return RequestRejected(f"Node '{node}' refused the workflow: {err}.", node=node)
    text = body[:2000].decode("utf-8", "replace").strip()
    if status >= 500:
        return ServerError(f"Node '{node}' failed while accepting the workflow (HTTP {status}). "
                           "Its console log says why; try again or restart ComfyUI.",
                           node=node, detail=text)
    return ProtocolError(f"Node '{node}' gave an unexpected answer (HTTP {status}).", node=node,
                         detail=text)


_OOM_TYPES = ("OutOfMemoryError", "torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError")


def execution_error_to_error(data: Mapping, node: str) -> BackendError:
    """`execution_error` as a ServerError; tensor reprs in current_inputs are never shown."""
    exc_type = str(data.get("exception_type", "Error"))
    exc_msg = str(data.get("exception_message", "")).strip()
    short = exc_msg.splitlines()[0][:300] if exc_msg else exc_type
    node_type = data.get("node_type", "?")
    node_id = data.get("node_id", "?")
    traceback = "".join(data.get("traceback") or [])[-4000:]
    detail = f"{exc_type} in node {node_id} ({node_type}): {exc_msg[:2000]}\n{traceback}"
    if exc_type.endswith(_OOM_TYPES) or "out of memory" in exc_msg.lower():
        return ServerError(f"Node '{node}' ran out of GPU memory in {node_type}. Try a smaller size, "
                           "fewer images at once, or a lighter model.", node=node, detail=detail)
    return ServerError(f"ComfyUI on node '{node}' failed in step {node_type} (node {node_id}): {short}",
                       node=node, detail=detail)


def history_outcome(item: Mapping, node: str) -> BackendError | None:
    """None when the history entry is a success, else the error it records."""
    status = item.get("status") or {}
    if status.get("status_str") == "success" and status.get("completed", True):
        return None
    for kind, data in reversed(status.get("messages") or []):
        if kind == "execution_interrupted":
            return JobInterrupted(f"The job on node '{node}' was stopped before it finished.", node=node,
                                  detail=f"interrupted in node {data.get('node_id')} "
                                         f"({data.get('node_type')})")
        if kind == "execution_error":
            return execution_error_to_error(data, node)
    return ServerError(f"ComfyUI on node '{node}' did not finish the job.", node=node,
                       detail=json.dumps(status)[:2000])
