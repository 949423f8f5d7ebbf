"""Pairwise choices in the learning store: kept, listed per pack, forgotten with their images,
and added to a v2 database by its upgrade."""

from __future__ import annotations

import sqlite3

import pytest

from stablenew.learning.errors import LearningStoreError, RecordNotFound
from stablenew.learning.records import LearningRecord
from stablenew.learning.store import SCHEMA_VERSION, LearningStore
from tests.learning.helpers import image_record


def _store_with_images(tmp_path, count=3, pack="Portraits"):
    store = LearningStore(tmp_path / "stablenew.db")
    records = [store.add_record(LearningRecord.from_image_record(
        image_record(tmp_path, i, pack=pack, png=False))) for i in range(count)]
    return store, records


def test_a_choice_is_kept_by_path_key_or_id_and_listed_per_pack(tmp_path):
    store, (a, b, c) = _store_with_images(tmp_path)
    with store:
        first = store.record_choice(str(a.path), b.record_key, source="which is better")
        second = store.record_choice(c.id, a.id, same=True)
        assert (first.winner_id, first.loser_id, first.same) == (a.id, b.id, False)
        assert first.pack == "Portraits" and first.source == "which is better"
        assert second.same and second.winner_key == c.record_key
        assert [x.id for x in store.choices("Portraits")] == [first.id, second.id]
        assert store.choices("Landscapes") == []
        assert store.choices() == store.choices("Portraits")
        assert first.to_json()["winner"] == a.record_key


def test_a_choice_needs_two_known_different_images(tmp_path):
    store, (a, _b, _c) = _store_with_images(tmp_path)
    with store:
        with pytest.raises(RecordNotFound):
            store.record_choice(a.id, str(tmp_path / "unknown.png"))
        with pytest.raises(LearningStoreError, match="cannot be compared with itself"):
            store.record_choice(a.id, a.record_key)
        assert store.choices() == []


def test_forgetting_an_image_forgets_its_choices(tmp_path):
    store, (a, b, c) = _store_with_images(tmp_path)
    with store:
        store.record_choice(a.id, b.id)
        kept = store.record_choice(c.id, b.id)
        store.delete(a.id)
        assert [x.id for x in store.choices()] == [kept.id]


def test_a_version_2_database_gains_the_choices_table_and_keeps_its_records(tmp_path):
    store, (a, b, _c) = _store_with_images(tmp_path)
    store.close()
    with sqlite3.connect(tmp_path / "stablenew.db") as db:  # as StableNew before choices left it
        db.execute("DROP TRIGGER learning_records_unchosen")
        db.execute("DROP TABLE learning_choices")
        db.execute("UPDATE learning_schema_version SET version = 2")
    with LearningStore(tmp_path / "stablenew.db") as store:
        assert store.schema_version() == SCHEMA_VERSION == 4
        assert store.summary().records == 3
        store.record_choice(a.id, b.id)
        store.delete(b.id)
        assert store.choices() == []
