-- The tar layers an OCI artifact was pushed with (ModelPack archive layers, a KitOps ModelKit), whose files the
-- variant holds unpacked: kept from garbage collection (and in backups) with the variant, so that the artifact is
-- served as pushed; deleted with it.
CREATE TABLE oci_archive_layers (
    variant_id  BIGINT NOT NULL REFERENCES variants(id),
    digest      TEXT NOT NULL,
    size        BIGINT NOT NULL
);
CREATE INDEX oci_archive_layers_by_digest ON oci_archive_layers (digest);
