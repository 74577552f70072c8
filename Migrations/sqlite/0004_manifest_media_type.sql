-- A variant's manifest is kept as the bytes received, with their digest and media type: this registry's own
-- manifests so far, other formats (an OCI image manifest) later, each served as it was stored.
ALTER TABLE variants ADD COLUMN media_type TEXT NOT NULL DEFAULT 'application/vnd.modelreg.manifest.v1+json';
