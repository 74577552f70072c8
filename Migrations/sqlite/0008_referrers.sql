-- Manifests pushed over the OCI API with a subject (signatures, attestations) of a variant's artifact: kept with
-- the variant, deleted with it; the blobs they name (with their sizes, for backups) are kept from garbage collection.
CREATE TABLE oci_referrers (
    id             INTEGER PRIMARY KEY,
    variant_id     INTEGER NOT NULL REFERENCES variants(id),
    digest         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    manifest       BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    UNIQUE (variant_id, digest)
);
CREATE TABLE oci_referrer_blobs (
    referrer_id  INTEGER NOT NULL REFERENCES oci_referrers(id),
    digest       TEXT NOT NULL,
    size         INTEGER NOT NULL
);
CREATE INDEX oci_referrer_blobs_by_digest ON oci_referrer_blobs (digest);
