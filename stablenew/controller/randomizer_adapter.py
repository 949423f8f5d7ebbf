"""RandomizerAdapter: the randomizer panel's state, with the live count computed off the Qt thread.

Edits are debounced (the user is typing); the plan is built on a worker thread, and only the
newest result is shown, so a slow wildcard folder never freezes the window. The count a run is
confirmed on comes from that same worker (`request_count`, then `exact_count_changed`), never
from the Qt thread. The run path asks `plan_for_run(base_config)` when Run is pressed, which
hands out the Plan the count and preview came from when the settings are unchanged, so nothing
is parsed again, or else a Future of the plan built on that same worker.

Threads: the settings (spec, switch, folder, counted plan) are read and changed on the Qt
thread only, and replaced rather than edited in place; the worker gets them as arguments. The
worker is the only thread that reads wildcard files: a WildcardManager caches its tree and
values without locks, so counts and Run's plans share the one worker rather than the manager.
Plans are immutable once built and may be iterated anywhere.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from PySide6.QtCore import QObject, QTimer, Signal

from stablenew.controller.app_controller import AppController
from stablenew.controller.randomizer_words import RunPace
from stablenew.pipeline.config import PipelineConfig
from stablenew.randomizer.card_prompt import card_choices_plan, may_have_choices
from stablenew.randomizer.counting import wildcard_manager
from stablenew.randomizer.errors import RandomizerError, TemplateError
from stablenew.randomizer.plan import Plan, plan
from stablenew.randomizer.spec import MAX_AXIS_VALUES, AxisKind, VariationMode, VariationSpec
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, peek_settings
from stablenew.storage.validation import plain_problems

if TYPE_CHECKING:
    from dynamicprompts.wildcards import WildcardManager

log = logging.getLogger("stablenew.controller.randomizer")

#: Above this many images the panel shows the count and a time estimate and asks first.
CONFIRM_THRESHOLD = 500
DEBOUNCE_MS = 150
PREVIEW_ROWS = 20
LIBRARY_EMPTY = ("The 'LoRA from library' axis has no LoRAs: select some in the Models tab, or "
                 "change its filter so it shows some.")

_TEXT_AXES = {AxisKind.checkpoint, AxisKind.sampler, AxisKind.scheduler, AxisKind.lora,
              AxisKind.embedding, AxisKind.negative_embedding, AxisKind.style, AxisKind.size,
              AxisKind.family}


@dataclass(frozen=True)
class PreviewRow:
    """One variant in the preview list."""

    number: int  # 1-based variant number
    label: str
    prompt: str
    negative_prompt: str
    variant_id: str


@dataclass(frozen=True)
class PlanSummary:
    """What the panel shows about the current plan."""

    images: int
    variants: int
    text: str  # "This will make 24 images in 8 variants."
    rows: tuple[PreviewRow, ...]
    seed: int


class RandomizerAdapter(QObject):
    """State of the randomizer panel; emits the exact count, the first variants and errors."""

    count_changed = Signal(object, object)  # images, variants (Python ints: may exceed 2^63)
    summary_changed = Signal(str)
    preview_changed = Signal(list)  # list[PreviewRow]
    error_changed = Signal(str)  # "" when there is no error
    enabled_changed = Signal(bool)
    spec_changed = Signal()
    spec_loaded = Signal()  # a whole spec was set from outside (preset, pack, profile)
    busy_changed = Signal(bool)
    wildcards_changed = Signal(object)  # Path | None: the wildcards folder now in use
    #: The exact count for the current settings is known: images (None: they cannot run).
    exact_count_changed = Signal(object)
    #: The Models tab's pick changed: its LoRAs as "name:weight, …" ("" when it picks none).
    library_changed = Signal(str)
    _computed = Signal(int, object, object)  # generation, PlanSummary | Exception, Plan | None

    def __init__(self, parent: QObject | None = None, *, debounce_ms: int = DEBOUNCE_MS,
                 base_config: PipelineConfig | None = None, app: AppController | None = None) -> None:
        """*app* keeps the wildcards folder in the settings (the Session passes its own); without
        one the folder is read from the settings file and not kept."""
        super().__init__(parent)
        self._spec = VariationSpec()
        self._enabled = False
        self._base = base_config or PipelineConfig()
        #: The cards to count from (see `follow_cards`); None: the base config as set.
        self._cards: Callable[[], Callable[[], PipelineConfig]] | None = None
        self._wildcards: Path | None = None
        self._manager: WildcardManager | None = None
        #: The measured pace of the node, for the time a large run takes.
        self.pace = RunPace()
        self._summary: PlanSummary | None = None
        self._error = ""
        self._generation = 0
        self._computing = -1  # the generation last handed to the worker
        # The generation the latest result belongs to, its image count, and the plan it came
        # from; together with _generation they say whether the count is current.
        self._counted = -1
        self._counted_images: int | None = None
        self._planned: Plan | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="randomizer")
        self._busy = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._start_compute)
        self._computed.connect(self._on_computed)
        #: The Models tab's pick (name, weight): the values of a "LoRA from library" axis.
        self._library: list[tuple[str, float]] = []
        self._app = app
        settings = self._app.settings if self._app is not None else peek_settings(AppPaths.default())
        self._use_wildcards(settings.wildcards_path())
        if self._app is not None:
            self._app.settings_changed.connect(self._settings_changed)

    # --- what the panel reads ---------------------------------------------------------------

    @property
    def spec(self) -> VariationSpec:
        return self._spec

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def error(self) -> str:
        return self._error

    @property
    def summary(self) -> PlanSummary | None:
        return self._summary

    @property
    def wildcards_dir(self) -> Path | None:
        return self._wildcards

    @property
    def busy(self) -> bool:
        return self._busy

    # --- edits (each schedules a debounced recount) -----------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        if enabled != self._enabled:
            self._enabled = enabled
            self.enabled_changed.emit(enabled)
            self._schedule()

    def set_base_config(self, config: PipelineConfig) -> None:
        if config == self._base:
            return  # the cards re-sent the same settings: the count still holds
        self._base = config
        self._schedule()

    def follow_cards(self, snapshot: Callable[[], Callable[[], PipelineConfig]]) -> None:
        """Count from the cards from now on: *snapshot*, called on the Qt thread as a count
        starts, reads them and returns the builder of their config, run on the worker.

        So a key typed into a card (`cards_changed`) only marks the count stale: the config is
        read once the typing pauses (or Run asks for the count) and built off the Qt thread."""
        self._cards = snapshot
        self._schedule()

    def cards_changed(self, *_args: object) -> None:
        """A card field changed: recount after the typing pause (see `follow_cards`)."""
        if self._cards is not None:
            self._schedule()

    def set_wildcards_dir(self, folder: str | Path | WildcardManager | None) -> None:
        """Use this wildcards folder, or a manager of one (setting it again re-reads files).

        A folder the user chose is kept in the settings (written off the Qt thread); the
        settings change brings it back here, as one made in the Settings dialog does."""
        if self._app is not None and (folder is None or isinstance(folder, (str, os.PathLike))):
            text = str(folder or "").strip()
            if _folder_path(text) != self._wildcards:
                reason = self._app.apply_settings({"wildcards_dir": text})
                if not reason:
                    return
                log.warning("wildcards folder %r not kept in the settings: %s", text, reason)
        self._use_wildcards(folder or None)
        self._schedule()

    def _settings_changed(self, settings: AppSettings) -> None:
        folder = settings.wildcards_path()
        if folder != self._wildcards:
            self._use_wildcards(folder)
            self._schedule()
        elif self._summary is not None:
            self.summary_changed.emit(self._summary_text(self._summary.text))  # enhancing switched

    def _summary_text(self, text: str) -> str:
        """The count line; it says so when the local LLM will enhance each variant's prompt (the
        count does not change: one image per variant and seed, as without it)."""
        settings = self._app.settings if self._app is not None else None
        if settings is not None and settings.llm_enhance and settings.llm_url:
            return f"{text} Prompts will be enhanced by your local LLM before each variant runs."
        return text

    def _use_wildcards(self, folder: str | Path | WildcardManager | None) -> None:
        if isinstance(folder, (str, os.PathLike)):
            folder = Path(folder).expanduser()
        # One manager per folder: its file tree and values are cached between keystrokes.
        self._manager = wildcard_manager(folder)
        path = self._manager.path if self._manager is not None else None
        self._wildcards = Path(path) if path is not None else None
        self.wildcards_changed.emit(self._wildcards)

    def set_template(self, text: str) -> None:
        self._update(template=text or None)

    def set_negative_template(self, text: str) -> None:
        self._update(negative_template=text or None)

    def set_prompt_matrix(self, on: bool) -> None:
        self._update(prompt_matrix=on)

    def set_mode(self, mode: str) -> None:
        changes: dict[str, object] = {"mode": mode}
        if mode == VariationMode.random and self._spec.count is None:
            changes["count"] = 10
        self._update(**changes)

    def set_images_per_variant(self, n: int) -> None:
        self._update(images_per_variant=n)

    def set_seed_policy(self, policy: str) -> None:
        self._update(seed_policy=policy)

    def set_seed(self, seed: int | None) -> None:
        self._update(seed=seed)

    def set_random_count(self, n: int) -> None:
        self._update(count=n)

    def set_max_images(self, n: int | None) -> None:
        self._update(max_images=n or None)

    def set_wildcard_weights(self, weights: dict[str, dict[str, float]]) -> None:
        self._update(wildcard_weights=weights)

    def set_axes(self, rows: list[tuple[str, str]]) -> None:
        """Axes from the editor: (setting name or dotted path, values as typed). A "LoRA from
        library" row takes the Models tab's pick, whatever its text says."""
        axes: list[dict[str, object]] = []
        for name, text in rows:
            if name == AxisKind.lora_library:
                problem = self._library_problem()
                if problem:
                    self._set_error(problem)
                    return
                axes.append(self._library_axis())
                continue
            if not name or not text.strip():
                continue
            if name in AxisKind.__members__ and AxisKind(name) in _TEXT_AXES:
                values: str | list[str] = [v.strip() for v in text.split(",") if v.strip()]
            else:
                values = text  # numbers and A1111 ranges ("20-40 (+10)") are expanded by the spec
            axes.append({name: values})
        self._update(axes=axes)

    # --- the Models tab's pick (plain data from the controller that owns the catalog) -------

    @property
    def library_loras(self) -> list[tuple[str, float]]:
        return list(self._library)

    def library_text(self) -> str:
        return ", ".join(f"{name}:{weight:g}" for name, weight in self._library)

    def set_library_loras(self, loras: list[tuple[str, float]]) -> None:
        """The LoRAs picked in the Models tab (its selection, else what its filter shows) as
        (name, weight): every "LoRA from library" axis draws from them, and is counted again."""
        library = [(str(name), float(weight)) for name, weight in loras]
        if library == self._library:
            return
        self._library = library
        self.library_changed.emit(self.library_text())
        if not any(axis.kind is AxisKind.lora_library for axis in self._spec.axes):
            return
        problem = self._library_problem()
        if problem:
            self._set_error(problem)
            return
        self._update(axes=[self._library_axis() if axis.kind is AxisKind.lora_library
                           else axis.model_dump() for axis in self._spec.axes])

    def _library_problem(self) -> str:
        """Why the pick cannot be an axis ("" when it can), said before any work is done."""
        if not self._library:
            return LIBRARY_EMPTY
        if len(self._library) > MAX_AXIS_VALUES:
            return (f"The Models tab picks {len(self._library)} LoRAs; a 'LoRA from library' axis "
                    f"takes at most {MAX_AXIS_VALUES}. Select some, or narrow its filter.")
        return ""

    def _library_axis(self) -> dict[str, object]:
        return {"kind": AxisKind.lora_library.value,
                "values": [{"name": name, "weight": weight} for name, weight in self._library]}

    def set_spec(self, spec: VariationSpec) -> None:
        """Load a whole spec (a preset or pack); the panel shows its values."""
        self._spec = spec
        self.spec_loaded.emit()
        self.spec_changed.emit()
        self._schedule()

    def axis_rows(self) -> list[tuple[str, str]]:
        """The current axes as editor rows (setting, values as text)."""
        return [(axis.name, ", ".join(axis.value_label(v) for v in axis.values))
                for axis in self._spec.axes]

    def _update(self, **changes: object) -> None:
        data = self._spec.model_dump()
        data.update(changes)
        try:
            spec = VariationSpec.model_validate(data)
        except ValidationError as exc:
            problems = plain_problems(exc, VariationSpec)
            self._set_error("; ".join(str(p) for p in problems) or str(exc))
            return
        self._spec = spec
        self.spec_changed.emit()
        self._schedule()

    # --- run path ---------------------------------------------------------------------------

    def plan_for_run(self, base_config: PipelineConfig) -> Plan | Future[Plan | None] | None:
        """The plan to run for these card settings, as they are now (None when the randomizer
        is off and the card's prompt has no choices to pick: see `card_prompt`). Called on the
        Qt thread when Run is pressed; returns at once.

        The plan the current count was made from when it is for these settings (so the run
        makes exactly the images counted, and no template is parsed again); otherwise a Future
        of the plan for the settings shown now, built on the worker. A bad template fails that
        Future with a TemplateError / SpecError in plain words: it never runs."""
        if not self._enabled:
            # Choices typed on the card ({red|blue}, __animal__) are picked for each image.
            if not may_have_choices(base_config):
                return None
            return self._pool.submit(card_choices_plan, base_config, self._manager)
        planned = self._planned
        if planned is not None and self.count_ready and planned.base == base_config:
            return planned.for_new_run()
        return self._pool.submit(plan, base_config, self._spec, wildcards_dir=self._manager)

    @property
    def count_ready(self) -> bool:
        """True when the exact count for the current settings is known (always when off).

        False while the user is typing (the debounce delay) and while the worker counts."""
        return not self._enabled or self._counted == self._generation

    def exact_count(self) -> int | None:
        """Images a run of the current settings makes, once counted (see `count_ready`).

        None: the randomizer is off, the settings cannot run, or they are not counted yet.
        Never counts here: this is called on the Qt thread, and a big template can take long."""
        if not self._enabled or not self.count_ready:
            return None
        return self._counted_images

    def request_count(self) -> None:
        """Count the current settings now (skipping the typing delay), on the worker.

        `exact_count_changed` is emitted when the count is in; nothing is started when it is
        already known or already being counted."""
        if self._counted == self._generation or self._computing == self._generation:
            return
        self.refresh_now()

    def needs_confirmation(self, images: int | None = None) -> bool:
        if images is None:
            images = self.exact_count()
        return self._enabled and images is not None and images > CONFIRM_THRESHOLD

    # --- background computing ---------------------------------------------------------------

    def refresh_now(self) -> None:
        """Recount immediately (skipping the typing delay)."""
        self._timer.stop()
        self._start_compute()

    def _schedule(self) -> None:
        # A result still on its way describes an older spec: drop it, wait for the new one.
        with self._lock:
            self._generation += 1
        self._timer.start()

    def _start_compute(self) -> None:
        with self._lock:
            generation = self._generation
        base: PipelineConfig | Callable[[], PipelineConfig]
        base = self._cards() if self._cards is not None else self._base
        spec, folder = self._spec, self._manager
        self._computing = generation
        self._set_busy(True)
        self._pool.submit(self._compute, generation, base, spec, folder)

    def _compute(self, generation: int, base: PipelineConfig | Callable[[], PipelineConfig],
                 spec: VariationSpec, folder: WildcardManager | None) -> None:
        # Worker thread: build the plan and its first variants; never touch widgets here.
        try:
            p = plan(base() if callable(base) else base, spec, wildcards_dir=folder)
            rows = tuple(
                PreviewRow(item.variant_index + 1, item.label, item.config.txt2img.prompt,
                           item.config.txt2img.negative_prompt, item.variant_id)
                for item in p.variant_previews(PREVIEW_ROWS))
            result: PlanSummary | Exception = PlanSummary(
                p.count, p.variants_in_count, p.summary(), rows, p.seed)
        except Exception as exc:  # noqa: BLE001 - shown as the panel's error; the detail goes to the log
            result, p = exc, None
        with self._lock:
            stale = generation != self._generation
        if stale:
            return
        try:
            self._computed.emit(generation, result, p)
        except RuntimeError:  # the adapter was deleted while this ran (the window closed)
            pass

    def _on_computed(self, generation: int, result: PlanSummary | Exception,
                     planned: Plan | None) -> None:
        if generation != self._generation:
            return
        self._set_busy(False)
        self._counted, self._planned = generation, planned
        if isinstance(result, Exception):
            self._counted_images = None
            self._set_error(_describe(result))
            self.exact_count_changed.emit(None)
            return
        self._counted_images = result.images
        self._summary = result
        self._set_error("")
        self.count_changed.emit(result.images, result.variants)
        self.summary_changed.emit(self._summary_text(result.text))
        self.preview_changed.emit(list(result.rows))
        self.exact_count_changed.emit(result.images)

    def _set_error(self, text: str) -> None:
        if text != self._error:
            self._error = text
            self.error_changed.emit(text)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def close(self) -> None:
        """Stop the worker (the window is closing)."""
        self._timer.stop()
        with self._lock:
            self._generation += 1  # anything still computing is now stale
        self._pool.shutdown(wait=False, cancel_futures=True)


def _folder_path(text: str) -> Path | None:
    return Path(text).expanduser() if text else None


def _describe(exc: Exception) -> str:
    if isinstance(exc, TemplateError):
        where = f" ({exc.position})" if exc.position and exc.position not in exc.message else ""
        return exc.message + where
    if isinstance(exc, RandomizerError):
        return exc.message
    if isinstance(exc, ValidationError):
        return "; ".join(str(p) for p in plain_problems(exc, VariationSpec))
    log.exception("randomizer preview failed", exc_info=exc)
    return f"The preview failed: {exc}"


__all__ = ["CONFIRM_THRESHOLD", "PlanSummary", "PreviewRow", "RandomizerAdapter"]
