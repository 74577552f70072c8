-- Blobs known to the metadata. A row is written only after the blob file is durable on disk.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL CHECK (size >= 0),
    created_at  TEXT NOT NULL
);

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE versions (
    id          INTEGER PRIMARY KEY,
    model_id    INTEGER NOT NULL REFERENCES models(id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (model_id, name)
);

-- One concrete form of a version. manifest holds the canonical JSON whose sha256 is manifest_digest.
CREATE TABLE variants (
    id               INTEGER PRIMARY KEY,
    version_id       INTEGER NOT NULL REFERENCES versions(id),
    name             TEXT NOT NULL,
    manifest_digest  TEXT NOT NULL,
    manifest         BLOB NOT NULL,
    format           TEXT NOT NULL,
    total_size       INTEGER NOT NULL,
    file_count       INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    UNIQUE (version_id, name)
);
CREATE INDEX variants_by_digest ON variants (manifest_digest);

CREATE TABLE manifest_files (
    variant_id  INTEGER NOT NULL REFERENCES variants(id),
    path        TEXT NOT NULL,
    digest      TEXT NOT NULL REFERENCES blobs(digest),
    size        INTEGER NOT NULL,
    executable  INTEGER NOT NULL,
    PRIMARY KEY (variant_id, path)
);
CREATE INDEX manifest_files_by_digest ON manifest_files (digest);

-- API tokens. Only the sha256 of a token is stored; the token itself is shown once, at creation.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    hash        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;
