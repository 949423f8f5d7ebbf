"""What a room's panel needs from the rest of the window once it has taken its slot."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

    from stablenew.gui.main_window import MainWindow

#: The window attribute holding each room's panel (its slot until the room opens).
ROOM_ATTRIBUTES = {"library": "sidebar", "randomizer": "variants_panel", "queue": "queue_panel",
                   "learning": "learning_panel", "nodes": "nodes_panel",
                   "catalog": "models_panel", "trending": "trending_panel",
                   "funnel": "funnel_panel"}


def join_room(window: MainWindow, name: str, panel: QWidget) -> None:
    """Connect a newly opened room's panel to the others (the window's own setup aside)."""
    session = window.bound_session
    if name == "learning" and session.taste is not None and hasattr(panel, "add_taste"):
        panel.add_taste(session.taste)  # "Which is better?", and the packs a run chooses from
    elif name == "catalog" and session.catalog is not None:
        # "Try this LoRA" runs in the learning room: show it there.
        session.catalog.learning_run_started.connect(
            lambda _name: window.work_tabs.setCurrentWidget(window.learning_panel))
