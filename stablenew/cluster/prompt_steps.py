"""The prompt steps before a variant's first stage, chained in one place: enhance, then LoRAs.

`RunMachinery` hands every runner it makes `chain_steps(enhance, loras, node)`, so Run,
batches, learning runs and `stablenew run` all get both steps in the same order: the local LLM
enhances the prompt first, then `LoraMatchStep` matches the (enhanced) words against the
catalog and inserts the selector's LoRAs with their first trigger word. The choice depends on
the prompt and seed only (`choose_loras`), so a variant count and its preview stay exact, and
it keeps to LoRAs that fit the checkpoint's base model and that the node running the variant
has. A catalog that is empty, still being read or unreadable costs a notice; the variant runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import RunTags

if TYPE_CHECKING:
    from stablenew.backends.types import Capabilities
    from stablenew.catalog.cache import CatalogCache
    from stablenew.catalog.entry import BaseModel
    from stablenew.catalog.index import Catalog
    from stablenew.catalog.match import Matcher
    from stablenew.pipeline.run_result import PromptStep
    from stablenew.storage.settings import AppSettings

log = logging.getLogger("stablenew.cluster.prompt_steps")

#: The model family a config names, as the catalog's base models say it.
_FAMILY_BASES = {"sd15": "SD1", "sdxl": "SDXL", "pony": "Pony", "illustrious": "Illustrious",
                 "flux": "Flux", "sd35": "SD3"}


@dataclass(frozen=True)
class LoraMatchOptions:
    """What the user chose for "Add matching LoRAs": how many, from which categories."""

    min_count: int = 1
    max_count: int = 2
    categories: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: AppSettings) -> LoraMatchOptions | None:
        """The options, or None when matching is switched off."""
        if not settings.lora_auto:
            return None
        high = max(1, settings.lora_auto_max)
        categories = tuple(c.strip() for c in settings.lora_auto_categories.split(",") if c.strip())
        return cls(min(settings.lora_auto_min, high), high, categories)


@dataclass(frozen=True)
class CatalogView:
    """One catalog and the matcher built over it (rebuilt together when the catalog changes)."""

    catalog: Catalog
    matcher: Matcher


#: Gives the catalog to match against for a node (its name, or None), or why there is none in
#: plain words ("it is still being read"); asked before each variant, so a catalog read
#: meanwhile is used at once.
CatalogSource = Callable[[str | None], Awaitable["CatalogView | str"]]
#: Asks a node's server what it has (`Backend.probe`): its LoRA list marks what is available.
NodeProbe = Callable[[], Awaitable["Capabilities"]]


class LoraMatchStep:
    """Inserts LoRAs that fit each variant's prompt; never stops a run."""

    def __init__(self, source: CatalogSource,
                 options: LoraMatchOptions | Callable[[], LoraMatchOptions | None] | None) -> None:
        """*options* may be a callable (the window's settings may change between runs)."""
        self._source = source
        self._options = options
        self._said: set[str] = set()

    def options(self) -> LoraMatchOptions | None:
        options = self._options
        return options() if callable(options) else options

    async def __call__(self, config: PipelineConfig, tags: RunTags, cancel: CancelToken, *,
                       node: str | None = None) -> tuple[PipelineConfig, RunTags, str]:
        """(the config to send, its tags, a notice or ""); the notice is said once per step."""
        from stablenew.backends.lora_tags import lora_names
        from stablenew.catalog.select import MAX_LORAS, SelectorSettings, choose_loras

        options = self.options()
        if options is None or cancel.cancelled:
            return config, tags, ""
        view = await self._source(node)
        if isinstance(view, str):
            return config, tags, self._once(f"No LoRAs were added: {view}")
        if not view.catalog.loras:
            return config, tags, self._once(
                "No LoRAs were added: the LoRA catalog is empty. Add your LoRA folder in the "
                "Models tab (or `stablenew lora scan DIR`).")
        prompt = config.txt2img.prompt
        high = min(max(options.max_count, 1), MAX_LORAS)
        settings = SelectorSettings(min_count=min(max(options.min_count, 1), high), max_count=high,
                                    categories=options.categories)
        checkpoint = checkpoint_base(config, view.catalog)
        selection = choose_loras(prompt, config.txt2img.seed, view.matcher, view.catalog,
                                 settings=settings, checkpoint=checkpoint, node=node,
                                 exclude=lora_names(prompt))
        if not selection.loras:
            return config, tags, self._once(
                "No LoRA in the catalog fits this prompt and model, so none was added.")
        sent = selection.apply(prompt)
        log.info("lora step: %s for %r on %s (%s)", [c.entry.name for c in selection.loras],
                 prompt[:80], node or "?", "; ".join(c.reason for c in selection.loras))
        txt2img = config.txt2img.model_copy(update={"prompt": sent})
        chosen = tuple(f"{c.entry.name}:{c.weight:g}" for c in selection.loras)
        tags = dataclasses.replace(tags, original_prompt=tags.original_prompt or prompt,
                                   auto_loras=chosen)
        return config.model_copy(update={"txt2img": txt2img}), tags, ""

    def _once(self, notice: str) -> str:
        # A batch of 200 variants with an empty catalog says so once, not 200 times.
        if notice in self._said:
            return ""
        self._said.add(notice)
        log.warning("lora step: %s", notice)
        return notice


