"""CatalogRuns: learning runs started from the Models room — "Try this LoRA" (its weight from 0.2
to 1.0) and the swatch batch (one image per LoRA on the same prompt and seed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from stablenew.catalog.prompt import insert_lora
from stablenew.learning.parameters import SWATCH_KEY

if TYPE_CHECKING:
    from stablenew.catalog.entry import ModelEntry
    from stablenew.pipeline.config import PipelineConfig

#: "Try this LoRA": a learning run over these weights, rated like any other.
TRY_WEIGHTS = (0.2, 0.4, 0.6, 0.8, 1.0)
#: A swatch batch compares this many LoRAs at most (a learning run's most values).
MAX_SWATCH = 10

#: Starts a learning run on (config, parameter key, values); returns "" or why it did not start.
LearningRunStarter: TypeAlias = "Callable[[PipelineConfig, str, list[float | str]], str]"


def swatch_words(count: int) -> str:
    """What a swatch batch of *count* LoRAs makes, in words, before it runs."""
    if count < 2:
        return "Select two or more LoRAs (Ctrl-click) for a swatch batch."
    if count > MAX_SWATCH:
        return f"{count} LoRAs selected: a swatch batch compares {MAX_SWATCH} at most."
    return (f"Swatch batch: {count} images of your prompt, one per LoRA, all with the same "
            "seed, to rate side by side.")


class CatalogRuns:
    """The Models room's learning runs, on the cards' settings; each says in words how it went."""

    def __init__(self, cards: Callable[[], Callable[[], PipelineConfig] | None],
                 say: Callable[[str], None], started: Callable[[str], None]) -> None:
        self._cards = cards  # the cards' settings, once the session has joined them
        self._say = say
        self._started = started
        self._start_learning_run: LearningRunStarter | None = None

    def set_starter(self, start: LearningRunStarter) -> None:
        """How a run starts (the session's learning room)."""
        self._start_learning_run = start

    def try_lora(self, entry: ModelEntry, triggers: list[str] | None = None) -> bool:
        """A learning run over the LoRA's weight (0.2 … 1.0) on the cards' prompt with its
        ticked trigger words, rated like any learning run; False with a message when it cannot."""
        get_config = self._cards()
        if get_config is None or self._start_learning_run is None:
            self._say("Trying a LoRA needs the learning room; it is still opening.")
            return False
        config = get_config()
        prompt = insert_lora(config.txt2img.prompt, entry, 1.0, triggers)
        base = config.model_copy(update={"txt2img": config.txt2img.model_copy(update={"prompt": prompt})})
        reason = self._start_learning_run(base, f"lora:{entry.name}", [*TRY_WEIGHTS])
        if reason:
            self._say(reason)
            return False
        self._say(f"Trying {entry.display_name} at weights 0.2 to 1.0: rate the images in the "
                  "Learning tab.")
        self._started(entry.display_name)
        return True

    def swatch(self, entries: Sequence[ModelEntry]) -> bool:
        """A swatch batch: one image per LoRA on the cards' prompt and seed, each LoRA at its
        preferred weight with its first trigger word; one queue job, rated like any learning
        run (a style preview). False with a message when it cannot start."""
        get_config = self._cards()
        if get_config is None or self._start_learning_run is None:
            self._say("A swatch batch needs the learning room; it is still opening.")
            return False
        chosen = list({entry.name: entry for entry in entries}.values())
        if not 2 <= len(chosen) <= MAX_SWATCH:
            self._say(swatch_words(len(chosen)))
            return False
        # What each image adds to the prompt, as "Add to prompt" would add it.
        values: list[float | str] = [insert_lora("", entry) for entry in chosen]
        reason = self._start_learning_run(get_config(), SWATCH_KEY, values)
        if reason:
            self._say(reason)
            return False
        self._say(f"Swatch batch of {len(chosen)} LoRAs running: rate the images in the "
                  "Learning tab.")
        self._started(f"{len(chosen)} LoRAs")
        return True
