"""Presets: round-trip, migration, bad files, shipped defaults and every store operation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.presets import (
    LibraryError,
    Preset,
    PresetStore,
    Source,
    file_stem,
    load_preset,
    parse_preset,
)
from stablenew.pipeline.styles import PromptStyle
from stablenew.storage.documents import DocumentError
from tests.library.conftest import snapshot, write_bad_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> PresetStore:
    return PresetStore(tmp_path / "user")


def test_round_trip_keeps_every_field(store: PresetStore):
    config = PipelineConfig().with_changes({
        "txt2img.steps": 33, "txt2img.sampler": "Euler a", "txt2img.hires.enabled": True,
        "txt2img.hires.scale": 1.5, "adetailer.enabled": True, "upscale.scale": 1.25,
        "txt2img.prompt": "a red fox", "txt2img.seed": 1234,
    })
    preset = Preset.from_config("Fox", config, description="d", tags=["a", "b"], include_prompts=True,
                                include_seed=True)
    preset = preset.model_copy(update={"styles": [PromptStyle(name="S", prompt="{prompt}, oil")]})
    path = store.save(preset)
    loaded, warnings = load_preset(path)
    assert warnings == []
    assert loaded == preset
    assert loaded.to_yaml() == preset.to_yaml()
    # Applied over anything, a full preset reproduces the config it was saved from.
    other = PipelineConfig().with_changes({"txt2img.steps": 5, "img2img.enabled": True})
    applied = loaded.apply_to(other)
    assert applied.model_dump(exclude={"txt2img": {"prompt"}}) == config.model_dump(
        exclude={"txt2img": {"prompt"}})
    assert applied.txt2img.prompt == "a red fox, oil"
    assert loaded.apply_to(applied).txt2img.prompt == "a red fox, oil"  # style not stacked twice


def test_partial_preset_only_changes_its_fields():
    text = "version: 1\nname: Steps\nconfig:\n  txt2img:\n    steps: 42\n"
    preset, _ = parse_preset(text)
    current = PipelineConfig().with_changes({"txt2img.prompt": "kept", "txt2img.cfg_scale": 4.5})
    applied = preset.apply_to(current)
    assert (applied.txt2img.steps, applied.txt2img.prompt, applied.txt2img.cfg_scale) == (42, "kept", 4.5)
    assert preset.to_yaml() == text  # nothing but what it sets is written


def test_saved_preset_without_prompts_keeps_the_users_prompt():
    config = PipelineConfig().with_changes({"txt2img.prompt": "old", "txt2img.seed": 77})
    preset = Preset.from_config("No prompt", config)
    assert "prompt" not in preset.partial()["txt2img"] and "seed" not in preset.partial()["txt2img"]
    assert preset.apply_to(PipelineConfig().with_changes({"txt2img.prompt": "mine"})).txt2img.prompt == "mine"


def test_v0_preset_migrates(data_dir: Path):
    preset, warnings = load_preset(data_dir / "preset-v0.yaml")
    assert warnings == []
    assert preset.version == 1 and preset.name == "Old portrait"
    assert preset.description == "Written by the prototype."
    applied = preset.apply_to(PipelineConfig())
    assert (applied.txt2img.steps, applied.txt2img.cfg_scale, applied.txt2img.sampler) == (25, 6.5, "Euler a")
    assert (applied.txt2img.width, applied.txt2img.height) == (640, 896)
    assert applied.upscale.enabled and applied.upscale.scale == 1.5


def test_newer_format_is_refused_with_a_plain_reason():
    with pytest.raises(DocumentError) as err:
        parse_preset("version: 9\nname: Future\n", "future.yaml")
    assert "newer StableNew" in str(err.value) and err.value.field == "version"


def test_shipped_presets_are_valid_sensible_and_read_only(store: PresetStore):
    entries = store.entries()
    names = {e.name for e in entries}
    assert {"SD1.5 quick draft", "SDXL quality", "SDXL + hires + ADetailer faces"} <= names
    for entry in entries:
        assert entry.source is Source.shipped and not entry.broken and entry.warnings == ()
        entry.item.apply_to(PipelineConfig())
    faces = store.find("SDXL + hires + ADetailer faces").item.apply_to(PipelineConfig())
    assert faces.txt2img.hires.enabled and faces.adetailer.enabled
    assert faces.final_size(faces.txt2img.width, faces.txt2img.height) == (1248, 1824)
    assert store.find("SDXL quality").item.apply_to(PipelineConfig()).txt2img.width == 1024

    shipped = [e.path for e in entries]
    before = snapshot(shipped)
    quality = store.find("SDXL quality")
    with pytest.raises(LibraryError, match="Duplicate it first"):
        store.rename(quality, "Mine")
    with pytest.raises(LibraryError, match="ships with StableNew"):
        store.delete(quality)
    # Saving under a shipped name writes the user's own copy, which then wins in find().
    changed = quality.item.model_copy(update={"description": "my version"})
    path = store.save(changed)
    assert path.parent == store.user_dir
    assert store.find("SDXL quality").source is Source.user
    assert snapshot(shipped) == before


def test_unknown_sampler_is_a_warning_with_line_field_and_suggestion(tmp_path: Path):
    file = tmp_path / "typo.yaml"
    file.write_text("version: 1\nname: Typo\nconfig:\n  txt2img:\n    steps: 20\n"
                    "    sampler: DPM++ 2M Karas\n  img2img:\n    scheduler: Karras\n", encoding="utf-8")
    preset, warnings = load_preset(file)
    assert preset.name == "Typo"
    assert len(warnings) == 1
    text = str(warnings[0])
    assert str(file) in text and "line 6" in text and "config.txt2img.sampler" in text
    assert "Did you mean 'DPM++ 2M Karras'" in text
    # Old combined names and every A1111 sampler are known.
    for name in ("DPM++ 2M Karras", "Euler a", "DPM++ SDE Exponential", "UniPC"):
        assert parse_preset(f"name: x\nversion: 1\nconfig:\n  txt2img:\n    sampler: {name}\n")[1] == []


WRONG_TYPES = "version: 1\nname: Wrong\nconfig:\n  txt2img:\n    steps: lots\n"


def test_every_kind_of_bad_file_is_listed_broken_with_a_clear_error(store: PresetStore):
    files = write_bad_files(store.user_dir, wrong_types=WRONG_TYPES)
    before = snapshot(list(files.values()))
    entries = {e.path.name: e for e in store.entries() if e.source is Source.user}
    assert set(entries) == {p.name for p in files.values()}
    for entry in entries.values():
        assert entry.broken and entry.error is not None
        assert str(entry.path) in str(entry.error)
    assert "not valid YAML" in entries["invalid.yaml"].error.reason
    assert entries["invalid.yaml"].error.line == 3
    wrong = entries["wrong-types.yaml"].error
    assert (wrong.line, wrong.field) == (5, "config.txt2img.steps")
    assert "Steps must be a whole number" in wrong.reason
    assert "MB" in entries["huge.yaml"].error.reason
    assert "binary" in entries["binary.yaml"].error.reason
    assert "billion laughs" in entries["bomb.yaml"].error.reason
    # Listing, importing or validating never touches a bad file.
    for path in files.values():
        with pytest.raises(DocumentError):
            store.import_file(path, replace=True)
    assert snapshot(list(files.values())) == before
    # A broken user file can still be deleted (into the trash) and brought back.
    ticket = store.delete(entries["bomb.yaml"])
    assert not files["bomb"].exists()
    assert store.undo_delete(ticket) == files["bomb"]
    assert snapshot(list(files.values())) == before | {files["bomb"]: (before[files["bomb"]][0],
                                                                       files["bomb"].stat().st_mtime_ns)}


def test_invalid_preset_is_not_saved_and_the_old_file_survives(store: PresetStore, monkeypatch):
    good = store.save(Preset(name="Keep", config={"txt2img": {"steps": 12}}))
    before = snapshot([good])
    partial = Preset.model_fields["config"].annotation
    txt2img = partial.model_fields["txt2img"].annotation.__args__[0].model_construct(steps=9999)
    bad = Preset.model_construct(name="Keep", config=partial.model_construct(txt2img=txt2img))
    with pytest.raises(LibraryError, match="was not saved"):
        store.save(bad)
    assert snapshot([good]) == before

    # A crash during the write (disk full, power cut) leaves the old file whole.
    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        store.save(Preset(name="Keep", config={"txt2img": {"steps": 13}}))
    monkeypatch.undo()
    assert snapshot([good]) == before
    assert [p.name for p in store.user_dir.iterdir() if not p.name.startswith(".stablenew")] == ["Keep.yaml"]


def test_rename_duplicate_delete_undo(store: PresetStore):
    store.save(Preset(name="Alpha", config={"txt2img": {"steps": 11}}))
    store.save(Preset(name="Beta"))
    alpha = store.find("Alpha")
    with pytest.raises(LibraryError, match="already exists"):
        store.rename(alpha, "Beta")
    new_path = store.rename(alpha, "Gamma")
    assert not alpha.path.exists() and new_path.name == "Gamma.yaml"
    gamma = store.find("Gamma")
    assert gamma.item.partial() == {"txt2img": {"steps": 11}}

    copy_path = store.duplicate(gamma)
    assert store.find("Gamma (copy)").path == copy_path
    assert store.find("Gamma (copy 2)") is None
    store.duplicate(gamma)
    assert store.find("Gamma (copy 2)") is not None
    shipped_copy = store.duplicate(store.find("SDXL quality"))
    assert shipped_copy.parent == store.user_dir

    ticket = store.delete(gamma)
    assert store.find("Gamma") is None and ticket.trashed.exists()
    assert ticket.trashed.parent == store.trash_dir
    store.save(Preset(name="Gamma", description="new one"))
    restored = store.undo_delete(ticket)
    assert restored.name == "Gamma (2).yaml"  # the new file of that name is not overwritten
    assert store.find("Gamma").item.description == "new one"
    assert load_preset(restored)[0].partial() == {"txt2img": {"steps": 11}}
    with pytest.raises(LibraryError, match="no longer in the trash"):
        store.undo_delete(ticket)


def test_import_and_export(store: PresetStore, tmp_path: Path, data_dir: Path):
    source = data_dir / "preset-v0.yaml"
    original = source.read_bytes()
    target = store.import_file(source)
    assert target.read_bytes() == original  # copied byte for byte, comments kept
    assert target.parent == store.user_dir and target.name == "Old portrait.yaml"
    with pytest.raises(LibraryError, match="already have"):
        store.import_file(source)
    store.import_file(source, replace=True)
    exported = store.export(store.find("Old portrait"), tmp_path / "out" / "shared.yaml")
    assert exported.read_bytes() == original


@pytest.mark.parametrize("name, stem", [
    ("SDXL + hires: faces?", "SDXL + hires_ faces_"),
    ("con", "_con"),
    ("..hidden. ", "hidden"),
    ("a/b\\c", "a_b_c"),
    ("Ünïcödé 猫", "Ünïcödé 猫"),
])
def test_file_names_are_safe_on_every_platform(name: str, stem: str):
    assert file_stem(name) == stem


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from stablenew.pipeline.presets import Preset, PresetStore

    store = PresetStore(Path(sys.argv[1]))
    who = int(sys.argv[2])
    for i in range(int(sys.argv[3])):
        # Descriptions of very different lengths make a torn file easy to see.
        store.save(Preset(name="Shared", description=f"writer {who} round {i} " + "x" * (who * 900),
                          tags=[f"w{who}"], config={"txt2img": {"steps": 10 + who}}))
""")


