"""PreviewDecoder: the viewer's pictures decoded one at a time, the newest waiting; a saved
result is never lost to, nor pushed aside by, the live frames around it."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from stablenew.controller.preview_decoder import PreviewDecoder


def _png(width: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, 8), (9, 9, 9)).save(out, "PNG")
    return out.getvalue()


def _spawn(coro, *, name=""):
    return asyncio.get_running_loop().create_task(coro, name=name)


async def test_a_result_saved_while_a_frame_decodes_is_shown_and_no_later_frame_pushes_it_aside(
        tmp_path):
    shown: list[tuple[int, bool]] = []
    decoder = PreviewDecoder[bool](_spawn, lambda image, live: shown.append((image.width, live)))
    result = tmp_path / "result.png"
    result.write_bytes(_png(64))
    decoder.show(_png(16), True)  # step 29's frame: being decoded
    await asyncio.sleep(0)
    decoder.show(_png(17), True)  # step 30's frame: waits
    decoder.show(result, False)  # the saved image: waits instead of the frame
    decoder.show(_png(18), True)  # a frame come late: the result keeps its place
    await decoder.wait()
    assert shown == [(16, True), (64, False)]
    decoder.show(_png(20), True)  # the next image's frames go on as before
    await asyncio.sleep(0)
    decoder.show(_png(21), True)
    decoder.show(_png(22), True)  # newer than 21, which was still waiting: only 22 is shown
    await decoder.wait()
    assert shown[2:] == [(20, True), (22, True)]


async def test_a_broken_frame_is_skipped_and_the_next_one_shown():
    shown: list[str] = []
    decoder = PreviewDecoder[str](_spawn, lambda image, caption: shown.append(caption))
    decoder.show(_png(16), "first")
    await asyncio.sleep(0)
    decoder.show(b"not a picture", "broken")
    await decoder.wait()
    decoder.show(_png(16), "after")
    await decoder.wait()
    assert shown == ["first", "after"]


def test_a_live_frame_decoded_after_the_run_ended_is_not_shown_as_its_result(qtbot):
    """The last frames may finish decoding once the Run is over: the viewer keeps the result
    (they were shown captioned "Latest result" over it)."""
    from dataclasses import replace
    from pathlib import Path

    from stablenew.controller.images import decode_image
    from stablenew.controller.pipeline_controller import PipelineController
    from stablenew.controller.run_progress import RunState

    controller = PipelineController(None, Path)
    try:
        shown: list[bool] = []
        controller.preview_changed.connect(lambda _image, live: shown.append(live))
        frame = decode_image(_png(16))
        controller._progress = replace(controller.progress, state=RunState.running)
        controller._preview_decoded(frame, True)
        controller._progress = replace(controller.progress, state=RunState.idle)
        controller._preview_decoded(frame, True)  # late: dropped
        controller._preview_decoded(decode_image(_png(64)), False)  # a saved image: always shown
        assert shown == [True, False]
    finally:
        controller.deleteLater()
