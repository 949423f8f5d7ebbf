"""Models shows what the window's server has, with no folder added: its LoRAs with what their
metadata says, and its checkpoints by family (a new user whose server runs on another PC saw
"0 LoRAs and 0 checkpoints" while the server listed both)."""

from __future__ import annotations

import json

from stablenew.catalog.entry import BaseModel
from stablenew.controller.catalog_controller import CatalogController
from tests.catalog.factory import write_model
from tests.fakes.sdwebui import FakeSDWebUI

WAIT_MS = 8000
NEON_META = {"ss_output_name": "neon_v2", "ss_base_model_version": "sdxl_base_v1-0",
             "modelspec.trigger_phrase": "neonstyle",
             "ss_tag_frequency": json.dumps({"10_neon": {"neon": 3, "city": 1}})}
CHECKPOINTS = ("SD15/dreamshaper_8.safetensors", "sd_xl_base_1.0.safetensors [31e35c80fc]",
               "flux1-dev-fp8.safetensors")


def _settled(qtbot, controller: CatalogController) -> None:
    qtbot.waitUntil(lambda: not controller._tasks.busy and not controller._reading, timeout=WAIT_MS)


def _close(qtbot, controller: CatalogController) -> None:
    _settled(qtbot, controller)
    controller._quiet.stop()
    controller.wait_hashed(WAIT_MS / 1000)
    if controller._cache is not None:
        controller._cache.close()


def test_the_servers_loras_and_checkpoints_show_without_any_folder(qtbot, qloop, tmp_path):
    controller = CatalogController(tmp_path / "catalog.db", quiet_ms=50)
    try:
        controller.start()
        _settled(qtbot, controller)
        assert controller.filtered() == [] and controller.filtered(kind="checkpoint") == []
        with FakeSDWebUI(loras=("add_detail", "style/neon")).running_in_thread() as fake:
            fake.lora_metadata["style/neon"] = NEON_META
            controller.list_server("gpu1", fake.url, "a1111", CHECKPOINTS)
            qtbot.waitUntil(lambda: len(controller.filtered()) == 2, timeout=WAIT_MS)
            _settled(qtbot, controller)
            assert fake.requests_to("/sdapi/v1/loras")
        neon = controller.catalog.find("neon")
        assert neon is not None and neon.base_model is BaseModel.sdxl and neon.triggers == ["neonstyle"]
        assert neon.origin == "gpu1" and neon.category == "style"
        found = {e.name: e.base_model for e in controller.filtered(kind="checkpoint")}
        assert found == {"dreamshaper_8": BaseModel.sd1, "sd_xl_base_1.0": BaseModel.sdxl,
                         "flux1-dev-fp8": BaseModel.flux}
        # Searching finds a server's LoRA by its trigger word, like a folder's.
        assert [e.name for e in controller.filtered("neonstyle")] == ["neon"]
        assert [m.entry.name for m in controller.match("neonstyle city at night")][:1] == ["neon"]
    finally:
        _close(qtbot, controller)


def test_a_folders_file_wins_over_the_servers_listing_and_a_dead_list_keeps_the_rest(
        qtbot, qloop, tmp_path):
    write_model(tmp_path / "ckpt" / "dreamshaper_8.safetensors", None)
    controller = CatalogController(tmp_path / "catalog.db", quiet_ms=50)
    try:
        controller.add_folder(tmp_path / "ckpt", "checkpoint")
        qtbot.waitUntil(lambda: len(controller.filtered(kind="checkpoint")) == 1, timeout=WAIT_MS)
        _settled(qtbot, controller)
        # A server that does not answer its LoRA list: its checkpoints still show.
        controller.list_server("gpu2", "http://127.0.0.1:9", "a1111", CHECKPOINTS)
        qtbot.waitUntil(lambda: len(controller.filtered(kind="checkpoint")) == 3, timeout=WAIT_MS)
        _settled(qtbot, controller)
        local = controller.catalog.find("dreamshaper_8")
        assert local is not None and local.origin == "" and local.size > 0  # the folder's file
    finally:
        _close(qtbot, controller)
