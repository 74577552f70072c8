import Foundation
import Logging
import ModelRegistryCore
import NIOCore
import PostgresNIO

/// Cache image records, and the whole database as a `MetadataExport` and back.
extension PostgresMetadataStore {
    public func cacheImageRecords(_ model: ModelName, _ manifest: Digest) async throws -> [String: CacheImageRecord] {
        try await reading { connection in
            var records: [String: CacheImageRecord] = [:]
            for (layout, digest, size, builtAt, error) in try await connection.rows(
                """
                SELECT c.layout, c.digest, c.size, c.built_at, c.error FROM cache_images c
                JOIN models m ON c.model_id = m.id WHERE m.name = \(model.value) AND c.manifest_digest = \(manifest.description)
                """, (String, String?, Int64, String, String?).self, logger: self.logger)
            {
                records[layout] = CacheImageRecord(
                    digest: try digest.map { text throws(RegistryError) in try Digest(parsing: text) }, size: size,
                    builtAt: builtAt, error: error)
            }
            return records
        }
    }

    public func recordCacheImage(_ record: CacheImageRecord, _ model: ModelName, _ manifest: Digest, layout: String)
        async throws
    {
        try await writing { connection in
            _ = try await connection.query(
                """
                INSERT INTO cache_images (model_id, manifest_digest, layout, digest, size, built_at, error)
                SELECT m.id, \(manifest.description), \(layout), \(record.digest?.description), \(record.size),
                       \(record.builtAt), \(record.error)
                FROM models m WHERE m.name = \(model.value) AND EXISTS (
                    SELECT 1 FROM variants va JOIN versions v ON va.version_id = v.id
                    WHERE v.model_id = m.id AND va.manifest_digest = \(manifest.description))
                ON CONFLICT (model_id, manifest_digest, layout) DO UPDATE SET digest = excluded.digest,
                    size = excluded.size, built_at = excluded.built_at, error = excluded.error
                """, logger: self.logger)
        }
    }

    /// After variants of the model were deleted: the records of manifests none of its variants has any more.
    static func dropOrphanedCacheImages(_ connection: PostgresConnection, modelID: Int64, logger: Logger) async throws {
        try await connection.query(
            """
            DELETE FROM cache_images WHERE model_id = \(modelID) AND manifest_digest NOT IN (
                SELECT va.manifest_digest FROM variants va JOIN versions v ON va.version_id = v.id
                WHERE v.model_id = \(modelID))
            """, logger: logger)
    }

    public func exportMetadata() async throws -> MetadataExport {
        try await readingSnapshot { connection in
            var models: [MetadataExport.Model] = []
            for (id, name, createdAt) in try await connection.rows(
                "SELECT id, name, created_at FROM models ORDER BY name COLLATE \"C\"", (Int64, String, String).self,
                logger: self.logger)
            {
                models.append(
                    try await Self.exportedModel(
                        connection, id: id, name: try ModelName(name), createdAt: createdAt, logger: self.logger))
            }
            return MetadataExport(
                models: models, tokens: try await Self.tokenRows(connection, logger: self.logger),
                audit: try await Self.auditEntries(
                    connection, "SELECT id, at, actor, action, model, target, detail FROM audit_log ORDER BY id",
                    logger: self.logger))
        }
    }

    private static func exportedModel(
        _ connection: PostgresConnection, id: Int64, name: ModelName, createdAt: String, logger: Logger
    ) async throws -> MetadataExport.Model {
        var variants: [Int64: [MetadataExport.Variant]] = [:]
        for row in try await connection.rows(
            """
            SELECT va.version_id, va.name, va.manifest, va.media_type, va.created_at, va.created_by, va.oci_manifest,
                   va.oci_manifest_media_type, va.oci_config, va.oci_config_media_type, va.id
            FROM variants va JOIN versions v ON va.version_id = v.id WHERE v.model_id = \(id)
            ORDER BY va.name COLLATE "C"
            """,
            (Int64, String, ByteBuffer, String, String, String, ByteBuffer?, String?, ByteBuffer?, String?, Int64).self,
            logger: logger)
        {
            let (versionID, variant, manifest, mediaType, variantCreatedAt, createdBy) =
                (row.0, row.1, row.2, row.3, row.4, row.5)
            variants[versionID, default: []].append(
                MetadataExport.Variant(
                    name: try VariantName(variant),
                    document: ManifestDocument(bytes: Array(manifest.readableBytesView), mediaType: mediaType),
                    createdAt: variantCreatedAt, createdBy: createdBy,
                    pushedArtifact: pushedArtifact(row.6, row.7, row.8, row.9),
                    referrers: try await referrers(connection, "WHERE va.id = \(row.10)", logger: logger)))
        }
        let versions = try await connection.rows(
            """
            SELECT id, name, created_at, deprecated_at, deprecated_by, deprecation_reason FROM versions
            WHERE model_id = \(id) ORDER BY id
            """, (Int64, String, String, String?, String?, String?).self, logger: logger
        ).map { versionID, version, versionCreatedAt, deprecatedAt, deprecatedBy, reason in
            MetadataExport.Version(
                name: try VersionName(version), createdAt: versionCreatedAt,
                deprecation: deprecatedAt.map { Deprecation(at: $0, by: deprecatedBy ?? "", reason: reason) },
                variants: variants[versionID] ?? [])
        }
        let deleted = try await connection.rows(
            """
            SELECT name, deleted_at, deleted_by FROM deleted_versions WHERE model_id = \(id) ORDER BY name COLLATE "C"
            """, (String, String, String).self, logger: logger
        ).map { version, deletedAt, deletedBy in
            MetadataExport.DeletedVersionName(
                name: try VersionName(version), deletedAt: deletedAt, deletedBy: deletedBy)
        }
        return MetadataExport.Model(
            name: name, createdAt: createdAt, versions: versions,
            aliases: try await aliases(connection, modelID: id, logger: logger)[id] ?? [],
            history: try await history(connection, id, alias: nil, logger: logger), deletedVersions: deleted)
    }

