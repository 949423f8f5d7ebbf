"""The learning tables' layout and its upgrades, from the draft layout (v0) to the current one.

The database file is shared with the queue, so every table here is named `learning_*` and
the schema version lives in its own table, `learning_schema_version`. Each upgrade is one
step from a version to the next, run in the store's opening transaction: a database is
either upgraded completely or left as it was.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stablenew.learning.errors import LearningStoreError
from stablenew.learning.parameters import parameter_values
from stablenew.learning.records import LearningRecord, check_rating, clean_tag, config_hash
from stablenew.pipeline.config import MAX_SEED, PipelineConfig, migrate_config

# 1: first layout, the full config JSON in every record.
# 2: settings shared by a batch stored once (learning_settings); run index covers pack/rating.
# 3: pairwise choices ("which is better?"), learning_choices.
# 4: the prompt steps of each image: original prompt, enhance template, LoRAs added by matching.
SCHEMA_VERSION = 4

# Pairwise choices: the winner and the loser of one comparison, or two images the user found
# the same. A choice goes with its images: forgetting a record forgets its choices.
_CHOICES_SCHEMA = """
CREATE TABLE IF NOT EXISTS learning_choices (
    id INTEGER PRIMARY KEY,
    winner_id INTEGER NOT NULL,
    loser_id INTEGER NOT NULL,
    same INTEGER NOT NULL DEFAULT 0 CHECK (same IN (0, 1)),
    source TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    CHECK (winner_id <> loser_id)
);
CREATE INDEX IF NOT EXISTS learning_choices_winner ON learning_choices(winner_id);
CREATE INDEX IF NOT EXISTS learning_choices_loser ON learning_choices(loser_id);

CREATE TRIGGER IF NOT EXISTS learning_records_unchosen BEFORE DELETE ON learning_records
BEGIN
    DELETE FROM learning_choices WHERE winner_id = OLD.id OR loser_id = OLD.id;
END;
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS learning_schema_version (version INTEGER NOT NULL);

