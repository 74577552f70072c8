-- What the cache image builder learned of each image: the archive's digest and size, or why the build failed.
-- Derived data (rebuilt when missing, never exported), kept per model and manifest digest as images are
-- addressed, and dropped with the model's last variant that has the manifest.
CREATE TABLE cache_images (
    model_id         INTEGER NOT NULL REFERENCES models(id),
    manifest_digest  TEXT NOT NULL,
    layout           TEXT NOT NULL,
    digest           TEXT,
    size             INTEGER NOT NULL,
    built_at         TEXT NOT NULL,
    error            TEXT,
    PRIMARY KEY (model_id, manifest_digest, layout)
);
