"""The enhance step of a run: before a variant's first stage, its prompt is enhanced.

Whoever hands a resolved config to `PipelineRunner.run` (the queue runner) calls `prepare` per
variant: the config that goes to the server carries the enhanced prompt (so the image's
infotext shows what was sent) and the tags carry the original prompt and the template (so our
chunk and the learning record keep them, and learning can tell whether enhancing helps). A
down or slow LLM costs one notice: the variant runs with its original prompt. The same prompt,
template, model and seed give the same answer within a session (asked once, then reused), so
a plan's count and a re-run stay exact.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from stablenew.pipeline.cancel import CancelToken
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.records import RunTags
from stablenew.prompting.addresses import address_warning
from stablenew.prompting.client import LLMClient, TokenCallback
from stablenew.prompting.enhance import EnhanceResult, enhance_or_keep
from stablenew.prompting.errors import LLMError
from stablenew.prompting.templates import DEFAULT_TEMPLATE, ModelFamily, get_template
from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings

log = logging.getLogger("stablenew.prompting.step")


def family_for_checkpoint(name: str) -> ModelFamily:
    """The model family a checkpoint's file name suggests (SDXL when it says nothing)."""
    low = name.lower()
    for family, pattern in ((ModelFamily.flux, r"flux"), (ModelFamily.sd3, r"sd3|sd_3|stable-diffusion-3"),
                            (ModelFamily.pony, r"pony|illustrious|noobai"),
                            (ModelFamily.sd15, r"sd15|sd_15|sd-1|v1-5|1\.5"),
                            (ModelFamily.sdxl, r"xl")):
        if re.search(pattern, low):
            return family
    return ModelFamily.sdxl


@dataclass(frozen=True)
class EnhanceOptions:
    """What the user chose in Settings for enhancing before generating."""

    url: str
    model: str = ""
    api_key: str = ""
    template: str = DEFAULT_TEMPLATE
    unload_before_generate: bool = False

    @classmethod
    def from_settings(cls, settings: AppSettings) -> EnhanceOptions | None:
        """The options, or None when enhancing is off (switched off, or no LLM address)."""
        if not settings.llm_enhance or not settings.llm_url:
            return None
        return cls(settings.llm_url, settings.llm_model, settings.llm_api_key.get_secret_value(),
                   settings.llm_template or DEFAULT_TEMPLATE, settings.llm_unload_before_generate)


class PromptEnhancer:
    """Enhances each variant's prompt before its first stage; never stops a run."""

    def __init__(self, options: EnhanceOptions, *, user_templates: Path | None = None,
                 client: LLMClient | None = None) -> None:
        self.options = options
        self.user_templates = user_templates
        self.client = client or LLMClient(options.url, api_key=options.api_key)
        self.warning = address_warning(options.url)
        self._cache: dict[tuple[str, str, str, str, int | None], EnhanceResult] = {}
        self._model = options.model

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(self, config: PipelineConfig, tags: RunTags,
                       cancel: CancelToken) -> tuple[PipelineConfig, RunTags, str]:
        """The runner's prompt step (`PipelineRunner(prompt_step=...)`): enhance, then unload
        the LLM if asked; the notice says what did not happen, in plain words."""
        sent, tags, result = await self.prepare(config, tags, cancel=cancel)
        notices = [result.notice] if result.notice else []
        unloaded = await self.before_generate()
        if unloaded:
            notices.append(unloaded)
        return sent, tags, " ".join(notices)

    @classmethod
    def from_settings(cls, settings: AppSettings, paths: AppPaths) -> PromptEnhancer | None:
        """The enhancer the user's settings ask for; None when enhancing is off."""
        from stablenew.prompting.templates import user_templates_dir

        options = EnhanceOptions.from_settings(settings)
        if options is None:
            return None
        return cls(options, user_templates=user_templates_dir(paths))

    async def prepare(self, config: PipelineConfig, tags: RunTags | None = None, *,
                      cancel: CancelToken | None = None,
                      on_token: TokenCallback | None = None) -> tuple[PipelineConfig, RunTags, EnhanceResult]:
        """(the config to send, its tags, what happened); on any failure the config is the
        one given and the result's `notice` says why."""
        tags = tags or RunTags()
        prompt = config.txt2img.prompt
        family = family_for_checkpoint(config.txt2img.checkpoint)
        seed = config.txt2img.seed if config.txt2img.seed >= 0 else None
        try:
            template = get_template(self.options.template, self.user_templates)
            model = self._model or await self._first_model()
        except (KeyError, LLMError) as exc:
            error = exc if isinstance(exc, LLMError) else LLMError(
                f"{exc.args[0]} Choose one in Settings.", detail="unknown template")
            log.warning("enhance step: %s", error.message)
            return config, tags, EnhanceResult(prompt, prompt, self.options.template, error=error)
        key = (prompt, template.name, model, family.value, seed)
        result = self._cache.get(key)
        if result is None:
            result = await enhance_or_keep(self.client, prompt, template, model=model, family=family,
                                           cancel=cancel, on_token=on_token, seed=seed)
            if result.error is None:
                self._cache[key] = result
        if not result.changed:
            return config, tags, result
        txt2img = config.txt2img.model_copy(update={"prompt": result.prompt})
        sent = config.model_copy(update={"txt2img": txt2img})
        tags = dataclasses.replace(tags, original_prompt=result.original, enhance_template=result.template)
        return sent, tags, result

    async def before_generate(self) -> str:
        """Unload the LLM when the user asked (it shares the GPU); a notice when that failed."""
        if not self.options.unload_before_generate or not self._model:
            return ""
        try:
            await self.client.unload(self._model)
        except LLMError as exc:
            log.warning("enhance step: unload failed: %s (%s)", exc.message, exc.detail)
            return f"The LLM could not be unloaded before generating: {exc.message}"
        return ""

    async def _first_model(self) -> str:
        from stablenew.prompting.errors import LLMModelMissing

        models = await self.client.models()
        if not models:
            raise LLMModelMissing("The LLM server has no model loaded. Load or pull one, or choose "
                                  "it in Settings.", model="", detail="empty model list")
        self._model = models[0]
        return self._model
