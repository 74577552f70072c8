-- Movable pointers to a version (and optionally one of its variants).
CREATE TABLE aliases (
    model_id    INTEGER NOT NULL REFERENCES models(id),
    name        TEXT NOT NULL,
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    variant     TEXT,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (model_id, name)
);

-- Every move of an alias, oldest first. from_* are NULL when the alias was created.
CREATE TABLE alias_history (
    id            INTEGER PRIMARY KEY,
    model_id      INTEGER NOT NULL REFERENCES models(id),
    alias         TEXT NOT NULL,
    from_version  TEXT,
    from_variant  TEXT,
    to_version    TEXT NOT NULL,
    to_variant    TEXT,
    actor         TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX alias_history_by_alias ON alias_history (model_id, alias, id);
