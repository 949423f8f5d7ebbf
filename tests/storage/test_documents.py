"""Safe YAML documents: every bad file is a DocumentError naming file, line and field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from stablenew.storage.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    dump_yaml,
    load_yaml_model,
)


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    name: str = Field("x", title="Name")
    steps: int = Field(20, ge=1, le=150, title="Steps")
    items: list[int] = Field(default_factory=list)


def test_valid_document_round_trips(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(dump_yaml(Sample(name="ünï", steps=30).model_dump()), encoding="utf-8")
    assert load_yaml_model(path, Sample) == Sample(name="ünï", steps=30)


def test_out_of_range_value_names_line_field_and_limits(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("version: 1\nname: ok\nsteps: 500\n")
    with pytest.raises(DocumentError) as info:
        load_yaml_model(path, Sample)
    err = info.value
    assert (err.line, err.field) == (3, "steps")
    assert "Steps must be between 1 and 150" in str(err)
    assert str(path) in str(err)


def test_wrong_type_in_a_list_points_at_the_item_line(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("items:\n  - 1\n  - two\n")
    with pytest.raises(DocumentError) as info:
        load_yaml_model(path, Sample)
    assert info.value.line == 3
    assert info.value.field == "items.1"


def test_invalid_yaml_reports_the_line(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("name: ok\nsteps: [1, 2\nother: 3\n")
    with pytest.raises(DocumentError) as info:
        load_yaml_model(path, Sample)
    assert info.value.line is not None and info.value.line >= 2
    assert "not valid YAML" in str(info.value)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("stpes: 3\n")
    with pytest.raises(DocumentError) as info:
        load_yaml_model(path, Sample)
    assert "'stpes' is not a setting" in str(info.value)


def test_binary_garbage_and_huge_files_are_refused_plainly(tmp_path):
    garbage = tmp_path / "g.yaml"
    garbage.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DocumentError, match="not a text file"):
        load_yaml_model(garbage, Sample)
    huge = tmp_path / "h.yaml"
    huge.write_bytes(b"# x\n" * (MAX_DOCUMENT_BYTES // 4 + 10))
    with pytest.raises(DocumentError, match="MB"):
        load_yaml_model(huge, Sample)


def test_billion_laughs_is_refused_before_it_expands(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        refs = ",".join([f"*a{i-1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DocumentError, match="billion laughs"):
        load_yaml_model(path, Sample)


def test_python_tags_are_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(DocumentError, match="not valid YAML"):
        load_yaml_model(path, Sample)


def test_missing_file_is_a_plain_error(tmp_path):
    with pytest.raises(DocumentError, match="does not exist"):
        load_yaml_model(tmp_path / "nope.yaml", Sample)


@pytest.mark.parametrize("text", ["a\x85b", "line\u2028sep", "para\u2029sep", "cr\rlf", "emoji 🐱 ünï"])
def test_every_string_survives_a_yaml_round_trip(tmp_path, text):
    path = tmp_path / "a.yaml"
    path.write_text(dump_yaml({"name": text}), encoding="utf-8")
    assert load_yaml_model(path, Sample).name == text
