"""Rewriting a hand-edited YAML document keeps the user's comments and never changes the data."""

from __future__ import annotations

import textwrap

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew.storage.documents import dump_yaml, keep_comments

HAND_WRITTEN = textwrap.dedent("""\
    # My portrait preset, tuned over a week
    version: 1
    name: Portraits  # shown in the list
    description: soft light
    config:
      txt2img:
        steps: 30  # 30-35 scored best
        sampler: DPM++ 2M
      adetailer:
        enabled: true
        passes:
        - model: face_yolov8n.pt  # faces first
          denoise: 0.4
    """)


def test_comments_stay_beside_their_keys_and_values_come_from_the_new_text():
    new = {"version": 1, "name": "Portraits", "description": "soft light, v2", "tags": ["people"],
           "config": {"txt2img": {"steps": 32, "width": 768},
                      "adetailer": {"enabled": True,
                                    "passes": [{"model": "face_yolov8n.pt", "denoise": 0.35}]}}}
    merged = keep_comments(HAND_WRITTEN, dump_yaml(new))
    assert yaml.safe_load(merged) == new
    lines = merged.splitlines()
    assert lines[0] == "# My portrait preset, tuned over a week"
    assert "name: Portraits  # shown in the list" in lines
    assert "    steps: 32  # 30-35 scored best" in lines
    assert "    - model: face_yolov8n.pt  # faces first" in lines
    assert "sampler" not in merged  # a removed key is gone
    assert [line.split(":")[0] for line in lines if line and line[0].isalpha()] == [
        "version", "name", "description", "tags", "config"]  # a new key sits where the new text has it


def test_a_document_without_comments_or_unreadable_is_simply_replaced():
    new_text = dump_yaml({"name": "x", "steps": 3})
    assert keep_comments("name: x\nsteps: 2\n", new_text) == new_text
    assert keep_comments("name: [unclosed # comment\n", new_text) == new_text
    assert keep_comments("# only a comment\n- a list\n", new_text) == new_text


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
_keys = st.sampled_from(["name", "steps", "prompt", "config", "passes", "tags", "a b", "x:y", "#"])
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(new=st.dictionaries(_keys, _values, min_size=1, max_size=5))
def test_the_merged_text_always_reads_back_as_exactly_the_new_data(new):
    merged = keep_comments(HAND_WRITTEN, dump_yaml(new))
    assert yaml.safe_load(merged) == new
