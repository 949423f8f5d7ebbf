"""Fixtures of the library room: sample files and the bad files every format must survive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "library"

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
name: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


def write_bad_files(folder: Path, *, wrong_types: str) -> dict[str, Path]:
    """One file per kind of damage; *wrong_types* is valid YAML with a wrongly typed field."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "invalid_yaml": folder / "invalid.yaml",
        "wrong_types": folder / "wrong-types.yaml",
        "huge": folder / "huge.yaml",
        "binary": folder / "binary.yaml",
        "bomb": folder / "bomb.yaml",
    }
    files["invalid_yaml"].write_text("version: 1\nname: Broken\n\tconfig: 3\n",
                                     encoding="utf-8")
    files["wrong_types"].write_text(wrong_types, encoding="utf-8")
    files["huge"].write_bytes(b"# padding\n" * 1_048_576)  # 10 MB
    files["binary"].write_bytes(bytes(range(256)) * 64)
    files["bomb"].write_text(BILLION_LAUGHS, encoding="utf-8")
    return files


def snapshot(paths: list[Path]) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A private copy of tests/data/library, so no test can change the originals."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target
