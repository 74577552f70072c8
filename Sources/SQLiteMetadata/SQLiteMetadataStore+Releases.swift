import GRDB
import ModelRegistryCore

/// Alias moves, deprecation, deletion and the audit log. Each change and its history and audit rows are
/// written in one transaction, so history never disagrees with the state it describes.
extension SQLiteMetadataStore {
    public func moveAlias(_ move: AliasMove) async throws -> AliasTarget {
        try ReleaseRules.checkMovable(move)
        return try await writing(to: move.model) { db in
            let modelID = try Self.modelID(db, move.model)
            let aliases = try Self.aliases(db, modelID: modelID)
            let current = aliases.first { $0.name == move.alias }
            try ReleaseRules.checkExpectation(of: move, current: current)
            let destination = try ReleaseRules.destination(of: move, current: current, aliases: aliases) {
                try Self.history(db, modelID, move.alias)
            }
            let target = destination.target
            let versionID = try Self.existingVersionID(db, modelID, move.model, target.version)
            if let variant = target.variant, try Self.variantRow(db, versionID: versionID, name: variant) == nil {
                throw RegistryError.notFound("variant '\(variant)' of \(move.model):\(target.version)")
            }
            if let current, current.version == target.version, current.variant == target.variant {
                return current
            }
            let now = Timestamp.now()
            try db.execute(
                sql: """
                    INSERT INTO aliases (model_id, name, version_id, variant, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (model_id, name) DO UPDATE SET
                        version_id = excluded.version_id, variant = excluded.variant,
                        updated_at = excluded.updated_at, updated_by = excluded.updated_by
                    """, arguments: [modelID, move.alias.value, versionID, target.variant?.value, now, move.actor])
            try db.execute(
                sql: """
                    INSERT INTO alias_history (model_id, alias, action, from_version, from_variant, to_version, to_variant, actor, at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    modelID, move.alias.value, destination.action.rawValue, current?.version.value,
                    current?.variant?.value,
                    target.version.value, target.variant?.value, move.actor, now,
                ])
            try Self.audit(
                db, move.actor, destination.auditAction, move.model, target: "\(move.model)@\(move.alias)",
                detail: ReleaseRules.moveDetail(from: current, to: destination))
            return AliasTarget(
                name: move.alias, version: target.version, variant: target.variant, updatedAt: now,
                updatedBy: move.actor)
        }
    }

    public func aliasHistory(_ name: ModelName, _ alias: AliasName) async throws -> [AliasHistoryEntry]? {
        try await pool.read { db in
            guard
                let modelID = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT id FROM models WHERE name = ?"), arguments: [name.value])
            else {
                return nil
            }
            return try Self.history(db, modelID, alias)
        }
    }

    private static func history(_ db: Database, _ modelID: Int64, _ alias: AliasName) throws -> [AliasHistoryEntry] {
        try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT id, action, from_version, from_variant, to_version, to_variant, actor, at
                    FROM alias_history WHERE model_id = ? AND alias = ? ORDER BY id
                    """), arguments: [modelID, alias.value]
        ).map { row in try historyEntry(row, alias: alias) }
    }

    /// An `alias_history` row, without its alias column when the query selected one alias.
    static func historyEntry(_ row: Row, alias: AliasName) throws -> AliasHistoryEntry {
        AliasHistoryEntry(
            id: row["id"],
            alias: alias,
            action: AliasHistoryEntry.Action(rawValue: row["action"]) ?? .set,
            fromVersion: try (row["from_version"] as String?).map { text throws(RegistryError) in
                try VersionName(text)
            },
            fromVariant: try (row["from_variant"] as String?).map { text throws(RegistryError) in
                try VariantName(text)
            },
            toVersion: try VersionName(row["to_version"] as String),
            toVariant: try (row["to_variant"] as String?).map { text throws(RegistryError) in try VariantName(text)
            },
            actor: row["actor"],
            at: row["at"]
        )
    }

    public func deprecate(_ name: ModelName, _ version: VersionName, reason: String?, actor: String) async throws
        -> VersionSummary
    {
        try await writing(to: name) { db in
            let modelID = try Self.modelID(db, name)
            let versionID = try Self.existingVersionID(db, modelID, name, version)
            try db.execute(
                sql: """
                    UPDATE versions SET deprecated_at = COALESCE(deprecated_at, ?), deprecated_by = ?, deprecation_reason = ? WHERE id = ?
                    """, arguments: [Timestamp.now(), actor, reason, versionID])
            try Self.audit(db, actor, .deprecate, name, target: "\(name):\(version)", detail: reason)
            return try Self.versionSummary(db, versionID: versionID, aliases: Self.aliases(db, modelID: modelID))
        }
    }

