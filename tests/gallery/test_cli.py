"""`stablenew gallery scan|search` on a generated folder, text and JSON."""

from __future__ import annotations

import json

from stablenew.cli import main
from tests.gallery.factory import a1111_text, png


def test_scan_then_search(tmp_path, capsys, isolated_home):
    out = tmp_path / "pictures"
    png(out / "run1" / "a.png", {"parameters": a1111_text("a cyberpunk cat <lora:neon:0.7>")})
    png(out / "run1" / "b.png", {"parameters": a1111_text("a quiet lake", model="dreamshaper")})
    (out / "run1" / "c.png").write_text("not an image")
    assert main(["gallery", "scan", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Indexed 3 images in 1 folder: 2 read" in text
    assert "Could not read 1 file:" in text and "c.png" in text

    assert main(["gallery", "search", "cyberpunk", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["total"] == 1 and found["images"][0]["loras"] == ["neon"]
    assert main(["gallery", "search", "--model", "dreamshaper"]) == 0
    assert "1 image matches:" in capsys.readouterr().out
    assert main(["gallery", "search", "--lora", "neon", "--min-rating", "1"]) == 0
    assert "No images match." in capsys.readouterr().out

    # without DIR: every folder indexed before (the output folder does not exist here)
    (out / "run1" / "b.png").unlink()
    assert main(["gallery", "scan", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["folders"] == [str(out)]
    assert (again["read"], again["unchanged"], again["removed"]) == (0, 1, 1)


def test_bad_arguments(tmp_path, capsys):
    assert main(["gallery", "scan", str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert main(["gallery", "search", "x", "--min-rating", "9"]) == 1
    assert "1 to 5" in capsys.readouterr().err
