"""The draft (v0) learning layout upgrades to the current schema without losing anything."""

from __future__ import annotations

import json
import sqlite3

from stablenew.learning.store import SCHEMA_VERSION, LearningStore
from stablenew.pipeline.config import PipelineConfig

V0_SCHEMA = """
CREATE TABLE learning_records (
    id INTEGER PRIMARY KEY,
    image_path TEXT NOT NULL UNIQUE,
    run_id TEXT,
    pack TEXT,
    prompt TEXT,
    config_json TEXT,
    seed INTEGER,
    node TEXT,
    rating INTEGER,
    tags_json TEXT,
    note TEXT,
    created_at REAL
);
"""


def _v0_database(path):
    v0_config = {"version": 0, "prompt": "old cat", "steps": 30, "cfg": 6.5}  # config format v0
    new_config = PipelineConfig().with_changes({"txt2img.steps": 20}).model_dump(mode="json")
    with sqlite3.connect(path) as db:
        db.executescript(V0_SCHEMA)
        db.execute("CREATE TABLE queue_items (id INTEGER PRIMARY KEY)")
        rows = [
            ("a.png", "r1", "Portraits", "old cat", json.dumps(v0_config), 11, "n1", 5,
             json.dumps(["Too Noisy", "great"]), "keeper", 1.0),
            ("b.png", "r1", "Portraits", "x", json.dumps(new_config), 12, "n1", 2, "[]", "", 2.0),
            ("c.png", "r2", None, "broken", "{not json", 13, "n2", 3, "not json", None, 3.0),
        ]
        db.executemany("INSERT INTO learning_records (image_path, run_id, pack, prompt, config_json,"
                       " seed, node, rating, tags_json, note, created_at) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def test_v0_draft_layout_migrates_with_ratings_tags_and_stats(tmp_path):
    path = tmp_path / "stablenew.db"
    _v0_database(path)
    with LearningStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        a = store.get("a.png")
        assert a.rating == 5 and a.tags == ("great", "too noisy") and a.note == "keeper"
        assert a.config.txt2img.steps == 30 and a.config.txt2img.cfg_scale == 6.5
        assert a.record_key == "r1:0" and store.get("b.png").record_key == "r1:1"
        broken = store.get("c.png")
        assert broken.rating == 3 and broken.pack is None
        assert any("could not be read" in w for w in broken.warnings)
        steps = {s.value: (s.n, s.total) for s in store.stats("Portraits", "steps")}
        assert steps == {"30": (1, 5.0), "20": (1, 2.0)}
        assert store.tag_counts() == {"great": 1, "too noisy": 1}
        names = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "queue_items" in names and "learning_records_v0" not in names
    with LearningStore(path) as again:  # opening twice migrates once
        assert again.summary().records == 3


def test_v1_layout_with_a_config_in_every_record_migrates_to_shared_settings(tmp_path):
    from pathlib import Path

    path = tmp_path / "stablenew.db"
    schema = (Path(__file__).parent / "schema_v1.sql").read_text(encoding="utf-8")
    configs = [PipelineConfig().with_changes({"txt2img.prompt": f"cat {i}", "txt2img.seed": 7 + i,
                                              "txt2img.steps": 20 + 10 * (i % 2)})
               for i in range(4)]
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        db.execute("INSERT INTO learning_schema_version (version) VALUES (1)")
        for i, config in enumerate(configs):
            db.execute(
                "INSERT INTO learning_records (record_key, run_id, image_index, pack, prompt, "
                "negative_prompt, config_json, config_hash, seed, path, created_at, updated_at, "
                "learning_run_id) VALUES (?, 'r', ?, 'P', ?, '', ?, 'h', ?, ?, 1, 1, ?)",
                (f"r:{i}", i, config.txt2img.prompt, config.model_dump_json(), config.txt2img.seed,
                 f"{i}.png", "run-1" if i < 2 else None))
            record_id = db.execute("SELECT MAX(id) FROM learning_records").fetchone()[0]
            db.execute("INSERT INTO learning_params (record_id, param, value) VALUES (?, 'steps', ?)",
                       (record_id, str(config.txt2img.steps)))
            db.execute("UPDATE learning_records SET rating = ? WHERE id = ?", (i + 1, record_id))
    with LearningStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION == 4
        for i, config in enumerate(configs):
            assert store.get(f"{i}.png").config == config
        assert store.execute("SELECT COUNT(*) FROM learning_settings")[0][0] == 2
        columns = {r[1] for r in store.execute("PRAGMA table_info(learning_records)")}
        assert "config_json" not in columns and "settings_hash" in columns
        steps = {s.value: (s.n, s.total) for s in store.stats("P", "steps")}
        assert steps == {"20": (2, 4.0), "30": (2, 6.0)}
        index = store.execute("SELECT sql FROM sqlite_master WHERE name = 'learning_records_run'")
        assert "pack" in index[0][0]
