"""The other rooms' panels (library, randomizer, queue, learning) and the slot shown until they open."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QFrame, QLabel, QTabWidget, QVBoxLayout, QWidget

log = logging.getLogger("stablenew.gui")


class PanelSlot(QFrame):
    """Where another room's panel goes; says what will be there until that panel is installed."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("PanelSlot")
        heading = QLabel(title)
        heading.setObjectName("PanelTitle")
        body = QLabel(text)
        body.setObjectName("MutedLabel")
        body.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(heading)
        layout.addWidget(body)
        layout.addStretch(1)


def add_later_tabs(tabs: QTabWidget) -> tuple[PanelSlot, PanelSlot]:
    """The Trending and Funnel tabs' slots, added to the window's work *tabs*."""
    trending = PanelSlot("Trending", "The community's top images from CivitAI and the LoRA "
                         "combos behind them that you can run.")
    tabs.addTab(trending, "Trending")
    funnel = PanelSlot("Funnel", "From one prompt: many quick drafts, then you pick the best to "
                       "refine, polish and upscale — each step on the nodes that suit it.")
    tabs.addTab(funnel, "Funnel")
    return trending, funnel


def make_room_panel(name: str, controller: object) -> QWidget | None:
    """The room's own panel, or None while its controller or panel is not in this build
    (*controller* is the room's own: its factory below knows which class it is)."""
    factory = _PANEL_FACTORIES.get(name)
    if controller is None or factory is None:
        return None
    try:
        return factory(controller)
    except ImportError:
        return None
    except Exception as exc:  # one room's broken panel must not keep the window from opening
        log.exception("the %s panel failed to open", name)
        return PanelSlot(name.capitalize(), f"This panel could not be opened: {exc}")


def _library_panel(controller):
    from stablenew.gui.panels.library_panel import LibraryPanel

    return LibraryPanel(controller)


def _randomizer_panel(adapter):
    from stablenew.gui.panels.randomizer_panel import RandomizerPanel

    return RandomizerPanel(adapter)


def _queue_panel(controller):
    from stablenew.gui.panels.queue_panel import QueuePanel

    return QueuePanel(controller)


def _learning_panel(controller):
    from stablenew.gui.panels.learning_panel import LearningPanel

    return LearningPanel(controller)


def _nodes_panel(controller):
    from stablenew.gui.panels.nodes_panel import NodesPanel

    return NodesPanel(controller)


def _models_panel(controller):
    from stablenew.gui.panels.models_panel import ModelsPanel

    return ModelsPanel(controller)


def _trending_panel(controller):
    from stablenew.gui.panels.trending_panel import TrendingPanel

    return TrendingPanel(controller)


def _funnel_panel(controller):
    from stablenew.gui.panels.funnel_panel import FunnelPanel

    return FunnelPanel(controller)


_PANEL_FACTORIES = {"library": _library_panel, "randomizer": _randomizer_panel,
                    "queue": _queue_panel, "learning": _learning_panel, "nodes": _nodes_panel,
                    "catalog": _models_panel, "trending": _trending_panel,
                    "funnel": _funnel_panel}
