"""The first prompt step of every run: choices left in a prompt (`{red|blue}`, `__animal__`)
are picked before anything else sees it (enhance, LoRA matching, the server).

Run with variations off plans its picks ahead (randomizer.card_prompt.card_choices_plan); work
queued any other way — Add to queue, the funnel's drafts, a job queued before an update — reaches
the runner with them unresolved, and the servers' APIs would take the braces as words.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.pipeline.config import PipelineConfig
    from stablenew.pipeline.records import RunTags

log = logging.getLogger("stablenew.cluster")

#: The wildcards folder now (the window's Settings may change it between runs), or None.
WildcardsDir = Callable[[], Path | None]


class ChoicesStep:
    """Picks a config's prompt choices (see `randomizer.card_prompt.pick_choices`), off the
    event loop; a prompt it cannot read goes as written, with a notice saying why."""

    def __init__(self, wildcards: WildcardsDir | None = None) -> None:
        self._wildcards = wildcards

    async def __call__(self, config: PipelineConfig, tags: RunTags,
                       cancel: CancelToken) -> tuple[PipelineConfig, RunTags, str]:
        t = config.txt2img
        if not any(mark in text for text in (t.prompt, t.negative_prompt) for mark in ("{", "__")):
            return config, tags, ""  # the usual case: no import, no thread
        from stablenew.randomizer.card_prompt import pick_choices
        from stablenew.randomizer.errors import RandomizerError

        folder = self._wildcards() if self._wildcards is not None else None
        try:
            return await asyncio.to_thread(pick_choices, config, folder), tags, ""
        except RandomizerError as exc:
            log.info("choices step: %s (%s); the prompt goes as written", exc.message, t.prompt)
            return config, tags, (f"The prompt's choices could not be read ({exc.message}); "
                                  "it was sent as written.")