    public func deleteVersion(_ name: ModelName, _ version: VersionName, actor: String) async throws -> DeletedVersion {
        try await writing(to: name) { db in
            let modelID = try Self.modelID(db, name)
            let versionID = try Self.existingVersionID(db, modelID, name, version)
            try ReleaseRules.checkDeletable(name, version, aliases: try Self.aliases(db, modelID: modelID))
            let summary = try Self.versionSummary(db, versionID: versionID, aliases: [])
            try Self.deleteReferrers(db, versionID: versionID)
            try db.execute(
                sql: """
                    DELETE FROM oci_archive_layers WHERE variant_id IN (SELECT id FROM variants WHERE version_id = ?)
                    """, arguments: [versionID])
            try db.execute(
                sql: """
                    DELETE FROM manifest_files WHERE variant_id IN (SELECT id FROM variants WHERE version_id = ?)
                    """, arguments: [versionID])
            try db.execute(sql: "DELETE FROM variants WHERE version_id = ?", arguments: [versionID])
            try db.execute(sql: "DELETE FROM versions WHERE id = ?", arguments: [versionID])
            try Self.dropOrphanedCacheImages(db, modelID: modelID)
            let now = Timestamp.now()
            try db.execute(
                sql: "INSERT INTO deleted_versions (model_id, name, deleted_at, deleted_by) VALUES (?, ?, ?, ?)",
                arguments: [modelID, version.value, now, actor]
            )
            let variants = summary.variants.map(\.name)
            try Self.audit(
                db, actor, .delete, name, target: "\(name):\(version)",
                detail: "variants \(variants.map(\.value).joined(separator: ", ")); \(summary.size) bytes")
            return DeletedVersion(
                model: name, version: version, variants: variants, manifests: summary.variants.map(\.digest),
                size: summary.size, deletedAt: now
            )
        }
    }

    public func auditLog(_ query: AuditQuery) async throws -> [AuditEntry] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT id, at, actor, action, model, target, detail FROM audit_log
                        WHERE (? IS NULL OR model = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?
                        """),
                arguments: [query.model?.value, query.model?.value, query.before, query.before, query.limit]
            ).map(Self.auditEntry)
        }
    }

    static func auditEntry(_ row: Row) throws -> AuditEntry {
        AuditEntry(
            id: row["id"],
            at: row["at"],
            actor: row["actor"],
            action: try auditAction(row["action"]),
            model: try (row["model"] as String?).map { text throws(RegistryError) in try ModelName(text) },
            target: row["target"],
            detail: row["detail"]
        )
    }

    private static func auditAction(_ text: String) throws -> AuditEntry.Action {
        guard let action = AuditEntry.Action(rawValue: text) else {
            throw RegistryError(.internalError, "the audit log holds an action this version does not know: '\(text)'")
        }
        return action
    }

    static func audit(
        _ db: Database, _ actor: String, _ action: AuditEntry.Action, _ model: ModelName?, target: String,
        detail: String?
    ) throws {
        try db.execute(
            sql: "INSERT INTO audit_log (at, actor, action, model, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [Timestamp.now(), actor, action.rawValue, model?.value, target, detail]
        )
    }

    private static func modelID(_ db: Database, _ name: ModelName) throws -> Int64 {
        guard
            let id = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT id FROM models WHERE name = ?"), arguments: [name.value])
        else {
            throw RegistryError.notFound("model \(name)")
        }
        return id
    }

    /// The version's row id; a deleted version is a conflict that says so rather than a plain 404.
    private static func existingVersionID(_ db: Database, _ modelID: Int64, _ model: ModelName, _ version: VersionName)
        throws -> Int64
    {
        if let id = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM versions WHERE model_id = ? AND name = ?"),
            arguments: [modelID, version.value]
        ) {
            return id
        }
        try refuseDeleted(db, modelID, model, version)
        throw RegistryError.notFound("version \(model):\(version)")
    }

    static func refuseDeleted(_ db: Database, _ modelID: Int64, _ model: ModelName, _ version: VersionName) throws {
        if let deletedAt = try String.fetchOne(
            db.cachedStatement(sql: "SELECT deleted_at FROM deleted_versions WHERE model_id = ? AND name = ?"),
            arguments: [modelID, version.value]
        ) {
            throw RegistryError.deletedVersion(model, version, at: deletedAt)
        }
    }
}
