"""Journey: trending combos fetched once are there after a restart, without asking the site,
and with the site gone a Fetch keeps the list and says how old it is."""

from __future__ import annotations

import json
import socket
import time

import pytest
from PySide6.QtCore import Qt

from stablenew.storage.paths import AppPaths
from stablenew.storage.settings import AppSettings, save_settings
from tests.catalog.factory import SD1_KEYS, write_model
from tests.fakes.civitai import FakeCivitai, wild_items


@pytest.fixture
def dead_url():
    """An address on 127.0.0.1 where nothing listens (the SD server is not part of this journey)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_the_trending_list_survives_a_restart_and_the_site_going_away(qtbot, journey, tmp_path, dead_url):
    loras = tmp_path / "Lora"
    write_model(loras / "NeonGlow_v2.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x05")
    write_model(loras / "add_detail.safetensors", {"ss_base_model_version": "sd_v1"}, SD1_KEYS,
                tensor_bytes=64, fill=b"\x06")
    with FakeCivitai().running_in_thread() as civitai:
        save_settings(AppPaths.default(), AppSettings(server_url=dead_url, civitai_url=civitai.url))
        window = journey.open(connect=False)
        catalog = window.session.catalog
        catalog.add_folder(loras)
        qtbot.waitUntil(lambda: (e := catalog.catalog.find("NeonGlow_v2")) is not None and bool(e.sha256),
                        timeout=10000)
        civitai.items = wild_items(civitai, neon_hash=catalog.catalog.find("NeonGlow_v2").autov3,
                                   detail_hash="ffffffffffff")
        panel = window.trending_panel
        window.work_tabs.setCurrentWidget(panel)
        qtbot.mouseClick(panel.fetch_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.list.count() == 3, timeout=10000)
        qtbot.waitUntil(lambda: all(not panel.list.item(r).icon().isNull() for r in range(3)), timeout=10000)
        asked = len(civitai.requests)
        window = journey.restart(connect=False)
        qtbot.waitUntil(lambda: window.trending_panel.list.count() == 3, timeout=10000)
        assert len(civitai.requests) == asked  # the list and its thumbnails come from the cache
    # The site is gone now. Two hours pass.
    answers = AppPaths.default().data_dir / "community" / "answers"
    for file in answers.glob("*.json"):
        stored = json.loads(file.read_text())
        stored["fetched_at"] -= 2 * 3600
        file.write_text(json.dumps(stored))

    window = journey.restart(connect=False)
    panel = window.trending_panel
    qtbot.waitUntil(lambda: panel.list.count() == 3, timeout=10000)  # from the cache, LoRAs resolved
    assert panel.status.text().startswith("8 images fetched 2 hours ago")
    started = time.monotonic()
    qtbot.mouseClick(panel.fetch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cannot be reached" in panel.status.text(), timeout=10000)
    assert time.monotonic() - started < 10
    assert "Showing the 8 images fetched 2 hours ago." in panel.status.text()
    assert panel.list.count() == 3
