"""Journey: the inspector's buttons build on an image (More like this, Use as init image,
Upscale, Regenerate refused in plain words for a picture without settings); a folder of images
other programs made is added, and they are rated and tagged like ours; two images are moved
into a folder the user types. After a restart the foreign images keep their stars, and the
moved ones are listed at their new place, still rated."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from stablenew.gallery.sidecar import read_marks
from stablenew.storage.paths import AppPaths
from tests.gallery.factory import COMFY_GRAPH, a1111_text, png
from tests.journeys.conftest import save_server
from tests.journeys.test_ratings_after_restart import star_position, type_into

WAIT = 20_000


def _row(window, key: str) -> int:
    return next(r for r, item in enumerate(window.session.gallery.items) if item.key == key)


def _click(qtbot, window, key: str, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    """Click the image's thumbnail; without a modifier, wait until the inspector shows it."""
    panel = window.gallery_panel
    index = panel.model.index(_row(window, key))
    panel.view.scrollTo(index)
    qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, modifier,
                     pos=panel.view.visualRect(index).center())
    if modifier == Qt.KeyboardModifier.NoModifier:
        qtbot.waitUntil(lambda: window.viewer.sidebar.key == key, timeout=5000)


def _press(qtbot, window, button) -> str:
    """Click an inspector button; the words said beside the buttons."""
    sidebar = window.viewer.sidebar
    sidebar.action_message.clear()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sidebar.action_message.isVisible() and bool(sidebar.action_message.text()),
                    timeout=WAIT)
    return sidebar.action_message.text()


def _choose_in_dialog(qtbot, dialog, name: str) -> None:
    """Type a folder's name (from where the dialog opened) and press Enter."""
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    name_edit = dialog.findChild(QLineEdit, "fileNameEdit")
    name_edit.clear()
    for key in name:  # at a person's pace: the dialog's list follows each key as it is typed
        qtbot.keyClick(name_edit, key)
        qtbot.wait(15)
    qtbot.keyClick(name_edit, Qt.Key.Key_Return)


def _queue_done(qtbot, window) -> None:
    queue = window.session.queue
    qtbot.waitUntil(lambda: queue is not None and queue.count == 0, timeout=WAIT)


