"""File names, run folders, PNG metadata splicing and thumbnails."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stablenew.pipeline.outputs import (
    image_file_name,
    new_run_folder,
    png_crc_ok,
    png_with_metadata,
    slugify,
    thumbnail_path,
    write_png,
    write_thumbnail,
)
from tests.pipeline.memory_backend import png

RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
            *(f"LPT{i}" for i in range(10))}

HOSTILE = ["../../x", "..\\..\\x", "CON", "con", "NUL", "com1", "LPT9", "a" * 500,
           "🦊🔥✨", "\x00", "a\x00b", "/etc/passwd", "C:\\Windows\\system32", "", "   ",
           ".", "..", "name.", "aux.txt", "<lora:x:0.5>", "😀" * 300, "\u202e evil",
           'quote"s|pipes?*:<>']


def _assert_safe(name: str) -> None:
    assert name and len(name) <= 120
    assert "/" not in name and "\\" not in name and "\x00" not in name and ".." not in name
    assert all(c.isascii() and (c.isalnum() or c in "-.") for c in name), name
    stem = name.split(".")[0]
    assert stem.upper() not in RESERVED
    assert not name.endswith((".", " "))


@pytest.mark.parametrize("prompt", HOSTILE)
def test_hostile_prompts_make_safe_file_names(prompt, tmp_path):
    name = image_file_name(prompt, 3, 4294967295)
    _assert_safe(name)
    path = tmp_path / name
    write_png(path, png(8, 8, 1), {"parameters": prompt.replace("\x00", "")})
    assert path.parent == tmp_path and path.exists()
    folder = new_run_folder(tmp_path / "out", prompt)
    assert folder.parent == tmp_path / "out"
    _assert_safe(folder.name)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=600), st.integers(0, 9999), st.integers(0, 2**32 - 1))
def test_any_prompt_gives_a_safe_name(prompt, index, seed):
    _assert_safe(image_file_name(prompt, index, seed))
    _assert_safe(image_file_name("", index, seed, prefix=prompt))


def test_slug_keeps_words_and_drops_prompt_syntax():
    assert slugify("A (red:1.2) fox, <lora:detail:0.6> __animals__ in snow") == "a-red-fox-in-snow"
    assert slugify("Café crème") == "cafe-creme"
    assert len(slugify("word " * 100)) <= 48


def test_prefixed_names_are_deterministic_and_readable():
    name = image_file_name("a red fox in snow", 2, 111, prefix="job-7")
    assert name == image_file_name("a red fox in snow", 2, 999, prefix="job-7")  # seed-free
    assert name == "job-7-0002-a-red-fox-in-snow.png"


def test_run_folders_never_collide(tmp_path):
    names = {new_run_folder(tmp_path, "same prompt", now=0).name for _ in range(5)}
    assert len(names) == 5


def test_metadata_replaces_server_chunks_and_keeps_pixels():
    original = png(20, 10, 4, text={"parameters": "from the server", "other": "kept"})
    out = png_with_metadata(original, {"parameters": "ours — ünïcode 🦊", "stablenew": "{}"})
    assert (out.width, out.height) == (20, 10)
    assert png_crc_ok(out.data)
    with Image.open(io.BytesIO(out.data)) as img:
        assert img.info["parameters"] == "ours — ünïcode 🦊"
        assert img.info["stablenew"] == "{}" and img.info["other"] == "kept"
        with Image.open(io.BytesIO(original)) as before:
            assert img.tobytes() == before.tobytes()
    assert out.data.count(b"parameters") == 1


def test_non_png_is_converted_with_metadata():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, format="JPEG")
    out = png_with_metadata(buf.getvalue(), {"parameters": "p"})
    with Image.open(io.BytesIO(out.data)) as img:
        assert img.format == "PNG" and img.info["parameters"] == "p"


def test_garbage_image_raises_output_error():
    from stablenew.pipeline.outputs import OutputError

    with pytest.raises(OutputError):
        png_with_metadata(b"\x89PNG\r\n\x1a\n\x00\x00", {"parameters": "p"})


def test_thumbnail_is_small_and_atomic(tmp_path):
    path = tmp_path / "img.png"
    thumb = write_thumbnail(png(600, 300, 2), thumbnail_path(path))
    with Image.open(thumb) as img:
        assert max(img.size) == 256 and img.format == "JPEG"
    assert [p.name for p in thumb.parent.iterdir()] == [thumb.name]


@pytest.mark.parametrize(("mode", "size", "fmt", "expected"), [
    ("RGB", (512, 512), "PNG", (256, 256)),     # the common case: one box reduce, no resample
    ("RGB", (1024, 1536), "PNG", (171, 256)),   # reduce by 6, exact fit
    ("P", (513, 257), "PNG", (256, 128)),       # palette images cannot be reduced as they are
    ("I;16", (512, 512), "PNG", (256, 256)),
    ("LA", (300, 300), "PNG", (256, 256)),      # factor 1: resampled only
    ("L", (200, 100), "PNG", (200, 100)),       # never enlarged
    ("RGB", (1024, 1024), "JPEG", (256, 256)),  # draft decode at a reduced scale
    ("RGB", (768, 512), "WEBP", (256, 171)),
])
def test_thumbnail_of_every_mode_and_format(tmp_path, mode, size, fmt, expected):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format=fmt)
    thumb = write_thumbnail(buf.getvalue(), tmp_path / "new" / ".thumbnails" / "t.jpg")
    with Image.open(thumb) as img:
        assert img.size == expected and img.format == "JPEG" and img.mode in ("RGB", "L")
    assert [p.name for p in thumb.parent.iterdir()] == ["t.jpg"]  # no temp file left


def test_concurrent_writers_never_leave_torn_files(tmp_path):
    path = tmp_path / "same.png"
    data = [png(64, 64, i) for i in range(4)]

    def write(i: int) -> None:
        for _ in range(5):
            write_png(path, data[i], {"parameters": str(i)})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert png_crc_ok(path.read_bytes())
    assert os.listdir(tmp_path) == ["same.png"]


def test_a_thumbnail_is_kept_beside_its_image_under_its_stem_as_pathlib_reads_it():
    for name in ("a.png", "a.b.png", "a..png", "a.", ".hidden", "noext", "run 1 ★.png"):
        image = Path("/out/run-0001") / name
        expected = image.parent / ".thumbnails" / (image.stem + ".jpg")
        assert thumbnail_path(image) == expected, name
        assert thumbnail_path(str(image)) == expected, name