    public func importMetadata(_ export: MetadataExport) async throws {
        // Read every manifest before the write transaction: a bad one fails the import with nothing written.
        var manifests: [[[Manifest]]] = []
        for model in export.models {
            manifests.append(
                try model.versions.map { version in try version.variants.map { try $0.contents().manifest } })
        }
        let contents = manifests
        try await writing { connection in
            // Nothing else writes while the import decides the store is empty and fills it.
            try await connection.query("LOCK TABLE models, tokens, audit_log IN EXCLUSIVE MODE", logger: self.logger)
            let counts = try await connection.rows(
                """
                SELECT (SELECT COUNT(*) FROM models), (SELECT COUNT(*) FROM tokens), (SELECT COUNT(*) FROM audit_log)
                """, (Int64, Int64, Int64).self, logger: self.logger)[0]
            try MetadataExport.requireEmpty(
                "the PostgreSQL database \(self.endpoint)", models: Int(counts.0), tokens: Int(counts.1),
                auditEntries: Int(counts.2))
            for (model, manifests) in zip(export.models, contents) {
                try await Self.importModel(connection, model, manifests: manifests, logger: self.logger)
            }
            for token in export.tokens {
                let record = token.record
                try await connection.query(
                    """
                    INSERT INTO tokens (name, scope, hash, created_at, revoked_at)
                    VALUES (\(record.name.value), \(record.scope.rawValue), \(token.hash), \(record.createdAt),
                            \(record.revokedAt))
                    """, logger: self.logger)
            }
            for entry in export.audit {
                try await connection.query(
                    """
                    INSERT INTO audit_log (id, at, actor, action, model, target, detail)
                    VALUES (\(entry.id), \(entry.at), \(entry.actor), \(entry.action.rawValue), \(entry.model?.value),
                            \(entry.target), \(entry.detail))
                    """, logger: self.logger)
            }
            // Ids given explicitly leave the sequences behind: new rows must come after the imported ones.
            for table in ["audit_log", "alias_history"] {
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT setval(pg_get_serial_sequence('\(table)', 'id'),
                                          GREATEST((SELECT COALESCE(MAX(id), 0) FROM \(table)), 1))
                            """), logger: self.logger)
            }
        }
    }

    private static func importModel(
        _ connection: PostgresConnection, _ model: MetadataExport.Model, manifests: [[Manifest]], logger: Logger
    ) async throws {
        let modelID = try await connection.values(
            "INSERT INTO models (name, created_at) VALUES (\(model.name.value), \(model.createdAt)) RETURNING id",
            Int64.self, logger: logger)[0]
        var versionIDs: [VersionName: Int64] = [:]
        for (version, manifests) in zip(model.versions, manifests) {
            let versionID = try await connection.values(
                """
                INSERT INTO versions (model_id, name, created_at, deprecated_at, deprecated_by, deprecation_reason)
                VALUES (\(modelID), \(version.name.value), \(version.createdAt), \(version.deprecation?.at),
                        \(version.deprecation?.by), \(version.deprecation?.reason))
                RETURNING id
                """, Int64.self, logger: logger)[0]
            versionIDs[version.name] = versionID
            for (variant, manifest) in zip(version.variants, manifests) {
                try await insertVariant(
                    connection, versionID: versionID, variant.name, variant.document, manifest,
                    pushedArtifact: variant.pushedArtifact, createdAt: variant.createdAt, createdBy: variant.createdBy,
                    logger: logger)
                if let referrers = variant.referrers,
                    let variantID = try await connection.values(
                        "SELECT id FROM variants WHERE version_id = \(versionID) AND name = \(variant.name.value)",
                        Int64.self, logger: logger
                    ).first
                {
                    for referrer in referrers {
                        try await insertReferrer(connection, referrer, variantID: variantID, logger: logger)
                    }
                }
            }
        }
        for deleted in model.deletedVersions {
            try await connection.query(
                """
                INSERT INTO deleted_versions (model_id, name, deleted_at, deleted_by)
                VALUES (\(modelID), \(deleted.name.value), \(deleted.deletedAt), \(deleted.deletedBy))
                """, logger: logger)
        }
        for alias in model.aliases {
            guard let versionID = versionIDs[alias.version] else {
                throw RegistryError(
                    .integrity,
                    "the export's alias \(model.name)@\(alias.name) points to version \(alias.version), which it does not hold"
                )
            }
            try await connection.query(
                """
                INSERT INTO aliases (model_id, name, version_id, variant, updated_at, updated_by)
                VALUES (\(modelID), \(alias.name.value), \(versionID), \(alias.variant?.value), \(alias.updatedAt),
                        \(alias.updatedBy))
                """, logger: logger)
        }
        for entry in model.history {
            try await connection.query(
                """
                INSERT INTO alias_history (id, model_id, alias, action, from_version, from_variant, to_version,
                                           to_variant, actor, at)
                VALUES (\(entry.id), \(modelID), \(entry.alias.value), \(entry.action.rawValue),
                        \(entry.fromVersion?.value), \(entry.fromVariant?.value), \(entry.toVersion.value),
                        \(entry.toVariant?.value), \(entry.actor), \(entry.at))
                """, logger: logger)
        }
    }
}
