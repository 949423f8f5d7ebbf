"""How a run writes its images: described from each stage's report, a PNG (the run's folder
made with the first one) and a thumbnail in writer threads, then recorded and announced."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stablenew.backends.a1111_truth import same_checkpoint
from stablenew.backends.types import GeneratedImage, JobResult
from stablenew.pipeline import outputs
from stablenew.pipeline.config import MAX_SEED, PipelineConfig, StageName
from stablenew.pipeline.events import EventCallback, ImageSaved, RunError, RunEvent, RunWarning
from stablenew.pipeline.records import ImageRecord, RunTags

if TYPE_CHECKING:
    from stablenew.pipeline import infotext_write as it
    from stablenew.pipeline.runlog import RunLog
    from stablenew.pipeline.runner import PipelineRunner

log = logging.getLogger("stablenew.pipeline.runner")

#: A1111's `Lora hashes` text ("name: autov3, …"; "" when none is known) for the LoRA files a
#: server loaded without writing the hashes itself (ComfyUI): the catalog's, passed down as a
#: plain function so this room never imports it.
LoraHashes = Callable[[Sequence[str]], str]

#: Finished images being written at once; more would only queue up behind the disk.
MAX_PENDING_SAVES = 4

_SAVE_POOL: ThreadPoolExecutor | None = None
_SAVE_POOL_LOCK = threading.Lock()


def _save_pool() -> ThreadPoolExecutor:
    """Writer threads of their own, so saves never queue ahead of a backend's decoding work
    in the loop's default executor (that would delay the next request)."""
    global _SAVE_POOL
    with _SAVE_POOL_LOCK:
        if _SAVE_POOL is None:
            _SAVE_POOL = ThreadPoolExecutor(max_workers=MAX_PENDING_SAVES,
                                            thread_name_prefix="stablenew-save")
        return _SAVE_POOL


#: Interrupts and abandoned jobs still unwinding when a run returned (kept referenced until
#: they finish, so they are never destroyed while pending).
_BACKGROUND: set[asyncio.Future] = set()


def retrieve(task: asyncio.Future) -> None:
    """Done callback on every task the runner starts: take its outcome, so a job that ends
    after its run gave up on it (a cancelled cluster worker) is never reported by asyncio as
    "Task exception was never retrieved". Jobs the run awaits still raise to it as usual."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("background task %r ended with %r", task, task.exception())


def keep_until_done(task: asyncio.Future) -> None:
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


@dataclass
class RunImage:
    """One image on its way through the chain."""

    index: int
    seed: int
    data: bytes = b""
    size: tuple[int, int] = (0, 0)
    chain: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source: Path | None = None  # the input file a re-run started from
    #: Each stage's server report for this image: what the image's metadata is made of.
    reports: dict[str, it.StageReport] = field(default_factory=dict)
    #: Why the image is not finished work ("" when it is): kept, named and counted as such.
    incomplete: str = ""
    #: The stage that failed after the ones in `chain` ran ("" when none did).
    stopped_before: str = ""


def as_ran(config: PipelineConfig, image: RunImage) -> tuple[PipelineConfig, dict[str, Any]]:
    """The config corrected by what the server reported running, and what it said instead.

    A1111 runs an unknown sampler as its first one and drops a checkpoint name it does not
    know; a ComfyUI node given no checkpoint loads one of its own. The saved config then
    reproduces the image, and `asked` keeps what the config said.
    """
    from stablenew.pipeline import infotext_write as it  # its own start-up cost: only when saving
    chain = [StageName(s) for s in image.chain]
    ran = it.first_ran(chain, image.reports)
    if ran is None:
        return config, {}
    t = config.txt2img
    update: dict[str, Any] = {}
    asked: dict[str, Any] = {}
    if ran.checkpoint and not (t.checkpoint and same_checkpoint(t.checkpoint, ran.checkpoint)):
        update["checkpoint"] = ran.checkpoint
        asked["txt2img.checkpoint"] = t.checkpoint
    same_sampler = t.sampler.casefold() in (ran.sampler.casefold(),
                                            f"{ran.sampler} {ran.scheduler}".casefold())
    if chain and chain[0] is StageName.txt2img and ran.sampler and not same_sampler:
        update["sampler"] = ran.sampler
        asked["txt2img.sampler"] = t.sampler
    if not update:
        return config, {}
    return config.model_copy(update={"txt2img": t.model_copy(update=update)}), asked


class FolderFailed(Exception):
    """The run's folder could not be made (the cause says why)."""


