"""Are the model and the LoRAs a job names on the WebUI? Asked before the job is sent.

A1111 and Forge make the image anyway when they are not: a LoRA they cannot find is left out
("Lora not found" on the console only), and a model named in `override_settings` that is not
an exact alias of one of theirs is dropped for whatever model is loaded. The API answer says
nothing of either, and a night's batch comes out without the style or on the wrong model.
ComfyUI refuses such a graph, and the cluster does not send the job to a node whose lists lack
the file; this is the same answer for an A1111 server.

The model is sent as the server spells it ("SD15/dreamshaper_8.safetensors" for a preset's
"dreamshaper_8.safetensors", which A1111 would not take), found as `checkpoint_key` compares.

The lists are the ones the probe read. A name missing from them may be a file added since, so
the server is asked to rescan that folder and its list is read again before the job is
refused. A server that lists none, or whose list cannot be read, decides for itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from stablenew.backends.a1111_fields import OPTION_CHECKPOINT
from stablenew.backends.a1111_truth import Expectation, checkpoint_key
from stablenew.backends.comfyui_names import missing
from stablenew.backends.errors import BackendError
from stablenew.backends.lora_tags import LORA_TAG, lora_names

log = logging.getLogger(__name__)

RESCAN_LORAS = "/sdapi/v1/refresh-loras"  # does not wait for a running job
RESCAN_CHECKPOINTS = "/sdapi/v1/refresh-checkpoints"  # waits for the running job, as ours would
#: A model named by its hash (8 or 10 hex digits, or the full sha256): the server knows, the
#: titles we read may not carry it yet.
_HASH = re.compile(r"[0-9a-fA-F]{8}|[0-9a-fA-F]{10}|[0-9a-fA-F]{64}")

HINTS = {
    "lora": "Check the name in the prompt (the file name without .safetensors), or copy the file "
            "into the server's models/Lora folder.",
    "checkpoint": "Pick one the server has in Text to image's Model, or copy the file into the "
                  "server's models/Stable-diffusion folder.",
}


class ServerList:
    """The names of one kind (LoRA or checkpoint) one WebUI has, read again after a rescan."""

    def __init__(self, what: str, node: str, read: Callable[[], Awaitable[tuple[str, ...]]],
                 rescan: Callable[[], Awaitable[object]],
                 keys: Callable[[str], list[str]]) -> None:
        self.what = what
        self.node = node
        self._read = read
        self._rescan = rescan
        #: What a name is compared by: the first key of an asked name against every key of
        #: the server's names.
        self._keys = keys
        self._names: tuple[str, ...] | None = None  # None: not read yet
        self._found: dict[str, str] = {}

    def known(self, names: tuple[str, ...]) -> None:
        """The list a probe read (so the first job need not read it again)."""
        if names:
            self._set(names)

    async def find(self, wanted: list[str]) -> dict[str, str]:
        """Each wanted name as the server spells it; a name it lacks (after one rescan) raises
        MissingResource. Empty when the server cannot say: then it decides."""
        try:
            if self._names is None:
                self._set(await self._read())
            if self._lacking(wanted) and self._names:
                await self._rescan()
                self._set(await self._read())
        except BackendError as exc:
            log.info("%s: %s list not read (%s); the job's names are not checked", self.node,
                     self.what, exc)
            return {}
        if not self._names:
            return {}
        lacking = self._lacking(wanted)
        if lacking:
            raise missing(self.what, lacking[0], self._names, self.node, hint=HINTS[self.what])
        return {name: self._found[self._keys(name)[0]] for name in wanted}

    def _set(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._found = {}
        for name in names:
            for key in self._keys(name):
                self._found.setdefault(key, name)

    def _lacking(self, wanted: list[str]) -> list[str]:
        return [n for n in wanted if self._keys(n)[0] not in self._found]


def _lora_keys(name: str) -> list[str]:
    return [name.strip().casefold()]


def _checkpoint_keys(name: str) -> list[str]:
    """The key a model is asked by, then the others the server's file also answers to (A1111
    takes the bare file stem of a model in a subfolder)."""
    key = checkpoint_key(name)
    stem = checkpoint_key(name.replace("\\", "/").rsplit("/", 1)[-1])
    return [key, stem] if stem != key else [key]


class ServerNames:
    """The LoRA and checkpoint lists of one WebUI, and the check of each job against them."""

    def __init__(self, node: str, *, loras: Callable[[], Awaitable[tuple[str, ...]]],
                 checkpoints: Callable[[], Awaitable[tuple[str, ...]]],
                 post: Callable[[str], Awaitable[object]]) -> None:
        self.loras = ServerList("lora", node, loras, lambda: post(RESCAN_LORAS), _lora_keys)
        self.checkpoints = ServerList("checkpoint", node, checkpoints,
                                      lambda: post(RESCAN_CHECKPOINTS), _checkpoint_keys)

    async def check(self, expect: Expectation, payload: dict[str, Any]) -> None:
        """Raises MissingResource for a LoRA or model the job names and the server lacks; a
        model found is put in *payload* as the server spells it."""
        s = expect.sampling
        passes = [text for p in expect.adetailer for text in (p.prompt, p.negative_prompt)]
        texts = [s.prompt, s.negative_prompt, *passes]
        wanted = list(dict.fromkeys(n for text in texts if text for n in lora_names(text)))
        if wanted:
            found = await self.loras.find(wanted)
            renames = {name: server for name, server in found.items() if server != name}
            if renames:  # A1111 looks a LoRA up by its exact name: "Neon" is not "neon"
                _respell(payload, renames)
        overrides = payload.get("override_settings")
        if not isinstance(overrides, dict):
            return
        asked = overrides.get(OPTION_CHECKPOINT)
        if isinstance(asked, str) and asked and not _HASH.fullmatch(asked.strip()):
            spelled = (await self.checkpoints.find([asked])).get(asked)
            if spelled:
                overrides[OPTION_CHECKPOINT] = spelled


def _respell(value: Any, renames: dict[str, str]) -> None:
    """Every prompt in *value* (a payload: `prompt`, `hr_negative_prompt`, ADetailer's
    `ad_prompt`…) with its LoRA tags naming the server's spelling of each renamed LoRA."""
    def tag(match: re.Match[str]) -> str:
        new = renames.get(match.group(1).strip())
        if new is None:
            return match.group(0)
        text, start = match.group(0), match.start(0)
        return text[: match.start(1) - start] + new + text[match.end(1) - start:]

    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(items):
        if isinstance(item, str) and isinstance(key, str) and key.endswith("prompt"):
            value[key] = LORA_TAG.sub(tag, item)
        elif isinstance(item, (dict, list)):
            _respell(item, renames)
