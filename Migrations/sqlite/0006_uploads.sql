-- Uploads of a blob store that keeps no state of its own (S3): an upload that spans requests is continued from
-- its record. A request appending to one holds it (`holder` until `held_until`, renewed as it goes); a hold
-- that lapsed (its server was killed) is free to take.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    expected     TEXT,
    byte_offset  INTEGER NOT NULL,
    state        BLOB NOT NULL,
    updated_at   TEXT NOT NULL,
    holder       TEXT,
    held_until   TEXT
);
CREATE INDEX uploads_by_expected ON uploads (expected);