def test_concurrent_saves_from_several_processes_never_tear_the_file(tmp_path: Path):
    user = tmp_path / "user"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(user), str(who), "12"], cwd=ROOT,
                         stderr=subprocess.PIPE)
        for who in range(1, 4)
    ]
    target = user / "Shared.yaml"
    seen = set()
    deadline = time.monotonic() + 60
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        if target.exists():
            preset, _ = load_preset(target)  # every read sees one whole version
            assert preset.tags[0] == f"w{preset.config.txt2img.steps - 10}"
            assert preset.description.endswith("x" * (int(preset.tags[0][1:]) * 900))
            seen.add(preset.tags[0])
        time.sleep(0.002)  # leave the CPU to the writers
    for w in writers:
        _out, err = w.communicate(timeout=60)
        assert w.returncode == 0, err.decode()
    final, _ = load_preset(target)
    assert final.name == "Shared"
    assert [p.name for p in user.iterdir() if p.suffix == ".yaml"] == ["Shared.yaml"]
    assert not [p for p in user.iterdir() if p.suffix == ".tmp"]
    assert seen  # the reader really raced the writers


@pytest.mark.parametrize("name, reason", [
    ('"   "', "The name is empty. Type a name."),
    ('"two\\nlines"', "The name must be one line of text"),
    ("x" * 121, "at most 120 characters"),
])
def test_bad_names_are_refused_in_plain_words(name: str, reason: str):
    with pytest.raises(DocumentError) as err:
        parse_preset(f"version: 1\nname: {name}\n", "n.yaml")
    assert err.value.field == "name" and reason in err.value.reason
    assert parse_preset("version: 1\nname: '  Trimmed '\n")[0].name == "Trimmed"


