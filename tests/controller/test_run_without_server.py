"""Run on a PipelineController made without a server (the card table tool, a test) says so in
plain words; typing its collaborators showed the Run reaching through None for the server."""

from __future__ import annotations

from stablenew.controller.pipeline_controller import PipelineController


async def test_run_without_a_server_says_so_in_plain_words(qapp, tmp_path):
    controller = PipelineController(None, lambda: tmp_path / "out")
    try:
        assert controller.run(controller.default_values())
        await controller.wait_idle(5)
        error = controller.error
        assert error is not None
        assert error.message == "There is no server to run on. Set one up in Settings."
        assert "NoneType" not in error.message
        assert controller.state == "idle"
        assert not (tmp_path / "out").exists()  # nothing was queued or written
    finally:
        controller.deleteLater()
