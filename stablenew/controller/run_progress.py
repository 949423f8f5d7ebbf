"""RunProgress: a plain snapshot of a run for the status bar, with its words (stage n of m, ETA)."""

from __future__ import annotations

from dataclasses import dataclass

from stablenew.controller.format import eta_in_words

STAGE_TITLES = {"txt2img": "Text to image", "img2img": "Image to image", "adetailer": "ADetailer",
                "upscale": "Upscale"}


class RunState:
    idle = "idle"
    running = "running"
    stopping = "stopping"


@dataclass(frozen=True)
class RunProgress:
    """A snapshot of the run for the status bar; plain values, emitted at most every 80 ms."""

    state: str = RunState.idle
    stage: str = ""
    stage_index: int = 0
    stage_count: int = 0
    image_index: int = 0
    total_images: int = 0
    step: int | None = None
    steps: int | None = None
    phase: str = ""  # the sampling pass the steps count: "" or "hires"
    more_passes: bool = False  # another sampling pass follows in this stage
    stage_fraction: float = 0.0
    overall_fraction: float = 0.0
    eta_seconds: float | None = None
    images_saved: int = 0
    images_failed: int = 0
    node: str = ""
    started_at: float = 0.0

    @property
    def eta_text(self) -> str:
        if self.state == RunState.stopping:
            return "Stopping…"
        if self.state != RunState.running:
            return ""
        return eta_in_words(self.eta_seconds)

    @property
    def stage_text(self) -> str:
        if self.state == RunState.idle or not self.stage:
            return ""
        title = STAGE_TITLES.get(self.stage, self.stage)
        text = f"{title} — stage {self.stage_index} of {self.stage_count}"
        if self.total_images > 1:
            text += f" · image {self.image_index + 1} of {self.total_images}"
        if self.finishing_text:
            text += f" · {self.finishing_text}"
        return text

    @property
    def pass_title(self) -> str:
        """What the step counter counts: the hires pass is named, the first pass is plain steps."""
        return "Hires fix" if self.phase == "hires" else "step"

    @property
    def step_text(self) -> str:
        if self.step is None or not self.steps:
            return ""
        if self.phase == "hires":
            return f"Hires fix {self.step}/{self.steps}"
        return f"step {self.step} of {self.steps}"

    @property
    def finishing(self) -> bool:
        """Every step of the pass is done but the server still works on it (upscaling for the
        hires pass, or decoding the image and saving it): a long wait with no step to count."""
        if not self.steps:
            return False
        return self.state == RunState.running and (self.step or 0) >= self.steps

    @property
    def finishing_text(self) -> str:
        if not self.finishing:
            return ""
        return "upscaling for the hires pass…" if self.more_passes else "decoding and saving…"
