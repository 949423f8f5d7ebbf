from __future__ import annotations

import sqlite3

import pytest

from stablenew.learning.errors import LearningError, LearningStoreError, RecordNotFound
from stablenew.learning.records import LearningRecord, config_hash
from stablenew.learning.store import SCHEMA_VERSION, LearningStore
from stablenew.pipeline.config import PipelineConfig
from stablenew.storage.paths import AppPaths
from tests.learning.helpers import image_record, synthetic_records


def _sorted(stats):
    return sorted(stats, key=lambda s: (s.param, s.value))


def test_store_defaults_to_the_app_database_in_wal_mode(tmp_path):
    with LearningStore() as store:
        assert store.path == AppPaths.default().database_file
        assert store.execute("PRAGMA journal_mode")[0][0] == "wal"
        assert store.schema_version() == SCHEMA_VERSION
        names = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names and all(name.startswith("learning_") for name in names)


def test_record_round_trip_keeps_everything(tmp_path):
    config = PipelineConfig().with_changes({"txt2img.prompt": "a cat <lora:fluffy:0.6>",
                                            "txt2img.steps": 28})
    image = image_record(tmp_path, 3, config=config, node="http://bob:hunter2@10.0.0.5:7860/?token=s3")
    with LearningStore(tmp_path / "db.sqlite") as store:
        stored = store.add_record(LearningRecord.from_image_record(image))
        again = store.get(str(image.path))
    assert again.id == stored.id
    assert again.config == image.config
    assert again.config_hash == config_hash(image.config)
    assert again.seed == image.seed and again.stages == ("txt2img",)
    assert again.pack == "Portraits" and again.timings == {"txt2img": 1.5}
    assert again.node == "http://10.0.0.5:7860/"
    assert again.parameter_values()["steps"] == "28"
    assert again.parameter_values()["lora:fluffy"] == "0.6"
    assert again.rating is None and again.tags == ()


def test_config_hash_is_stable_and_sensitive():
    a = PipelineConfig().with_changes({"txt2img.steps": 30})
    b = PipelineConfig.from_yaml(a.to_yaml())
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(a.with_changes({"txt2img.steps": 31}))


def test_rating_and_tags_update_the_record_and_the_aggregates(tmp_path):
    with LearningStore(tmp_path / "db.sqlite") as store:
        ids = [store.add_record(LearningRecord.from_image_record(image_record(tmp_path, i))).id
               for i in range(4)]
        store.rate(ids[0], 5)
        store.rate(ids[1], 3)
        store.rate(ids[1], 1)  # changed mind
        store.rate(ids[2], 4)
        store.rate(ids[2], None)  # cleared
        store.tag(ids[0], "Too  Noisy")
        store.tag(ids[1], "too noisy")
        store.tag(ids[1], "blurry")
        store.tag(ids[1], "blurry", on=False)
        assert store.get(ids[1]).rating == 1
        assert store.get(ids[0]).tags == ("too noisy",)
        steps = [s for s in store.stats("Portraits") if s.param == "steps"]
        assert len(steps) == 1 and steps[0].n == 2 and steps[0].total == 6.0
        assert store.tag_counts("Portraits") == {"too noisy": 2}
        assert _sorted(store.stats()) == _sorted(store.stats_from_scratch())


def test_writing_the_same_image_again_keeps_the_users_rating(tmp_path):
    image = image_record(tmp_path, 0)
    with LearningStore(tmp_path / "db.sqlite") as store:
        first = store.add_record(LearningRecord.from_image_record(image))
        store.rate(first.id, 4)
        store.tag(first.id, "great")
        second = store.add_record(LearningRecord.from_image_record(image))
        assert second.id == first.id and second.rating == 4 and second.tags == ("great",)
        assert store.summary().records == 1
        assert _sorted(store.stats()) == _sorted(store.stats_from_scratch())


def test_aggregates_match_a_full_group_by_after_many_changes(tmp_path):
    records = synthetic_records(300, packs=("A", "B", ""))
    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(records)
        for record_id in range(1, 301, 7):
            store.rate(record_id, (record_id % 5) + 1)
        for record_id in range(1, 301, 11):
            store.rate(record_id, None)
        for record_id in range(1, 301, 13):
            store.delete(record_id)
        for pack in (None, "A", "B", ""):
            assert _sorted(store.stats(pack)) == _sorted(store.stats_from_scratch(pack))
        stats_before = _sorted(store.stats())
        store.rebuild_stats()
        assert _sorted(store.stats()) == stats_before


def test_bad_ratings_and_unknown_images_are_refused_in_plain_words(tmp_path):
    with LearningStore(tmp_path / "db.sqlite") as store:
        record = store.add_record(LearningRecord.from_image_record(image_record(tmp_path, 0)))
        with pytest.raises(LearningError, match="1 to 5 stars"):
            store.rate(record.id, 6)
        with pytest.raises(RecordNotFound, match="no learning record"):
            store.rate(tmp_path / "nowhere.png", 3)
        with pytest.raises(LearningError, match="empty"):
            store.tag(record.id, "   ")
        assert store.get(record.id).rating is None


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "db.sqlite"
    LearningStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE learning_schema_version SET version = 99")
    with pytest.raises(LearningStoreError, match="newer StableNew"):
        LearningStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM learning_schema_version").fetchone()[0] == 99


def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(LearningStoreError, match="damaged or is not a StableNew database"):
        LearningStore(path)


def test_other_rooms_tables_in_the_same_file_are_left_alone(tmp_path):
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE queue_items (id INTEGER PRIMARY KEY, payload TEXT)")
        db.execute("INSERT INTO queue_items (payload) VALUES ('keep me')")
    with LearningStore(path) as store:
        store.add_record(LearningRecord.from_image_record(image_record(tmp_path, 0)))
        assert store.execute("SELECT payload FROM queue_items")[0][0] == "keep me"


def test_a_batch_stores_its_settings_once_and_each_image_keeps_its_own_seed_and_prompt(tmp_path):
    base = PipelineConfig().with_changes({"txt2img.negative_prompt": "blurry"})
    images = [image_record(tmp_path, i, config=base.with_changes({"txt2img.prompt": f"cat {i}"}),
                           png=False) for i in range(5)]
    other = image_record(tmp_path, 9, config=base.with_changes({"txt2img.steps": 33}), png=False)
    with LearningStore(tmp_path / "db.sqlite") as store:
        store.add_records(LearningRecord.from_image_record(i) for i in [*images, other])
        assert store.execute("SELECT COUNT(*) FROM learning_settings")[0][0] == 2
        for image in images:
            again = store.get(str(image.path))
            assert again.config == image.config and again.prompt == image.config.txt2img.prompt
            assert again.config.txt2img.seed == image.seed
        store.delete(str(other.path))
        store.rebuild_stats()
        assert store.execute("SELECT COUNT(*) FROM learning_settings")[0][0] == 1
