"""What a run hands back: its result, and the words for how it ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.events import RunError, RunStatus
from stablenew.pipeline.records import ImageRecord, RunTags
from stablenew.storage.words import plural


@dataclass
class RunResult:
    """What a run produced: saved records (in image order), errors, and how it ended."""

    run_id: str
    status: RunStatus
    records: list[ImageRecord]
    errors: list[RunError]
    output_dir: Path
    seconds: float
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Whether the run made its folder (it does so with the first image it writes).
    folder_made: bool = False


#: The step before a config's first stage: (config, tags, cancel) -> (the config to send, its
#: tags, a notice for the user or ""). It never raises for a failure of its own (a down LLM).
PromptStep = Callable[[PipelineConfig, RunTags, CancelToken],
                      Awaitable[tuple[PipelineConfig, RunTags, str]]]


def run_outcome(saved: int, total: int, *, cancelled: bool, fatal: RunError | None,
                errors: Sequence[RunError]) -> tuple[RunStatus, str]:
    """How a run of *total* images that saved *saved* ended, in the words the user reads."""
    of_total = f"{saved} of {plural(total, 'image')}"
    if cancelled:
        return RunStatus.cancelled, f"Stopped after {of_total}."
    if fatal is not None:
        status = RunStatus.partial if saved else RunStatus.failed
        return status, f"Stopped after {of_total}: {fatal.message}"
    failed = total - saved
    if failed <= 0:
        return RunStatus.completed, f"{plural(saved, 'image')} saved."
    if saved == 0:
        first = errors[0].message if errors else "no image could be made"
        return RunStatus.failed, f"No image was saved: {first}"
    return RunStatus.partial, f"{of_total} saved; {failed} failed."