def test_trash_forgets_files_after_a_month(store: PresetStore):
    store.save(Preset(name="Old"))
    store.save(Preset(name="Recent"))
    old = store.delete(store.find("Old"))
    recent = store.delete(store.find("Recent"))
    month_ago = time.time() - 31 * 24 * 3600
    os.utime(old.trashed, (month_ago, month_ago))
    assert store.empty_trash() == 1
    assert not old.trashed.exists() and recent.trashed.exists()
    with pytest.raises(LibraryError, match="no longer in the trash"):
        store.undo_delete(old)


DUPLICATOR = textwrap.dedent("""
    import sys
    from pathlib import Path
    from stablenew.pipeline.presets import PresetStore

    store = PresetStore(Path(sys.argv[1]))
    for _ in range(2):
        store.duplicate(store.find("Base"))
""")


def test_concurrent_duplicates_each_get_their_own_name(tmp_path: Path):
    user = tmp_path / "user"
    PresetStore(user).save(Preset(name="Base", config={"txt2img": {"steps": 9}}))
    workers = [subprocess.Popen([sys.executable, "-c", DUPLICATOR, str(user)], cwd=ROOT,
                                stderr=subprocess.PIPE) for _ in range(3)]
    for w in workers:
        _out, err = w.communicate(timeout=60)
        assert w.returncode == 0, err.decode()
    names = sorted(e.name for e in PresetStore(user).entries() if e.source is Source.user)
    assert names == sorted(["Base", "Base (copy)", *(f"Base (copy {n})" for n in range(2, 7))])


def test_the_folder_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path: Path):
    import threading

    from stablenew.pipeline.library_folder import FolderLock

    order = []

    def second_window():
        with FolderLock(tmp_path):
            order.append("other")

    with FolderLock(tmp_path), FolderLock(tmp_path):
        other = threading.Thread(target=second_window)
        other.start()
        time.sleep(0.05)
        order.append("first")
    other.join(timeout=5)
    assert order == ["first", "other"]