class RunSaving:
    """The part of a run that saves, records and announces its images, and says its
    warnings and errors (mixed into the run; its attributes are the run's)."""

    runner: PipelineRunner
    config: PipelineConfig
    tags: RunTags
    run_id: str
    node: str
    node_kind: str
    name_prefix: str | None
    fixed_dir: Path | None
    output_dir: Path
    records: list[ImageRecord]
    errors: list[RunError]
    warnings: list[str]
    fatal: RunError | None
    saves: set[asyncio.Task[None]]
    save_slots: asyncio.Semaphore
    log: RunLog | None
    on_event: EventCallback | None
    _folder_ready: bool
    _folder_lock: threading.Lock
    _callback_failed: bool

    def _ensure_folder(self) -> Path:
        """Blocking (writer thread): make the run's folder with its first image; its path."""
        with self._folder_lock:
            if not self._folder_ready:
                try:
                    self.output_dir = self._prepare_folder()
                except OSError as exc:
                    raise FolderFailed(exc) from exc
                if self.fixed_dir is not None:
                    self.runner._prepared_dirs.add(self.fixed_dir)
                self._folder_ready = True
            return self.output_dir

    def _prepare_folder(self) -> Path:
        if self.fixed_dir is not None:
            self.fixed_dir.mkdir(parents=True, exist_ok=True)
            return self.fixed_dir
        return outputs.new_run_folder(self.runner.output_root, self.config.txt2img.prompt)

    # --- saving -----------------------------------------------------------------------------

    def _new_image(self, index: int, gen: GeneratedImage, fallback_seed: int,
                   result: JobResult) -> RunImage:
        from stablenew.pipeline import infotext_write as it  # its own start-up cost: only when saving

        # The server reports the seed it used; trust it over our arithmetic.
        seed = gen.seed if 0 <= gen.seed <= MAX_SEED else fallback_seed
        try:
            size = outputs.image_size(gen.data)
        except Exception:  # noqa: BLE001 - an unreadable size falls back to the size asked for
            size = (self.config.txt2img.width, self.config.txt2img.height)
        image = RunImage(index, seed, gen.data, size, incomplete=result.incomplete)
        image.reports[StageName.txt2img.value] = it.StageReport(gen.infotext, result.info,
                                                                result.ran)
        image.warnings.extend(result.warnings)
        return image

    async def _schedule_save(self, image: RunImage) -> None:
        await self.save_slots.acquire()
        task = asyncio.ensure_future(self._save(image))
        task.add_done_callback(retrieve)
        self.saves.add(task)
        task.add_done_callback(self.saves.discard)

    async def _save(self, image: RunImage) -> None:
        try:
            asked = self._config_for(image.seed)
            config, changed = as_ran(asked, image)
            hashes = self._lora_hashes(image)
            name = outputs.image_file_name(config.txt2img.prompt, image.index, image.seed,
                                           prefix=self.name_prefix)
            if image.incomplete:
                name = name[: -len(".png")] + "-incomplete.png"
            elif image.stopped_before:
                name = name[: -len(".png")] + f"-{image.chain[-1]}-only.png"
            created = time.time()
            started = time.monotonic()
            try:
                path, thumb = await asyncio.get_running_loop().run_in_executor(
                    _save_pool(), self._write, image, config, changed, name, created, hashes)
            except FolderFailed as exc:
                # Every image would fail the same way: stop instead of burning the GPU.
                error = RunError(f"The output folder under {self.runner.output_root} cannot be "
                                 "created. Choose another folder in Settings.",
                                 repr(exc.__cause__), image.index, fatal=True)
                self.fatal = self.fatal or error
                self.errors.append(error)
                self._emit(error)
                return
            except Exception as exc:  # noqa: BLE001 - a save that fails is that image's error, with what to do
                message = getattr(exc, "message", None) or (
                    f"Image {image.index + 1} could not be saved to {self.output_dir}. Check that "
                    "the folder is writable and the disk is not full.")
                self._image_error(image.index, message, getattr(exc, "detail", "") or repr(exc))
                return
            image.timings["save"] = time.monotonic() - started
            if image.stopped_before:
                # The stage's failure is already reported; this says what is left of the image.
                self._warn(f"Image {image.index + 1}: the {image.stopped_before} step failed, so "
                           f"the image from the steps before it is kept as {name} (not counted "
                           "as done).", image.index)
                return
            if image.incomplete:
                # Kept for the user to look at, but it is not the image that was asked for:
                # no record, so it counts as failed (and a queue item is made again).
                self._image_error(
                    image.index, f"Image {image.index + 1} was not finished: {image.incomplete}. "
                    f"What the server returned is kept as {name}, not counted as done.",
                    f"stages {image.chain}")
                return
            record = ImageRecord(
                run_id=self.run_id, image_index=image.index, config=config, seed=image.seed,
                stages=tuple(image.chain), node=self.node, node_kind=self.node_kind, path=path,
                thumbnail=thumb, tags=self.tags, timings=dict(image.timings),
                warnings=tuple(image.warnings), created_at=created, source=image.source)
            self.records.append(record)
            for hook in self.runner._hooks:
                try:
                    hook(record)
                except Exception as exc:  # a broken subscriber must not lose the image
                    log.exception("record hook %r failed", hook)
                    self._warn(f"An image was saved but could not be recorded: {exc}",
                               image.index)
            self._emit(ImageSaved(record))
        finally:
            self.save_slots.release()

    def _lora_hashes(self, image: RunImage) -> str:
        """`Lora hashes` for the LoRAs the first stage's server loaded, when it names them
        and the runner knows their hashes (on the loop's thread: the lookup is the caller's)."""
        from stablenew.pipeline import infotext_write as it  # its own start-up cost: only when saving

        lookup = self.runner.lora_hashes
        ran = it.first_ran([StageName(s) for s in image.chain], image.reports)
        if lookup is None or ran is None or not ran.loras:
            return ""
        try:
            return lookup(ran.loras)
        except Exception:  # noqa: BLE001 - the image is saved without the hashes, not lost
            log.exception("Lora hashes for %s failed", ran.loras)
            return ""

    def _write(self, image: RunImage, config: PipelineConfig, asked: dict[str, Any], name: str,
               created: float, lora_hashes: str = "") -> tuple[Path, Path | None]:
        """Blocking: describe the image from its stages' reports, write the PNG (making the
        run's folder with the first one), then the thumbnail (worker thread)."""
        from stablenew.pipeline import infotext_write as it  # its own start-up cost: only when saving
        path = self._ensure_folder() / name
        first = image.size if StageName.txt2img.value not in image.chain else None
        parameters = it.describe_image(config, image.seed, image.chain, image.reports,
                                       size=first, lora_hashes=lora_hashes)
        if image.incomplete:
            parameters += f", Incomplete: {it.quote(image.incomplete)}"
        if image.stopped_before:
            parameters += f", Stopped before: {image.stopped_before}"
        payload = it.stablenew_payload(
            config=config, seed=image.seed, stages=image.chain, run_id=self.run_id,
            image_index=image.index, tags=self.tags, node=self.node, node_kind=self.node_kind,
            timings=image.timings, created_at=created,
            source=str(image.source) if image.source is not None else None)
        if asked:
            payload["asked"] = asked  # what the config said where the server ran otherwise
        if image.incomplete:
            payload["incomplete"] = image.incomplete
        if image.stopped_before:
            payload["stopped_before"] = image.stopped_before  # `stages` lists what ran
        chunks = {it.PARAMETERS_KEY: parameters,
                  it.STABLENEW_KEY: json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}
        outputs.write_png(path, image.data, chunks)
        if not self.runner.thumbnails:
            return path, None
        thumb = outputs.thumbnail_path(path)
        try:
            outputs.write_thumbnail(image.data, thumb)
        except Exception as exc:  # noqa: BLE001 - the image is safe; a missing thumbnail is only cosmetic
            log.warning("thumbnail for %s failed: %r", path, exc)
            return path, None
        return path, thumb

    def _config_for(self, seed: int) -> PipelineConfig:
        # model_copy skips re-validation: only the seed changes and it is already in range.
        t = self.config.txt2img.model_copy(update={"seed": seed})
        return self.config.model_copy(update={"txt2img": t})

    async def _drain_saves(self) -> None:
        while self.saves:
            await asyncio.gather(*list(self.saves), return_exceptions=True)

    # --- warnings, errors, events ----------------------------------------------------------

    def _image_error(self, index: int, message: str, detail: str = "") -> None:
        error = RunError(message, detail, index)
        self.errors.append(error)
        self._emit(error)

    def _warn(self, message: str, index: int | None) -> None:
        self.warnings.append(message)
        self._emit(RunWarning(message, index))

    def _emit(self, event: RunEvent) -> None:
        if self.log is not None:
            self.log.write(event)
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            if not self._callback_failed:
                self._callback_failed = True
                log.exception("on_event callback failed (later failures are not logged)")
