-- Deprecated versions stay pullable; they are flagged and skipped by the `latest` rule.
ALTER TABLE versions ADD COLUMN deprecated_at TEXT;
ALTER TABLE versions ADD COLUMN deprecated_by TEXT;
ALTER TABLE versions ADD COLUMN deprecation_reason TEXT;

-- A deleted version's name, kept so that it is never published again with other content: a reference
-- someone pinned must not silently change meaning.
CREATE TABLE deleted_versions (
    model_id    INTEGER NOT NULL REFERENCES models(id),
    name        TEXT NOT NULL,
    deleted_at  TEXT NOT NULL,
    deleted_by  TEXT NOT NULL,
    PRIMARY KEY (model_id, name)
);

-- How each alias move came about: set, promote or rollback. Replaying the history with rollbacks undoing
-- earlier moves gives the stack of targets a further rollback returns to.
ALTER TABLE alias_history ADD COLUMN action TEXT NOT NULL DEFAULT 'set';

-- Every mutating request, who made it and on what, written in the same transaction as the change.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    model   TEXT,
    target  TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX audit_log_by_model ON audit_log (model, id);
