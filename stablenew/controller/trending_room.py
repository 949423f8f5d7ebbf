"""The Trending room's place in a session: its controller wired to the cards, the catalog,
the queue and the window's server (kept out of session.py, which is long enough)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from stablenew.controller.trending_controller import TrendingController

if TYPE_CHECKING:
    from stablenew.controller.session_rooms import SessionRooms

log = logging.getLogger("stablenew.controller")


def open_trending(session: SessionRooms) -> TrendingController:
    """The Trending room's controller for *session*, joined to the rooms it uses."""
    app = session.app
    trending = TrendingController(app.paths.data_dir / "community", lambda: app.settings,
                                  parent=session, catalog=lambda: session.catalog,
                                  packs_folder=lambda: app.settings.packs_path(app.paths))
    trending.set_targets(session.pipeline.current_config, session.pipeline.load_config,
                         session.queue_trending)
    trending.message_changed.connect(session.pipeline.message_changed)
    trending.error_changed.connect(session._forward_error)
    if session.catalog is not None:  # hashes arriving, a new folder: LoRAs resolve anew
        session.catalog.entries_changed.connect(trending.regroup)
    session.pipeline.cards_changed.connect(trending.card_changed)  # another model family
    trending.lora_downloaded.connect(
        lambda _path: session.tasks.spawn(server_reads_loras(session), name="refresh-loras"))
    return trending


async def server_reads_loras(session: SessionRooms) -> None:
    """A LoRA was downloaded: A1111 and Forge list only the LoRAs they read at start, so the
    window's server reads its folder again, and the probe that follows lists it there."""
    from stablenew.backends.errors import BackendError
    from stablenew.backends.http import HttpClient
    from stablenew.catalog.servers import a1111_refresh_loras

    settings = session.app.settings
    http = HttpClient(settings.server_url, auth=(settings.username, settings.password)
                      if settings.username else None)
    try:
        await a1111_refresh_loras(http)
    except BackendError as exc:  # ComfyUI has no such call and reads its folders itself
        log.info("refresh-loras on %s: %s", settings.server_url, exc.detail or exc)
    finally:
        await http.aclose()
    session.server.reconnect()
