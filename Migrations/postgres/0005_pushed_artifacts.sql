-- The OCI artifact a variant was pushed as over the OCI API, kept byte for byte beside the registry's own manifest:
-- its manifest and config documents and their media types; NULL for variants pushed otherwise.
ALTER TABLE variants ADD COLUMN oci_manifest BYTEA;
ALTER TABLE variants ADD COLUMN oci_manifest_media_type TEXT;
ALTER TABLE variants ADD COLUMN oci_config BYTEA;
ALTER TABLE variants ADD COLUMN oci_config_media_type TEXT;
