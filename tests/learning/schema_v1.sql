-- The learning schema as first shipped (version 1): full config JSON in every record.
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
    config_json TEXT NOT NULL,
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
    updated_at REAL NOT NULL
);
CREATE INDEX learning_records_path ON learning_records(path);
CREATE INDEX learning_records_pack ON learning_records(pack, rating);
CREATE INDEX learning_records_run ON learning_records(learning_run_id)
    WHERE learning_run_id IS NOT NULL;
CREATE INDEX learning_records_created ON learning_records(created_at);

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