def test_inspector_actions_foreign_ratings_and_moves_after_a_restart(qtbot, journey, fake_process):
    fake = fake_process(step_ms=5)
    save_server(fake.url)
    out = AppPaths.default().default_output_dir
    # Made by other programs, in a folder of their own beside StableNew's outputs.
    elsewhere = out.parent / "elsewhere" / "other-tools"
    a1111 = png(elsewhere / "a1111" / "00001-77.png",
                {"parameters": a1111_text("a castle in fog", seed=77, model="juggernautXL")},
                size=(64, 64))
    comfy = png(elsewhere / "comfyui" / "ComfyUI_00001_.png", {"prompt": COMFY_GRAPH},
                size=(64, 64))
    photo = out / "photos" / "holiday.png"  # copied into the output folder
    photo.parent.mkdir(parents=True)
    Image.new("RGB", (64, 64), "teal").save(photo)
    window = journey.open()
    assert window.session.app.output_dir == out
    panel, gallery, sidebar = window.gallery_panel, window.session.gallery, window.viewer.sidebar
    qtbot.waitUntil(lambda: panel.model.rowCount() == 1, timeout=WAIT)

    # The other tools' folder is added to the gallery, typed in the folder dialog.
    qtbot.mouseClick(panel.filters.filters_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.filters.add_folder_button, Qt.MouseButton.LeftButton)
    _choose_in_dialog(qtbot, panel.batch.dialog, "elsewhere/other-tools")
    qtbot.waitUntil(lambda: panel.message.text() == "Added the folder other-tools: 2 images.",
                    timeout=WAIT)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 3, timeout=WAIT)
    qtbot.mouseClick(panel.filters.filters_button, Qt.MouseButton.LeftButton)

    type_into(qtbot, window, "txt2img.prompt", "a lighthouse at dusk")
    for path, value in (("txt2img.steps", 4), ("txt2img.batch_count", 2),
                        ("txt2img.width", 64), ("txt2img.height", 64), ("txt2img.seed", 500)):
        window.pipeline_panel.editor(path).set_value(value)
    qtbot.mouseClick(window.commands.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "running", timeout=5000)
    qtbot.waitUntil(lambda: window.session.pipeline.state == "idle", timeout=30000)
    qtbot.waitUntil(lambda: panel.model.rowCount() == 5, timeout=WAIT)
    ours = sorted(i.key for i in gallery.items[:2])  # …-00001-… (seed 500), …-00002-… (501)
    qtbot.waitUntil(lambda: window.session.rooms_ready, timeout=WAIT)

    # The A1111 image: its family badge, on the tile and in the inspector; rated and tagged.
    _click(qtbot, window, str(a1111))
    assert sidebar.family_badge.isVisible() and sidebar.family_badge.text() == "SDXL"
    index = panel.model.index(_row(window, str(a1111)))
    assert index.data(panel.model.FamilyRole) == "SDXL"
    tip = index.data(Qt.ItemDataRole.ToolTipRole)
    assert "Model: juggernautXL (SDXL)" in tip and "Prompt: a castle in fog" in tip
    qtbot.mouseClick(sidebar.stars, Qt.MouseButton.LeftButton, pos=star_position(4))
    qtbot.mouseClick(sidebar.tag_buttons["nailed it"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: read_marks(a1111).rating == 4 and read_marks(a1111).tags == ("nailed it",),
                    timeout=WAIT)
    # The ComfyUI image: rated too.
    _click(qtbot, window, str(comfy))
    assert sidebar.prompt.text() == "a lighthouse in a storm", "read from its graph"
    qtbot.mouseClick(sidebar.stars, Qt.MouseButton.LeftButton, pos=star_position(2))
    qtbot.waitUntil(lambda: read_marks(comfy).rating == 2, timeout=WAIT)

    # A picture without settings: Regenerate says why not, and nothing is queued.
    _click(qtbot, window, str(photo))
    assert not sidebar.family_badge.isVisible()
    said = _press(qtbot, window, sidebar.regenerate_button)
    assert said.startswith("This image has no parameters to regenerate from: holiday.png")
    assert window.session.queue.count == 0

    # More like this on our image: three images, redrawn a little, reach the gallery.
    _click(qtbot, window, ours[0])
    said = _press(qtbot, window, sidebar.more_button)
    assert said.startswith("Queued 3 images like ") and "(seed 500)" in said
    qtbot.waitUntil(lambda: panel.model.rowCount() == 8, timeout=WAIT)
    _queue_done(qtbot, window)

    # Use as init image: the cards switch to image to image from this picture.
    _click(qtbot, window, ours[1])
    said = _press(qtbot, window, sidebar.init_button)
    assert "with its prompt and seed" in said
    cards = window.pipeline_panel
    qtbot.waitUntil(lambda: cards.editor("img2img.enabled").value() is True, timeout=5000)
    assert cards.editor("txt2img.enabled").value() is False
    init = Path(cards.editor("img2img.init_image").value())
    assert init.parent.name == "start_images" and init.read_bytes() == Path(ours[1]).read_bytes()
    assert cards.editor("txt2img.seed").value() == 501

    # Upscale: an image twice the size arrives.
    said = _press(qtbot, window, sidebar.upscale_button)
    assert said.startswith("Queued an upscale of ")
    qtbot.waitUntil(lambda: panel.model.rowCount() == 9, timeout=WAIT)
    _queue_done(qtbot, window)
    upscaled = gallery.items[0].path
    with Image.open(upscaled) as image:
        assert image.size == (128, 128)

    # Both of our first images: five stars, then moved into a folder typed in the dialog.
    _click(qtbot, window, ours[0])
    _click(qtbot, window, ours[1], Qt.KeyboardModifier.ControlModifier)
    assert panel.selected_keys() == [k for k in (i.key for i in gallery.items) if k in ours]
    qtbot.keyClick(panel.view, Qt.Key.Key_5)
    learning = window.session.learning
    qtbot.waitUntil(lambda: all(learning.read_rating(k)[0] == 5 for k in ours), timeout=WAIT)
    qtbot.waitUntil(lambda: not gallery.tasks.busy, timeout=WAIT)
    keepers = out / "keepers"
    keepers.mkdir()  # the user's folder, made beforehand
    qtbot.mouseClick(panel.batch.move_button, Qt.MouseButton.LeftButton)
    assert Path(panel.batch.dialog.directory().path()) == out, "it opens at the output folder"
    _choose_in_dialog(qtbot, panel.batch.dialog, keepers.name)
    qtbot.waitUntil(lambda: panel.message.text() == "Moved 2 images.", timeout=WAIT)
    moved = sorted(str(keepers / Path(k).name) for k in ours)
    assert all(Path(m).exists() for m in moved) and not any(Path(k).exists() for k in ours)
    qtbot.waitUntil(lambda: not gallery.tasks.busy and not gallery.actions.tasks.busy, timeout=WAIT)

    window = journey.restart()
    panel, gallery, sidebar = window.gallery_panel, window.session.gallery, window.viewer.sidebar
    qtbot.waitUntil(lambda: panel.model.rowCount() == 9, timeout=WAIT)
    shown = {i.key: (i.rating, i.tags) for i in gallery.items}
    assert shown[str(a1111)] == (4, ("nailed it",)), "a foreign image's rating is kept"
    assert shown[str(comfy)] == (2, ())
    assert [shown.get(m) for m in moved] == [(5, ()), (5, ())], "moved, and still rated"
    assert not any(k in shown for k in ours)
    assert panel.model.index(_row(window, str(a1111))).data(Qt.ItemDataRole.DisplayRole) == "★★★★"
    _click(qtbot, window, moved[0])
    assert sidebar.stars.stars == 5
    _click(qtbot, window, str(a1111))
    assert sidebar.stars.stars == 4 and sidebar.tag_buttons["nailed it"].isChecked()

