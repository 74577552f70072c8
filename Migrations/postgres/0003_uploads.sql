-- Uploads of a blob store that keeps no state of its own (S3): any replica continues any upload. A request
-- appending to one holds it (`holder` until `held_until`, renewed as bytes arrive); a hold that lapsed (its
-- replica was killed) is free to take.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    expected    TEXT,
    byte_offset BIGINT NOT NULL,
    state       BYTEA NOT NULL,
    updated_at  TEXT NOT NULL,
    holder      TEXT,
    held_until  TEXT
);
CREATE INDEX uploads_by_expected ON uploads (expected);