CREATE TABLE learning_records (
    id INTEGER PRIMARY KEY,
    record_key TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    image_index INTEGER NOT NULL,
    pack TEXT NOT NULL DEFAULT '',
    preset TEXT,
    prompt TEXT NOT NULL DEFAULT '',
    negative_prompt TEXT NOT NULL DEFAULT '',
    settings_hash TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stages TEXT NOT NULL DEFAULT '[]',
    node TEXT NOT NULL DEFAULT '',
    node_kind TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL,
    thumbnail TEXT,
    timings_json TEXT NOT NULL DEFAULT '{}',
    warnings_json TEXT NOT NULL DEFAULT '[]',
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    note TEXT NOT NULL DEFAULT '',
    learning_run_id TEXT,
    variant_id TEXT,
    variant_label TEXT,
    job_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    original_prompt TEXT,
    enhance_template TEXT,
    auto_loras TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX learning_records_path ON learning_records(path);
CREATE INDEX learning_records_pack ON learning_records(pack, rating);
CREATE INDEX learning_records_run ON learning_records(learning_run_id, pack, rating)
    WHERE learning_run_id IS NOT NULL;
CREATE INDEX learning_records_created ON learning_records(created_at);

-- Settings shared by many images (a batch, a learning-run column) are stored once: the
-- config without its seed and prompts, which each record keeps in its own columns.
CREATE TABLE learning_settings (
    hash TEXT PRIMARY KEY,
    config_json TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE learning_params (
    record_id INTEGER NOT NULL,
    param TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (record_id, param)
) WITHOUT ROWID;
CREATE INDEX learning_params_value ON learning_params(param, value);

CREATE TABLE learning_tags (
    record_id INTEGER NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (record_id, tag)
) WITHOUT ROWID;

CREATE TABLE learning_stats (
    pack TEXT NOT NULL,
    param TEXT NOT NULL,
    value TEXT NOT NULL,
    n INTEGER NOT NULL,
    total REAL NOT NULL,
    total_sq REAL NOT NULL,
    PRIMARY KEY (pack, param, value)
) WITHOUT ROWID;

CREATE TABLE learning_tag_stats (
    pack TEXT NOT NULL,
    tag TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (pack, tag)
) WITHOUT ROWID;

CREATE TABLE learning_runs (
    id TEXT PRIMARY KEY,
    pack TEXT NOT NULL DEFAULT '',
    parameter TEXT NOT NULL,
    status TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TRIGGER learning_params_added AFTER INSERT ON learning_params
WHEN (SELECT rating FROM learning_records WHERE id = NEW.record_id) IS NOT NULL
BEGIN
    INSERT INTO learning_stats (pack, param, value, n, total, total_sq)
    SELECT r.pack, NEW.param, NEW.value, 1, r.rating, r.rating * r.rating
    FROM learning_records r WHERE r.id = NEW.record_id
    ON CONFLICT (pack, param, value) DO UPDATE SET
        n = n + 1, total = total + excluded.total, total_sq = total_sq + excluded.total_sq;
END;

CREATE TRIGGER learning_params_removed AFTER DELETE ON learning_params
WHEN (SELECT rating FROM learning_records WHERE id = OLD.record_id) IS NOT NULL
BEGIN
    UPDATE learning_stats SET
        n = n - 1,
        total = total - (SELECT rating FROM learning_records WHERE id = OLD.record_id),
        total_sq = total_sq - (SELECT rating * rating FROM learning_records WHERE id = OLD.record_id)
    WHERE pack = (SELECT pack FROM learning_records WHERE id = OLD.record_id)
      AND param = OLD.param AND value = OLD.value;
END;

CREATE TRIGGER learning_records_rated AFTER UPDATE OF rating ON learning_records
WHEN OLD.rating IS NOT NEW.rating
BEGIN
    UPDATE learning_stats SET
        n = n - 1, total = total - OLD.rating, total_sq = total_sq - OLD.rating * OLD.rating
    WHERE OLD.rating IS NOT NULL AND pack = OLD.pack
      AND (param, value) IN (SELECT param, value FROM learning_params WHERE record_id = OLD.id);
    INSERT INTO learning_stats (pack, param, value, n, total, total_sq)
    SELECT NEW.pack, p.param, p.value, 1, NEW.rating, NEW.rating * NEW.rating
    FROM learning_params p WHERE p.record_id = NEW.id AND NEW.rating IS NOT NULL
    ON CONFLICT (pack, param, value) DO UPDATE SET
        n = n + 1, total = total + excluded.total, total_sq = total_sq + excluded.total_sq;
END;

CREATE TRIGGER learning_tags_added AFTER INSERT ON learning_tags
BEGIN
    INSERT INTO learning_tag_stats (pack, tag, n)
    SELECT r.pack, NEW.tag, 1 FROM learning_records r WHERE r.id = NEW.record_id
    ON CONFLICT (pack, tag) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER learning_tags_removed AFTER DELETE ON learning_tags
BEGIN
    UPDATE learning_tag_stats SET n = n - 1
    WHERE tag = OLD.tag AND pack = (SELECT pack FROM learning_records WHERE id = OLD.record_id);
END;

CREATE TRIGGER learning_records_removed BEFORE DELETE ON learning_records
BEGIN
    DELETE FROM learning_params WHERE record_id = OLD.id;
    DELETE FROM learning_tags WHERE record_id = OLD.id;
END;
""" + _CHOICES_SCHEMA

RECORD_COLUMNS = (
    "record_key, run_id, image_index, pack, preset, prompt, negative_prompt, settings_hash, "
    "config_hash, seed, stages, node, node_kind, path, thumbnail, timings_json, warnings_json, "
    "rating, note, learning_run_id, variant_id, variant_label, job_id, created_at, updated_at, "
    "original_prompt, enhance_template, auto_loras"
)


def record_values(record: LearningRecord, settings_hash: str, now: float) -> tuple[Any, ...]:
    """A record's values in the order of RECORD_COLUMNS."""
    return (
        record.record_key, record.run_id, record.image_index, record.pack or "", record.preset,
        record.prompt, record.negative_prompt, settings_hash,
        record.config_hash, record.seed, json.dumps(list(record.stages)), record.node,
        record.node_kind, record.path, record.thumbnail, json.dumps(record.timings),
        json.dumps(list(record.warnings)), check_rating(record.rating), record.note,
        record.learning_run_id, record.variant_id, record.variant_label, record.job_id,
        record.created_at or now, now, record.original_prompt, record.enhance_template,
        json.dumps(list(record.auto_loras)),
    )


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the learning tables of *db* to SCHEMA_VERSION (inside the caller's transaction)."""
    version = read_version(db)
    if version > SCHEMA_VERSION:
        raise LearningStoreError(
            f"The learning database was written by a newer StableNew (learning schema "
            f"{version}; this one knows up to {SCHEMA_VERSION}). Update StableNew.",
            detail=f"{path}: learning_schema_version={version}")
    if version == SCHEMA_VERSION:
        return
    if version == -1:  # no learning tables yet
        _create_schema(db)
    elif version == 0:
        _migrate_v0(db)  # straight to the current layout
    else:
        while version < SCHEMA_VERSION:
            version = _STEPS[version](db)
    db.execute("DELETE FROM learning_schema_version")
    db.execute("INSERT INTO learning_schema_version (version) VALUES (?)", (SCHEMA_VERSION,))


def read_version(db: sqlite3.Connection) -> int:
    """-1: no learning tables; 0: the draft layout without a version table; else the version."""
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "learning_schema_version" in names:
        row = db.execute("SELECT MAX(version) FROM learning_schema_version").fetchone()
        if row and row[0] is not None:
            return int(row[0])
    if "learning_records" in names:
        return 0
    return -1



_PER_IMAGE = {"txt2img": {"seed", "prompt", "negative_prompt"}}


def settings_of(config: PipelineConfig) -> tuple[str, str]:
    """(hash, JSON) of a config without its seed and prompts: what a batch has in common."""
    # pydantic's own serializer: fields in model order, so equal settings give equal text.
    raw = config.model_dump_json(exclude=_PER_IMAGE)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32], raw


def config_from_settings(text: str | None, *, seed: int, prompt: str, negative: str) -> PipelineConfig:
    """The full config of one record from its shared settings and its own seed and prompts."""
    data = migrate_config(json.loads(text or "null"))
    t2i = data["txt2img"]
    t2i["seed"], t2i["prompt"], t2i["negative_prompt"] = seed, prompt, negative
    return PipelineConfig.model_validate(data)



def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({clean_tag(t) for t in tags}))



def rebuild_aggregates(db: sqlite3.Connection) -> None:
    # Settings no record points to any more (their images were deleted) go too.
    db.execute("DELETE FROM learning_settings WHERE hash NOT IN "
               "(SELECT settings_hash FROM learning_records)")
    db.execute("DELETE FROM learning_stats")
    db.execute(
        "INSERT INTO learning_stats (pack, param, value, n, total, total_sq) "
        "SELECT r.pack, p.param, p.value, COUNT(*), SUM(r.rating), SUM(r.rating * r.rating) "
        "FROM learning_params p JOIN learning_records r ON r.id = p.record_id "
        "WHERE r.rating IS NOT NULL GROUP BY r.pack, p.param, p.value")
    db.execute("DELETE FROM learning_tag_stats")
    db.execute(
        "INSERT INTO learning_tag_stats (pack, tag, n) SELECT r.pack, t.tag, COUNT(*) "
        "FROM learning_tags t JOIN learning_records r ON r.id = t.record_id GROUP BY r.pack, t.tag")


def _create_schema(db: sqlite3.Connection) -> None:
    _run_script(db, _SCHEMA)


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would commit the migration's transaction.
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            db.execute(buffer)
            buffer = ""


def _migrate_v1_to_v2(db: sqlite3.Connection) -> None:
    """v1 kept the whole config in each record; v2 keeps a batch's shared settings once."""
    db.execute("CREATE TABLE IF NOT EXISTS learning_settings (hash TEXT PRIMARY KEY, "
               "config_json TEXT NOT NULL) WITHOUT ROWID")
    columns = {r[1] for r in db.execute("PRAGMA table_info(learning_records)")}
    if "config_json" in columns:
        if "settings_hash" not in columns:
            db.execute("ALTER TABLE learning_records ADD COLUMN settings_hash TEXT NOT NULL "
                       "DEFAULT ''")
        rows = db.execute("SELECT id, config_json FROM learning_records").fetchall()
        for record_id, raw in rows:
            try:
                digest, text = settings_of(
                    PipelineConfig.model_validate(migrate_config(json.loads(raw))))
            except (ValueError, ValidationError, TypeError, KeyError):
                digest, text = "raw-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:28], raw
            db.execute("INSERT OR IGNORE INTO learning_settings (hash, config_json) VALUES (?, ?)",
                       (digest, text))
            db.execute("UPDATE learning_records SET settings_hash = ? WHERE id = ?",
                       (digest, record_id))
        db.execute("ALTER TABLE learning_records DROP COLUMN config_json")
    db.execute("DROP INDEX IF EXISTS learning_records_run")
    db.execute("CREATE INDEX learning_records_run ON learning_records(learning_run_id, pack, rating) "
               "WHERE learning_run_id IS NOT NULL")


def _migrate_v0(db: sqlite3.Connection) -> None:
    """v0, the draft layout: one table with the image path as key and tags as a JSON list."""
    db.execute("ALTER TABLE learning_records RENAME TO learning_records_v0")
    _create_schema(db)
    rows = db.execute("SELECT * FROM learning_records_v0 ORDER BY id").fetchall()
    index_in_run: dict[str, int] = {}
    for row in rows:
        keys = row.keys()
        run_id = row["run_id"] or f"v0-{row['id']}"
        image_index = index_in_run.get(run_id, 0)
        index_in_run[run_id] = image_index + 1
        raw = row["config_json"] or "{}"
        seed = int(row["seed"] or 0)
        prompt, negative = row["prompt"] or "", ""
        try:
            config = PipelineConfig.model_validate(migrate_config(json.loads(raw)))
            if 0 <= seed <= MAX_SEED:
                config = config.with_changes({"txt2img.seed": seed})
            if not config.txt2img.prompt and prompt:
                config = config.with_changes({"txt2img.prompt": prompt})
            prompt, negative = config.txt2img.prompt, config.txt2img.negative_prompt
            params = parameter_values(config)  # v0 knew no enhancing: "none"
            stages = [s.value for s in config.enabled_stages()]
            digest = config_hash(config)
            settings_hash, stored = settings_of(config)
        except (ValueError, ValidationError, TypeError, KeyError):
            # Keep the row and its rating; its settings stay as they were for a later look.
            params, stages, digest, stored = {}, [], "", raw
            settings_hash = "raw-" + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:28]
        db.execute("INSERT OR IGNORE INTO learning_settings (hash, config_json) VALUES (?, ?)",
                   (settings_hash, stored))
        try:
            tags = clean_tags(json.loads(row["tags_json"] or "[]"))
        except (ValueError, TypeError):
            tags = ()
        rating = row["rating"] if row["rating"] in (1, 2, 3, 4, 5) else None
        created = float(row["created_at"] or 0.0)
        cur = db.execute(
            f"INSERT INTO learning_records ({RECORD_COLUMNS}) VALUES "
            f"({', '.join('?' * len(RECORD_COLUMNS.split(',')))})",
            (f"{run_id}:{image_index}", run_id, image_index, row["pack"] or "", None,
             prompt, negative, settings_hash, digest, seed, json.dumps(stages),
             row["node"] or "", "", row["image_path"], None, "{}", "[]", rating,
             row["note"] if "note" in keys and row["note"] else "", None, None, None, None,
             created, created, None, None, "[]"))
        record_id = cur.lastrowid
        db.executemany("INSERT INTO learning_params (record_id, param, value) VALUES (?, ?, ?)",
                       [(record_id, k, v) for k, v in params.items()])
        db.executemany("INSERT INTO learning_tags (record_id, tag) VALUES (?, ?)",
                       [(record_id, t) for t in tags])
    db.execute("DROP TABLE learning_records_v0")
    rebuild_aggregates(db)



def _migrate_v2_to_v3(db: sqlite3.Connection) -> None:
    """v3 adds the pairwise choices."""
    _run_script(db, _CHOICES_SCHEMA)


def _migrate_v3_to_v4(db: sqlite3.Connection) -> None:
    """v4 keeps each image's prompt steps. Older records say nothing about enhancing (it was
    not recorded), so they get no enhance-style value rather than a guessed "none"."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(learning_records)")}
    for name, kind in (("original_prompt", "TEXT"), ("enhance_template", "TEXT"),
                       ("auto_loras", "TEXT NOT NULL DEFAULT '[]'")):
        if name not in columns:
            db.execute(f"ALTER TABLE learning_records ADD COLUMN {name} {kind}")


def _step(fn: Callable[[sqlite3.Connection], None], to: int) -> Callable[[sqlite3.Connection], int]:
    def run(db: sqlite3.Connection) -> int:
        fn(db)
        return to
    return run


# From a version to the next: each step returns the version it reached.
_STEPS: dict[int, Callable[[sqlite3.Connection], int]] = {
    1: _step(lambda db: _migrate_v1_to_v2(db), 2),
    2: _step(lambda db: _migrate_v2_to_v3(db), 3),
    3: _step(lambda db: _migrate_v3_to_v4(db), 4),
}
