"""One runner for document upgrades: version checks, steps in order, the caller's data untouched."""

from __future__ import annotations

import pytest

from stablenew.pipeline.config import migrate_config
from stablenew.pipeline.presets import migrate_preset
from stablenew.randomizer.packs import migrate_pack
from stablenew.randomizer.profiles import migrate_profile
from stablenew.storage.migrations import Migrations


def _rename(old: str, new: str):
    def step(data):
        data[new] = data.pop(old)
        return data
    return step


def test_steps_run_in_order_on_a_copy():
    chain = Migrations("widget format", 2, ((1, 2, _rename("b", "c")), (0, 1, _rename("a", "b"))))
    original = {"a": {"deep": 1}}
    upgraded = chain(original)
    assert upgraded == {"c": {"deep": 1}, "version": 2}
    assert original == {"a": {"deep": 1}}, "the caller's data is never changed"
    assert chain({"b": 1, "version": 1}) == {"c": 1, "version": 2}


def test_a_failing_step_leaves_the_data_as_it_was():
    def broken(data):
        data["half"] = True
        raise ValueError("'lines' must be a list")

    chain = Migrations("widget format", 2, ((0, 1, _rename("a", "b")), (1, 2, broken)))
    original = {"a": [1]}
    with pytest.raises(ValueError, match="'lines' must be a list"):
        chain(original)
    assert original == {"a": [1]}


@pytest.mark.parametrize("version", ["2", 1.5, True, None])
def test_a_version_that_is_not_a_whole_number_is_refused(version):
    with pytest.raises(ValueError, match="whole number"):
        Migrations("widget format", 1, ((0, 1, _rename("a", "b")),))({"version": version})


def test_a_newer_document_says_to_update():
    with pytest.raises(ValueError, match=r"newer StableNew \(widget format 3; this one reads up to 1\)"):
        Migrations("widget format", 1, ((0, 1, _rename("a", "b")),))({"version": 3})


def test_a_gap_in_the_steps_is_a_programming_error():
    with pytest.raises(ValueError, match="in order"):
        Migrations("widget format", 3, ((0, 1, _rename("a", "b")), (2, 3, _rename("b", "c"))))


def test_every_document_kind_upgrades_its_prototype_format():
    assert migrate_config({"prompt": "a fox", "cfg": 6})["txt2img"] == {"prompt": "a fox", "cfg_scale": 6}
    preset = migrate_preset({"title": "Fast", "settings": {"steps": 8}})
    assert preset["name"] == "Fast" and preset["config"] == {"txt2img": {"steps": 8}}
    assert migrate_pack({"title": "Foxes", "lines": ["a fox"]})["prompts"] == ["a fox"]
    profile = migrate_profile({"title": "Moody", "lora": "film:0.6"})
    assert profile["loras"] == [{"name": "film", "weight": 0.6}] and profile["version"] == 1
