"""PromptController: the window's "Enhance" and "Refine from feedback" with the user's local LLM.

The words and checks live in stablenew.prompting; this controller only runs them on the loop,
streams the answer to the view token by token, and keeps one refinement session's intent
document (the feedback so far, preferences and an avoid list) until the user starts over.
Nothing here blocks the Qt thread: reading an image for a vision model and loading templates
go to a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.tasks import TaskOwner

if TYPE_CHECKING:
    from stablenew.controller.app_controller import AppController
    from stablenew.pipeline.cancel import CancelToken
    from stablenew.prompting.client import LLMClient
    from stablenew.prompting.intent import IntentDocument

log = logging.getLogger("stablenew.controller.prompts")

NO_LLM = ("No local LLM is set up. Open Settings and enter its address, e.g. "
          "http://127.0.0.1:1234 for LM Studio or http://127.0.0.1:11434 for Ollama.")


@dataclass(frozen=True)
class PromptSuggestion:
    """What the LLM proposed for a prompt, for the view to show before the user accepts it."""

    kind: str  # "enhance" or "refine"
    original: str
    prompt: str  # the original when nothing usable came back
    error: str = ""  # plain words when the LLM failed; the prompt is then unchanged
    checks: tuple[str, ...] = ()  # what code repaired or refused in the answer
    diff: tuple[str, ...] = ()  # "+ phrase" / "- phrase" lines
    model: str = ""
    template: str = ""
    warning: str = ""  # e.g. the address is not on this machine or the LAN

    @property
    def changed(self) -> bool:
        return not self.error and self.prompt != self.original


@dataclass
class _Work:
    kind: str
    original: str
    cancel: CancelToken
    task: asyncio.Task[None] | None = None
    tokens: list[str] = field(default_factory=list)


class PromptController(QObject):
    """Enhances and refines the prompt with the LLM from Settings; one request at a time."""

    streamed = Signal(str)  # the answer so far, while the LLM writes it
    suggested = Signal(object)  # PromptSuggestion
    busy_changed = Signal(bool)
    models_listed = Signal(object, str)  # (list[str] of model names, plain error or "")
    templates_listed = Signal(object)  # list[str] of template names

    def __init__(self, app: AppController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app = app
        self.tasks = TaskOwner("Prompt assistant", self)
        self.tasks.error_raised.connect(self._failed)
        self._work: _Work | None = None
        self._intent: IntentDocument | None = None

    # --- state --------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True when Settings name an LLM address."""
        return bool(self.app.settings.llm_url)

    @property
    def busy(self) -> bool:
        return self._work is not None

    @property
    def feedback_rounds(self) -> int:
        """Feedback rounds in this refinement session (0: a fresh start)."""
        return len(self._intent.rounds) if self._intent is not None else 0

    @staticmethod
    def address_warning(url: str) -> str:
        """Plain words when *url* is not this machine or the home network ("" when it is)."""
        from stablenew.prompting.addresses import address_warning

        return address_warning(url) or "" if url.strip() else ""

    def start_over(self) -> None:
        """Forget this session's feedback, preferences and avoid list."""
        self._intent = None

    # --- commands -----------------------------------------------------------------------------

    def enhance(self, prompt: str, checkpoint: str = "") -> bool:
        """Ask the LLM for a richer prompt; `suggested` brings it (or why not). False: not started."""
        return self._start("enhance", prompt, self._enhance(prompt, checkpoint))

    def refine(self, prompt: str, feedback: str, *, image: Path | None = None,
               checkpoint: str = "") -> bool:
        """Change *prompt* as the user's *feedback* says, optionally looking at the *image* they
        liked (a vision model describes it). False: not started (empty words, or busy)."""
        if not feedback.strip() and image is None:
            return False
        return self._start("refine", prompt, self._refine(prompt, feedback.strip(), image, checkpoint))

    def cancel(self) -> None:
        """Stop the LLM request in flight; the prompt stays as it was."""
        if self._work is not None:
            self._work.cancel.cancel()

    def list_models(self, url: str, api_key: str = "") -> None:
        """The models the LLM at *url* offers, for the Settings picker (`models_listed`)."""
        self.tasks.spawn(self._list_models(url.strip(), api_key), name="llm-models")

    def list_templates(self) -> None:
        """The enhance styles: shipped ones and the user's own YAML files (`templates_listed`)."""
        self.tasks.spawn(self._list_templates(), name="llm-templates")

    # --- work ---------------------------------------------------------------------------------

    def _start(self, kind: str, prompt: str, coro: Coroutine[object, object, None]) -> bool:
        if self._work is not None:
            coro.close()
            return False
        if not self.available:
            coro.close()
            self.suggested.emit(PromptSuggestion(kind, prompt, prompt, error=NO_LLM))
            return False
        from stablenew.pipeline.cancel import CancelToken

        self._work = _Work(kind, prompt, CancelToken())
        self.busy_changed.emit(True)
        self._work.task = self.tasks.spawn(coro, name=f"llm-{kind}")
        return True

    def _client(self) -> LLMClient:
        from stablenew.prompting.client import LLMClient

        settings = self.app.settings
        return LLMClient(settings.llm_url, api_key=settings.llm_api_key.get_secret_value())

    async def _model(self, client: LLMClient) -> str:
        from stablenew.prompting.errors import LLMModelMissing

        chosen = self.app.settings.llm_model
        if chosen:
            return chosen
        models = await client.models()
        if not models:
            raise LLMModelMissing("The LLM server has no model loaded. Load or pull one, or "
                                  "choose it in Settings.", model="", detail="empty model list")
        return models[0]

    def _token(self, text: str) -> None:
        work = self._work
        if work is not None:
            work.tokens.append(text)
            self.streamed.emit("".join(work.tokens))

    def _finish(self, suggestion: PromptSuggestion) -> None:
        self._work = None
        self.busy_changed.emit(False)
        self.suggested.emit(suggestion)

    async def _enhance(self, prompt: str, checkpoint: str) -> None:
        from stablenew.prompting.addresses import address_warning
        from stablenew.prompting.enhance import enhance_or_keep
        from stablenew.prompting.errors import LLMError
        from stablenew.prompting.step import family_for_checkpoint
        from stablenew.prompting.templates import get_template, user_templates_dir

        assert self._work is not None
        settings = self.app.settings
        warning = address_warning(settings.llm_url) or ""
        client = self._client()
        try:
            template = await asyncio.to_thread(get_template, settings.llm_template or "general",
                                               user_templates_dir(self.app.paths))
            model = await self._model(client)
            result = await enhance_or_keep(client, prompt, template, model=model,
                                           family=family_for_checkpoint(checkpoint),
                                           on_token=self._token, cancel=self._work.cancel)
        except (KeyError, LLMError) as exc:
            message = exc.message if isinstance(exc, LLMError) else (
                f"{exc.args[0]} Choose another style in Settings.")
            self._finish(PromptSuggestion("enhance", prompt, prompt, error=message, warning=warning))
            return
        finally:
            await client.aclose()
        error = result.error.message if result.error is not None else ""
        self._finish(PromptSuggestion("enhance", prompt, result.prompt, error=error,
                                      checks=tuple(result.checks), model=result.model,
                                      template=result.template, warning=warning))

    async def _refine(self, prompt: str, feedback: str, image: Path | None, checkpoint: str) -> None:
        from stablenew.prompting.addresses import address_warning
        from stablenew.prompting.errors import LLMError
        from stablenew.prompting.intent import IntentDocument
        from stablenew.prompting.refine import describe, refine
        from stablenew.prompting.step import family_for_checkpoint

        assert self._work is not None
        cancel = self._work.cancel
        warning = address_warning(self.app.settings.llm_url) or ""
        if self._intent is None:
            self._intent = IntentDocument()
        client = self._client()
        try:
            model = await self._model(client)
            picked: list[str] = []
            if image is not None:
                png = await asyncio.to_thread(image.read_bytes)
                picked.append(await describe(client, png, model=model, cancel=cancel,
                                             mime=_mime(image)))
            result = await refine(client, prompt, feedback or "more like this image", model=model,
                                  family=family_for_checkpoint(checkpoint), picked=picked,
                                  intent=self._intent, cancel=cancel, on_token=self._token)
        except (LLMError, OSError) as exc:
            message = exc.message if isinstance(exc, LLMError) else (
                f"The image could not be read ({exc.strerror or exc}).")
            self._finish(PromptSuggestion("refine", prompt, prompt, error=message, warning=warning))
            return
        finally:
            await client.aclose()
        self._finish(PromptSuggestion("refine", prompt, result.prompt, checks=tuple(result.checks),
                                      diff=tuple(result.diff), model=result.model, warning=warning))

    async def _list_models(self, url: str, api_key: str) -> None:
        from stablenew.prompting.client import LLMClient
        from stablenew.prompting.errors import LLMError

        if not url:
            self.models_listed.emit([], "Enter the LLM address first.")
            return
        client = LLMClient(url, api_key=api_key, timeout=15.0)
        try:
            models = await client.models()
        except LLMError as exc:
            self.models_listed.emit([], exc.message)
            return
        finally:
            await client.aclose()
        self.models_listed.emit(models, "" if models else "The LLM server lists no models. "
                                "Load or pull one there first.")

    async def _list_templates(self) -> None:
        from stablenew.prompting.templates import load_templates, user_templates_dir

        templates, problems = await asyncio.to_thread(load_templates, user_templates_dir(self.app.paths))
        for problem in problems:
            log.warning("enhance template skipped: %s", problem)
        self.templates_listed.emit(sorted(templates))

    def _failed(self, info: object) -> None:
        # A bug in a task (not an LLM error, which becomes a suggestion with words): free the
        # buttons again so the user can try once more.
        work = self._work
        if work is not None:
            self._finish(PromptSuggestion(work.kind, work.original, work.original,
                                          error=getattr(info, "message", str(info))))

    async def aclose(self) -> None:
        self.cancel()
        await self.tasks.aclose()


def _mime(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}.get(suffix, "image/png")
