"""Enhance templates: shipped ones load, the user's own override them, a bad file costs itself."""

from __future__ import annotations

import pytest

from stablenew.prompting.templates import (
    ModelFamily,
    get_template,
    load_templates,
    user_templates_dir,
)
from stablenew.storage.paths import AppPaths


def test_shipped_templates_load():
    templates, problems = load_templates()
    assert problems == []
    assert {"general", "cinematic", "anime", "photo"} <= set(templates)
    assert all(t.shipped and t.template.version == 1 for t in templates.values())


def test_the_users_template_overrides_and_adds(tmp_path):
    folder = user_templates_dir(AppPaths.default())
    folder.mkdir(parents=True)
    (folder / "photo.yaml").write_text("version: 1\nlabel: My photo\ninstructions: Use film stock.\n")
    (folder / "noir.yaml").write_text("label: Noir\ninstructions: Black and white, hard shadows.\n")
    (folder / "broken.yaml").write_text("label: Broken\ntemperature: 9\ninstructions: x\n")
    templates, problems = load_templates(folder)
    assert templates["photo"].template.label == "My photo" and not templates["photo"].shipped
    assert templates["noir"].template.instructions.startswith("Black and white")
    assert len(problems) == 1
    assert "broken.yaml" in problems[0].describe() and "line 2" in problems[0].describe()
    assert "cinematic" in templates


def test_a_template_from_a_newer_version_is_refused_plainly(tmp_path):
    (tmp_path / "future.yaml").write_text("version: 7\nlabel: F\ninstructions: x\n")
    templates, problems = load_templates(tmp_path)
    assert "future" not in templates
    assert "newer StableNew" in problems[0].describe()


def test_unknown_template_names_the_known_ones():
    with pytest.raises(KeyError) as err:
        get_template("vaporwave")
    assert "cinematic" in str(err.value)


def test_families_choose_tags_or_sentences_and_a_budget():
    assert not ModelFamily.sdxl.sentences and ModelFamily.sdxl.token_budget == 75
    assert ModelFamily.flux.sentences and ModelFamily.flux.token_budget > 75
