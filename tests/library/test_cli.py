"""`stablenew preset …` and `stablenew pack …` as a user runs them headless."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stablenew.cli import main
from stablenew.storage.paths import AppPaths
from tests.library.conftest import snapshot, write_bad_files

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_a_good_preset_prints_one_line(capsys):
    code, out, err = run(capsys, "preset", "validate", str(ROOT / "resources/presets/sdxl-quality.yaml"))
    assert code == 0 and err == ""
    assert out.count("\n") == 1 and out.startswith("OK: ") and "'SDXL quality'" in out


def test_validate_reports_file_line_field_and_reason(tmp_path: Path, capsys):
    file = tmp_path / "bad.yaml"
    file.write_text("version: 1\nname: x\nconfig:\n  txt2img:\n    steps: 900\n    cfg_scale: abc\n",
                    encoding="utf-8")
    code, out, err = run(capsys, "preset", "validate", str(file))
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == (f"error: {file}, line 5, field 'config.txt2img.steps': "
                        "Steps must be between 1 and 150.")
    assert lines[1] == f"error: {file}, line 6, field 'config.txt2img.cfg_scale': CFG scale must be a number."


def test_every_bad_file_fails_validate_and_import_touching_nothing(tmp_path: Path, capsys):
    files = write_bad_files(tmp_path / "bad", wrong_types="version: 1\nname: W\ntags: 3\n")
    before = snapshot(list(files.values()))
    presets = AppPaths.default().presets_dir
    for path in files.values():
        code, _out, err = run(capsys, "preset", "validate", str(path))
        assert code == 1 and str(path) in err
        code, _out, err = run(capsys, "preset", "import", str(path))
        assert code == 1 and "Nothing was imported" in err
    assert not presets.exists() or not any(presets.iterdir())
    assert snapshot(list(files.values())) == before


def test_unknown_sampler_warns_and_strict_fails(tmp_path: Path, capsys):
    file = tmp_path / "s.yaml"
    file.write_text("version: 1\nname: S\nconfig:\n  txt2img:\n    sampler: Eular a\n", encoding="utf-8")
    code, out, err = run(capsys, "preset", "validate", str(file))
    assert code == 0 and out.startswith("OK")
    assert f"warning: {file}, line 5, field 'config.txt2img.sampler'" in err and "'Euler a'" in err
    code, out, err = run(capsys, "preset", "validate", "--strict", str(file))
    assert code == 1 and out == ""


def test_import_copies_into_the_user_folder_and_refuses_duplicates(capsys):
    source = ROOT / "tests/data/library/preset-v0.yaml"
    code, out, _err = run(capsys, "preset", "import", str(source))
    target = AppPaths.default().presets_dir / "Old portrait.yaml"
    assert code == 0 and str(target) in out
    assert target.read_bytes() == source.read_bytes()
    code, _out, err = run(capsys, "preset", "import", str(source))
    assert code == 1 and "--replace" in err
    assert run(capsys, "preset", "import", "--replace", str(source))[0] == 0
    code, out, _err = run(capsys, "preset", "list")
    assert code == 0 and "Old portrait\tuser" in out and "SDXL quality\tshipped" in out


def test_list_flags_broken_presets(capsys):
    folder = AppPaths.default().presets_dir
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text("version: 1\nname: [\n", encoding="utf-8")
    code, out, _err = run(capsys, "preset", "list")
    assert code == 1 and "BROKEN broken" in out and "not valid YAML" in out


def test_import_styles_makes_one_preset_per_style(capsys):
    code, out, _err = run(capsys, "preset", "import-styles", str(ROOT / "tests/data/library/styles.csv"))
    assert code == 0 and out.count("Imported style") == 3
    assert (AppPaths.default().presets_dir / "Cinematic.yaml").exists()
    assert run(capsys, "preset", "import-styles", str(ROOT / "tests/data/library/styles.csv"))[0] == 1


def test_pack_validate_and_list(tmp_path: Path, capsys):
    good = tmp_path / "packs" / "cats.txt"
    good.parent.mkdir()
    good.write_text("a cat\na dog\n", encoding="utf-8")
    code, out, _err = run(capsys, "pack", "validate", str(good))
    assert code == 0 and out.strip() == f"OK: {good}: pack 'cats' with 2 prompts"
    bad = tmp_path / "packs" / "bad.yaml"
    bad.write_text("version: 1\nname: B\nprompts: []\n", encoding="utf-8")
    code, _out, err = run(capsys, "pack", "validate", str(bad))
    assert code == 1 and f"{bad}, line 3, field 'prompts'" in err
    code, out, _err = run(capsys, "pack", "list", "--folder", str(good.parent))
    assert code == 1 and "cats\ttext\t2 prompts" in out and "BROKEN bad" in out


@pytest.mark.parametrize("verb", ["preset", "pack"])
def test_commands_run_as_a_real_process(tmp_path: Path, verb: str):
    target = ROOT / ("resources/presets/sd15-quick-draft.yaml" if verb == "preset"
                     else "tests/data/library/pack-v0.yaml")
    done = subprocess.run([sys.executable, "-m", "stablenew", verb, "validate", str(target)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "STABLENEW_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: ")


def test_pack_validate_reads_every_prompt_with_the_randomizer(tmp_path: Path, capsys):
    pack = tmp_path / "p.txt"
    pack.write_text("a {red|blue} kite\na {green kite\n", encoding="utf-8")
    code, out, err = run(capsys, "pack", "validate", str(pack))
    assert code == 1 and out == ""
    assert err.startswith(f"error: {pack}, line 2: Prompt 2: ") and "never closed" in err


def test_pack_list_reads_the_packs_folder_in_settings(tmp_path: Path, capsys):
    from stablenew.storage.settings import AppSettings, save_settings

    folder = tmp_path / "my packs"
    folder.mkdir()
    (folder / "cats.txt").write_text("a cat\n", encoding="utf-8")
    save_settings(AppPaths.default(), AppSettings(packs_dir=str(folder)))
    code, out, _err = run(capsys, "pack", "list")
    assert code == 0 and "cats\ttext\t1 prompts" in out