def checkpoint_base(config: PipelineConfig, catalog: Catalog) -> BaseModel:
    """The base model LoRAs must fit: the catalog's word on the checkpoint, else the family
    the config names; unknown (every LoRA fits) when neither says."""
    from stablenew.catalog.entry import BaseModel

    name = config.txt2img.checkpoint
    base = catalog.checkpoint_base(name) if name else BaseModel.unknown
    if base is BaseModel.unknown:
        family = _FAMILY_BASES.get(config.txt2img.family.value)
        if family is not None:
            base = BaseModel(family)
    return base


class CachedCatalog:
    """A `CatalogSource` for commands without a window: the catalog of every folder scanned
    before (`catalog.db`; changed files are read again), read once, off the event loop; a
    node's LoRA list is asked of its server (`know_node`) before its first variant."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._view: CatalogView | str | None = None
        self._cache: CatalogCache | None = None
        self._lock = asyncio.Lock()
        self._probes: dict[str, NodeProbe] = {}

    def know_node(self, node: str, probe: NodeProbe) -> None:
        """How to ask *node*'s server for its LoRAs (asked once, when it first needs them)."""
        self._probes[node] = probe

    async def __call__(self, node: str | None = None) -> CatalogView | str:
        async with self._lock:
            if self._view is None:
                self._view = await asyncio.to_thread(self._read)
            probe = self._probes.pop(node, None) if node is not None else None
            if probe is not None and not isinstance(self._view, str):
                await self._mark(self._view.catalog, node or "", probe)
            return self._view

    @staticmethod
    async def _mark(catalog: Catalog, node: str, probe: NodeProbe) -> None:
        from stablenew.backends.errors import BackendError

        try:
            loras = (await probe()).loras
        except BackendError as exc:  # not known then: the node's LoRAs are not filtered
            log.warning("lora step: %s did not list its LoRAs: %s (%s)", node, exc.message, exc.detail)
            return
        if loras:  # a server that lists none may not be able to tell (as the scheduler reads it)
            catalog.mark_available(node, list(loras))

    def _read(self) -> CatalogView | str:
        from stablenew.catalog.cache import CatalogCache, CatalogCacheError
        from stablenew.catalog.entry import ModelKind
        from stablenew.catalog.index import scan
        from stablenew.catalog.match import Matcher

        if not self.path.exists():
            return ("no LoRA folder has been read yet. Add yours in the Models tab or with "
                    "`stablenew lora scan DIR`.")
        try:
            self._cache = CatalogCache(self.path)
            roots = self._cache.roots()
            catalog = scan([(root, ModelKind(kind)) for root, kind in roots], self._cache)
        except CatalogCacheError as exc:
            log.warning("lora step: catalog unusable: %s (%s)", exc.message, exc.detail)
            return f"the LoRA catalog could not be read ({exc.message})"
        for problem in catalog.problems:
            log.warning("lora step: %s", problem)
        return CatalogView(catalog, Matcher(catalog.entries))

    def close(self) -> None:
        cache, self._cache = self._cache, None
        if cache is not None:
            cache.close()


def chain_steps(enhance: PromptStep | None, loras: LoraMatchStep | None,
                node: str | None) -> PromptStep | None:
    """The runner's prompt step for *node*: enhance, then LoRA matching on the enhanced words
    (None when neither step is set up)."""
    if enhance is None and loras is None:
        return None

    async def step(config: PipelineConfig, tags: RunTags,
                   cancel: CancelToken) -> tuple[PipelineConfig, RunTags, str]:
        notices = []
        if enhance is not None:
            config, tags, notice = await enhance(config, tags, cancel)
            notices.append(notice)
        if loras is not None:
            config, tags, notice = await loras(config, tags, cancel, node=node)
            notices.append(notice)
        return config, tags, " ".join(n for n in notices if n)

    return step
