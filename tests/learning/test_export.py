from __future__ import annotations

import csv
import io
import json
import zipfile

from PIL import Image

from stablenew.learning.export import CSV_FIELDS, export_bundle
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import LearningStore
from tests.learning.helpers import image_record

SECRET = "hunter2-secret"


def _store_with_records(tmp_path):
    store = LearningStore(tmp_path / "db.sqlite")
    node = f"http://alice:{SECRET}@192.168.1.20:7860/sdapi?token={SECRET}"
    for i in range(3):
        record = store.add_record(LearningRecord.from_image_record(
            image_record(tmp_path / "out", i, node=node, png=i != 2)))
        if i == 0:
            store.rate(record.id, 5)
            store.tag(record.id, "too smooth")
    store.record_choice("run-1:1", "run-1:0", source="which is better")
    return store


def test_bundle_holds_jsonl_csv_readme_and_no_credentials(tmp_path):
    with _store_with_records(tmp_path) as store:
        summary = export_bundle(store, tmp_path / "bundle.zip")
    assert summary.records == 3 and summary.images_missing == 1 and summary.images_copied == 0
    with zipfile.ZipFile(summary.path) as zf:
        assert sorted(zf.namelist()) == ["README.md", "choices.jsonl", "records.csv",
                                         "records.jsonl"]
        raw = {name: zf.read(name).decode("utf-8-sig") for name in zf.namelist()}
    for name, text in raw.items():
        assert SECRET not in text and "alice" not in text, name
    choices = [json.loads(line) for line in raw["choices.jsonl"].splitlines()]
    assert [(c["winner"], c["loser"], c["same"]) for c in choices] == [("run-1:1", "run-1:0", False)]
    lines = [json.loads(line) for line in raw["records.jsonl"].splitlines()]
    assert [r["image_index"] for r in lines] == [0, 1, 2]
    assert lines[0]["rating"] == 5 and lines[0]["tags"] == ["too smooth"]
    assert lines[0]["node"] == "http://192.168.1.20:7860/sdapi"
    assert lines[0]["config"]["txt2img"]["seed"] == 1000
    assert lines[0]["parameters"]["steps"] == "20"
    rows = list(csv.DictReader(io.StringIO(raw["records.csv"])))
    assert tuple(rows[0].keys()) == CSV_FIELDS
    assert rows[0]["rating"] == "5" and rows[0]["tags"] == "too smooth" and rows[0]["steps"] == "20"
    assert rows[1]["rating"] == ""
    for field in ("rating", "tags", "variant_label", "config_hash", "parameters", "config"):
        assert f"`{field}`" in raw["README.md"]


def test_bundle_with_downscaled_copies(tmp_path):
    with _store_with_records(tmp_path) as store:
        summary = export_bundle(store, tmp_path / "copies", images="copies", max_side=32)
    assert summary.path.name == "copies.zip"
    assert summary.images_copied == 2 and summary.images_missing == 1
    with zipfile.ZipFile(summary.path) as zf:
        names = [n for n in zf.namelist() if n.startswith("images/")]
        assert len(names) == 2
        with Image.open(io.BytesIO(zf.read(names[0]))) as img:
            assert max(img.size) == 32 and img.format == "JPEG"
        lines = [json.loads(x) for x in zf.read("records.jsonl").decode().splitlines()]
    assert lines[0]["image"] in names and lines[2]["image"] is None


def test_export_of_one_pack_rated_only(tmp_path):
    with _store_with_records(tmp_path) as store:
        summary = export_bundle(store, tmp_path / "rated.zip", pack="Portraits", rated_only=True)
        none = export_bundle(store, tmp_path / "none.zip", pack="Other")
    assert summary.records == 1 and none.records == 0
    assert not list(tmp_path.glob(".*.tmp"))
