"""InsightsController: what the ratings say (per pack), the recommended preset made of it, and
the export of the learning records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from stablenew.controller.errors import ErrorInfo
from stablenew.learning.export import ExportSummary, ImageMode, export_bundle
from stablenew.learning.insights import Insights, RecommendedPreset, build_insights, recommend
from stablenew.learning.store import LearningStore
from stablenew.pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from stablenew.controller.learning_controller import LearningController

ALL_PACKS = None  # the insights pack selector's "all packs" choice


class InsightsController(QObject):
    """Insights, the recommendation and export of a LearningController's store, off the Qt thread."""

    insights_changed = Signal(object)  # Insights
    recommendation_changed = Signal(object)  # RecommendedPreset
    packs_changed = Signal(list)  # list[str]; "" is "images without a pack"
    export_finished = Signal(object)  # ExportSummary
    preset_saved = Signal(str)  # path of the saved preset

    def __init__(self, learning: LearningController,
                 base_config: Callable[[], PipelineConfig]) -> None:
        super().__init__(learning)
        self._learning = learning
        self._base_config = base_config
        self._pack: str | None = ALL_PACKS
        self._insights: Insights | None = None
        self._recommendation: RecommendedPreset | None = None
        self._refreshing = False
        self._refresh_again = False

    @property
    def current(self) -> Insights | None:
        """The insights last computed (None before the first refresh)."""
        return self._insights

    @property
    def recommendation(self) -> RecommendedPreset | None:
        return self._recommendation

    @property
    def pack(self) -> str | None:
        return self._pack

    def set_pack(self, pack: str | None) -> None:
        """Show insights for one pack ("" for images without a pack) or None for all."""
        self._pack = pack
        self.refresh_insights()

    def refresh_insights(self) -> None:
        """Recompute insights off the Qt thread; bursts of ratings coalesce into one refresh."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self._learning.tasks.spawn(self._refresh(), name="learning-insights")

    async def _refresh(self) -> None:
        try:
            while True:
                self._refresh_again = False
                pack = self._pack
                insights, packs, recommendation = await self._learning.worker.call(
                    _compute_insights, pack)
                if not self._refresh_again:
                    break
        finally:
            self._refreshing = False
        self._insights = insights
        self._recommendation = recommendation
        self.packs_changed.emit(packs)
        self.insights_changed.emit(insights)
        self.recommendation_changed.emit(self._recommendation)

    def preview_recommendation(self, base: PipelineConfig | None = None) -> PipelineConfig | None:
        """The current settings with the recommended values set — for showing, not applying."""
        if self._recommendation is None or self._recommendation.empty:
            return None
        return self._recommendation.apply_to(base if base is not None else self._base_config())

    def save_recommended_preset(self, name: str) -> None:
        """Save the recommendation as a user preset named *name* (only when asked to)."""
        recommendation = self._recommendation
        if recommendation is None or recommendation.empty:
            self._learning.show_error(ErrorInfo("There is no recommendation to save yet: rate "
                                                "more images or run a learning run first.",
                                                source="Learning"))
            return

        async def _save() -> None:
            from stablenew.pipeline.presets import PresetStore

            preset = recommendation.to_preset(name)
            path = await asyncio.to_thread(lambda: PresetStore().save(preset, replace=False))
            self.preset_saved.emit(str(path))
        self._learning.tasks.spawn(_save(), name="learning-save-preset")

    def export(self, path: str | Path, *, copies: bool = False, pack: str | None = None,
               rated_only: bool = False) -> None:
        """Write the export zip in the background; `export_finished` says what went in."""
        mode = ImageMode.copies if copies else ImageMode.paths
        db_path = self._learning.database

        def _write() -> ExportSummary:
            # Its own connection and thread: a long export (image copies) must not hold up
            # ratings, which go through the store's single writer thread meanwhile.
            with LearningStore(db_path) as store:
                return export_bundle(store, Path(path), pack=pack, rated_only=rated_only,
                                     images=mode)

        async def _export() -> None:
            # Writes queued before the export land first.
            await self._learning.worker.call(lambda store: None)
            summary = await asyncio.to_thread(_write)
            self.export_finished.emit(summary)
        self._learning.tasks.spawn(_export(), name="learning-export")


def _compute_insights(store: LearningStore, pack: str | None
                      ) -> tuple[Insights, list[str], RecommendedPreset]:
    """Insights, the packs, and the recommendation with the taste model's confidence in each
    value (as `learning recommend` prints it); on the store's worker thread."""
    from stablenew.learning.taste import fit_taste

    insights = build_insights(store.stats(pack), store.tag_counts(pack), pack,
                              store.fair_stats(pack))
    model = fit_taste(store, pack)

    def confidence(parameter: str, value: str) -> float | None:
        effect = model.parameter(parameter)
        return effect.confidence_of(value) if effect is not None else None

    return insights, store.packs(), recommend(insights, confidence)
