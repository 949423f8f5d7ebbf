"""Reference images travel with a queued job: stored by content hash, read back and checked."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from stablenew.backends.types import ReferenceKind
from stablenew.pipeline.config import PipelineConfig
from stablenew.pipeline.references import ReferenceMissing, read_reference, store_reference
from stablenew.pipeline.stages import img2img_job, txt2img_job


def png(color=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, format="PNG")
    return buf.getvalue()


def test_a_reference_survives_a_config_round_trip_and_reaches_the_job(tmp_path):
    ref = store_reference(png(), tmp_path / "references")
    assert ref.image.endswith(f"{ref.sha256}.png")
    again = store_reference(png(), tmp_path / "references")
    assert again.image == ref.image and len(list((tmp_path / "references").iterdir())) == 1
    config = PipelineConfig.model_validate({"txt2img": {"references": [
        {**ref.model_dump(), "kind": "depth", "strength": 0.5, "preprocess": False}]},
        "img2img": {"enabled": True, "references": [{**ref.model_dump(), "kind": "ip_face"}]}})
    # What the queue keeps is the config's JSON; a restart reads it back.
    restored = PipelineConfig.model_validate_json(config.model_dump_json())
    job = txt2img_job(restored, seed=1, task_id="t")
    (unit,) = job.references
    assert unit.image == png() and unit.kind is ReferenceKind.depth and unit.strength == 0.5
    assert not unit.preprocess
    assert img2img_job(restored, 1, png(), (16, 16), "t").references[0].kind is ReferenceKind.ip_face


def test_a_changed_or_lost_reference_is_refused_in_plain_words(tmp_path):
    ref = store_reference(png(), tmp_path)
    (tmp_path / f"{ref.sha256}.png").write_bytes(png((1, 2, 3)))
    with pytest.raises(ReferenceMissing, match="was changed after the job was queued"):
        read_reference(ref)
    (tmp_path / f"{ref.sha256}.png").unlink()
    with pytest.raises(ReferenceMissing, match="is gone"):
        read_reference(ref)
    with pytest.raises(ReferenceMissing, match="PNG, JPEG or WebP"):
        store_reference(b"not an image", tmp_path)


def test_at_most_three_references_and_start_before_end():
    ref = {"image": "x.png"}
    with pytest.raises(ValueError):
        PipelineConfig.model_validate({"txt2img": {"references": [ref] * 4}})
    with pytest.raises(ValueError):
        PipelineConfig.model_validate({"txt2img": {"references": [{**ref, "start": 0.8, "end": 0.2}]}})
