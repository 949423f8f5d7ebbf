"""Is every LoRA a prompt names on the WebUI? Asked before the job is sent.

A1111 and Forge make the image without a LoRA they cannot find: the console says "Lora not
found" (or "Couldn't find network"), the API answer says nothing, and a night's batch comes out
without the style it was meant to have. ComfyUI refuses such a graph, and the cluster does not
send the job to a node that lacks the file; this is the same answer for an A1111 server.

The server's list is the one its probe read. A name missing from it may be a file added since,
which the WebUI would find by rescanning its folder; so it is asked to rescan
(`/sdapi/v1/refresh-loras`, which does not wait for a running job) and its list is read again
before the job is refused. A server that lists no LoRAs, or whose list cannot be read, decides
for itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from stablenew.backends.a1111_truth import Expectation
from stablenew.backends.comfyui_names import missing
from stablenew.backends.errors import BackendError
from stablenew.backends.lora_tags import lora_names

log = logging.getLogger(__name__)

REFRESH = "/sdapi/v1/refresh-loras"


class ServerLoras:
    """The LoRA names (file stems and aliases) one WebUI has, and the check of a job's prompts."""

    def __init__(self, node: str, read: Callable[[], Awaitable[tuple[str, ...]]],
                 rescan: Callable[[], Awaitable[object]]) -> None:
        self.node = node
        self._read = read
        self._rescan = rescan
        self._names: tuple[str, ...] | None = None  # None: not read yet

    def known(self, names: tuple[str, ...]) -> None:
        """The list a probe read (so the first job need not read it again)."""
        if names:
            self._names = names

    async def check_job(self, expect: Expectation) -> None:
        """`check` over a job's prompts: the main pair and each ADetailer pass's own."""
        passes = [text for p in expect.adetailer for text in (p.prompt, p.negative_prompt)]
        await self.check([expect.sampling.prompt, expect.sampling.negative_prompt, *passes])

    async def check(self, texts: Iterable[str]) -> None:
        """Raises MissingResource for the first LoRA the *texts* name that the server lacks,
        after one rescan; returns when all are there or the server cannot say."""
        wanted = list(dict.fromkeys(n for text in texts if text for n in lora_names(text)))
        if not wanted:
            return
        try:
            if self._names is None:
                self._names = await self._read()
            lacking = self._lacking(wanted)
            if lacking and self._names:
                await self._rescan()
                self._names = await self._read()
                lacking = self._lacking(wanted)
        except BackendError as exc:  # the server decides, as it would without this check
            log.info("%s: LoRA list not read (%s); the prompt's LoRAs are not checked", self.node, exc)
            return
        if lacking and self._names:
            raise missing("lora", lacking[0], self._names, self.node,
                          hint="Check the name in the prompt (the file name without .safetensors), "
                               "or copy the file into the server's models/Lora folder.")

    def _lacking(self, wanted: list[str]) -> list[str]:
        have = {n.strip().casefold() for n in self._names or ()}
        return [n for n in wanted if n.strip().casefold() not in have]
