import Foundation
import GRDB
import ModelRegistryCore

/// The whole database as a `MetadataExport` and back, for backups and restores.
extension SQLiteMetadataStore {
    public func exportMetadata() async throws -> MetadataExport {
        try await pool.read { db in
            let models = try Row.fetchAll(db, sql: "SELECT id, name, created_at FROM models").map { row in
                try Self.exportedModel(db, id: row["id"], name: ModelName(row["name"] as String), createdAt: row[2])
            }
            let tokens = try Row.fetchAll(
                db, sql: "SELECT name, scope, hash, created_at, revoked_at FROM tokens ORDER BY id"
            ).map { row in MetadataExport.Token(record: try Self.tokenRecord(row), hash: row["hash"]) }
            let audit = try Row.fetchAll(
                db, sql: "SELECT id, at, actor, action, model, target, detail FROM audit_log ORDER BY id"
            ).map(Self.auditEntry)
            return MetadataExport(
                models: models.sorted { $0.name.value < $1.name.value }, tokens: tokens, audit: audit)
        }
    }

    private static func exportedModel(_ db: Database, id: Int64, name: ModelName, createdAt: String) throws
        -> MetadataExport.Model
    {
        let versions = try Row.fetchAll(
            db,
            sql: """
                SELECT id, name, created_at, deprecated_at, deprecated_by, deprecation_reason FROM versions
                WHERE model_id = ? ORDER BY id
                """, arguments: [id]
        ).map { row in
            let variants = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, name, manifest, media_type, created_at, created_by, oci_manifest, oci_manifest_media_type,
                           oci_config, oci_config_media_type
                    FROM variants WHERE version_id = ?
                    """,
                arguments: [row["id"]]
            ).map { variant in
                MetadataExport.Variant(
                    name: try VariantName(variant["name"] as String),
                    document: ManifestDocument(
                        bytes: [UInt8](variant["manifest"] as Data), mediaType: variant["media_type"]),
                    createdAt: variant["created_at"], createdBy: variant["created_by"],
                    pushedArtifact: pushedArtifact(variant),
                    referrers: try referrers(db, where: "va.id = ?", [variant["id"]]))
            }
            return MetadataExport.Version(
                name: try VersionName(row["name"] as String), createdAt: row["created_at"],
                deprecation: deprecation(row), variants: variants.sorted { $0.name.value < $1.name.value })
        }
        let history = try Row.fetchAll(
            db,
            sql: """
                SELECT id, alias, action, from_version, from_variant, to_version, to_variant, actor, at
                FROM alias_history WHERE model_id = ? ORDER BY id
                """, arguments: [id]
        ).map { row in try historyEntry(row, alias: AliasName(row["alias"] as String)) }
        let deleted = try Row.fetchAll(
            db, sql: "SELECT name, deleted_at, deleted_by FROM deleted_versions WHERE model_id = ?", arguments: [id]
        ).map { row in
            MetadataExport.DeletedVersionName(
                name: try VersionName(row["name"] as String), deletedAt: row["deleted_at"], deletedBy: row["deleted_by"]
            )
        }
        return MetadataExport.Model(
            name: name, createdAt: createdAt, versions: versions,
            aliases: try aliases(db, modelID: id).sorted { $0.name.value < $1.name.value }, history: history,
            deletedVersions: deleted.sorted { $0.name.value < $1.name.value })
    }

    public func importMetadata(_ export: MetadataExport) async throws {
        // Read every manifest before the write transaction: a bad one fails the import with nothing written.
        var contents: [[[(manifest: Manifest, summary: VariantSummary)]]] = []
        for model in export.models {
            contents.append(try model.versions.map { version in try version.variants.map { try $0.contents() } })
        }
        let manifests = contents
        let path = pool.path
        try await writing(toModels: export.models.map(\.name)) { db in
            try MetadataExport.requireEmpty(
                "the database \(path)",
                models: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM models") ?? 0,
                tokens: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tokens") ?? 0,
                auditEntries: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_log") ?? 0)
            for (model, manifests) in zip(export.models, manifests) {
                try Self.importModel(db, model, manifests: manifests)
            }
            for token in export.tokens {
                let record = token.record
                try db.execute(
                    sql: "INSERT INTO tokens (name, scope, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        record.name.value, record.scope.rawValue, token.hash, record.createdAt, record.revokedAt,
                    ]
                )
            }
            let audit = try db.cachedStatement(
                sql: "INSERT INTO audit_log (id, at, actor, action, model, target, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
            )
            for entry in export.audit {
                try audit.execute(arguments: [
                    entry.id, entry.at, entry.actor, entry.action.rawValue, entry.model?.value, entry.target,
                    entry.detail,
                ])
            }
        }
    }

    private static func importModel(
        _ db: Database, _ model: MetadataExport.Model, manifests: [[(manifest: Manifest, summary: VariantSummary)]]
    ) throws {
        try db.execute(
            sql: "INSERT INTO models (name, created_at) VALUES (?, ?)", arguments: [model.name.value, model.createdAt])
        let modelID = db.lastInsertedRowID
        var versionIDs: [VersionName: Int64] = [:]
        for (version, manifests) in zip(model.versions, manifests) {
            try db.execute(
                sql: """
                    INSERT INTO versions (model_id, name, created_at, deprecated_at, deprecated_by, deprecation_reason)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    modelID, version.name.value, version.createdAt, version.deprecation?.at, version.deprecation?.by,
                    version.deprecation?.reason,
                ])
            let versionID = db.lastInsertedRowID
            versionIDs[version.name] = versionID
            for (variant, contents) in zip(version.variants, manifests) {
                try insertVariant(
                    db, versionID: versionID, variant.name, variant.document, contents.manifest,
                    pushedArtifact: variant.pushedArtifact, createdAt: variant.createdAt, createdBy: variant.createdBy)
                if let referrers = variant.referrers,
                    let variantID = try Int64.fetchOne(
                        db, sql: "SELECT id FROM variants WHERE version_id = ? AND name = ?",
                        arguments: [versionID, variant.name.value])
                {
                    for referrer in referrers { try insertReferrer(db, referrer, variantID: variantID) }
                }
            }
        }
        for deleted in model.deletedVersions {
            try db.execute(
                sql: "INSERT INTO deleted_versions (model_id, name, deleted_at, deleted_by) VALUES (?, ?, ?, ?)",
                arguments: [modelID, deleted.name.value, deleted.deletedAt, deleted.deletedBy])
        }
        for alias in model.aliases {
            guard let versionID = versionIDs[alias.version] else {
                throw RegistryError(
                    .integrity,
                    "the export's alias \(model.name)@\(alias.name) points to version \(alias.version), which it does not hold"
                )
            }
            try db.execute(
                sql: """
                    INSERT INTO aliases (model_id, name, version_id, variant, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    modelID, alias.name.value, versionID, alias.variant?.value, alias.updatedAt, alias.updatedBy,
                ])
        }
        for entry in model.history {
            try db.execute(
                sql: """
                    INSERT INTO alias_history (id, model_id, alias, action, from_version, from_variant, to_version, to_variant, actor, at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    entry.id, modelID, entry.alias.value, entry.action.rawValue, entry.fromVersion?.value,
                    entry.fromVariant?.value, entry.toVersion.value, entry.toVariant?.value, entry.actor, entry.at,
                ])
        }
    }
}
